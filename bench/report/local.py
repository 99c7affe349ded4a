"""The local-engine section (figures defined in ``bench.local_bench``)."""

from __future__ import annotations

from typing import Any

from bench.report.tables import each_run, fmt, table


def local_md(local: dict[str, Any]) -> str:
    rows = []
    for side, title in (("bare", "bare LlamaCppEngine"), ("api", "through the API")):
        s = local[side]
        rows.append(
            [
                title,
                fmt(s["decode_tok_s"], 1),
                each_run(s["runs"], "decode_tok_s"),
                fmt(s["ttft_ms"], 1),
                fmt(s["head_ms"], 2),
                fmt(s["cpu_ms_per_token"], 2),
                fmt(s["tokens"], 0),
            ]
        )
    ratio = local.get("ratio")
    lines = [
        table(
            [
                "side",
                "decode tok/s (median)",
                "each run",
                "TTFT ms",
                "first chunk / headers ms",
                "CPU ms / token",
                "tokens",
            ],
            rows,
        ),
        "",
        f"- API / bare decode tokens/s: **{'-' if ratio is None else f'{ratio:.1%}'}** "
        f"(goal >= 95%); TTFT added by the API: {fmt(local.get('ttft_added_ms'), 1)} ms.",
        f"- Model: {local['model']}, {local['threads']} thread(s) on each side; served as "
        f"{', '.join(local['served_as']) or '?'} through the API.",
    ]
    lines += [f"- Note: {n}" for n in local.get("notes", [])]
    lines += [
        "",
        "Decode tok/s = (completion tokens - 1) / (last content token - first content token); "
        "TTFT from the call (bare) or the request (API) to the first content token; first "
        "chunk = the engine's role chunk (bare) or the response headers (API): the gateway's "
        "work before the engine starts. CPU ms / token: CPU of the bare process, or of the "
        "server, over the whole run, per completion token. " + local.get("settings", ""),
    ]
    return "\n".join(lines)
