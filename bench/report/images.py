"""The image-job section (figures defined in ``bench.images_bench``)."""

from __future__ import annotations

from typing import Any

from bench.report.tables import fmt, pair, plus_db, table


def images_md(images: dict[str, Any]) -> str:
    from bench.images_bench import SETUP_TITLES

    rows = []
    for c in images["cells"]:
        split = c["split_ms"]
        errors = sum(c["errors"].values())
        rows.append(
            [
                c["setup"],
                str(c["concurrency"])
                + (
                    f" + {c['pollers']} pollers ({c.get('poller_polls_per_s', 0):.0f} polls/s)"
                    if c.get("pollers")
                    else ""
                ),
                str(c["jobs"]),
                fmt(c["jobs_per_s"]),
                pair(c["submit_ms"]),
                pair(c["seen_ms"]),
                fmt(c["polls_per_job"], 1),
                " / ".join(
                    fmt((split.get(k) or {}).get("p50"))
                    for k in ("to_row", "queued", "working", "to_seen")
                ),
                plus_db(c["gateway_cpu_ms_per_job"], c["database_cpu_ms_per_job"]),
                ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) if errors else "0",
            ]
        )
    parts = [
        table(
            [
                "setup",
                "c",
                "jobs",
                "jobs/s",
                "submit ms p50 / p99",
                "submit -> success seen ms p50 / p99",
                "polls / job",
                "split ms p50: submit -> row / queued -> claimed / claimed -> finished / "
                "finished -> seen",
                "CPU ms / job",
                "errors",
            ],
            rows,
        ),
        "",
        "Polls alone (one client polling one finished job back to back):",
        "",
        table(
            ["setup", "polls/s", "poll ms p50 / p99", "CPU ms / poll"],
            [
                [
                    p["setup"],
                    fmt(p["polls_per_s"]),
                    pair(p["poll_ms"]),
                    plus_db(p["gateway_cpu_ms_per_poll"], p["database_cpu_ms_per_poll"]),
                ]
                for p in images["polls"]
            ],
        ),
        "",
        "Setups: "
        + "; ".join(f"`{k}` = {v}" for k, v in SETUP_TITLES.items())
        + ". CPU is the gateway's process tree (the API, and the worker process when "
        "separate), user + system, over the measured window, per job answered in it; +DB is "
        "the PostgreSQL server's. " + images.get("settings", ""),
    ]
    return "\n".join(parts)
