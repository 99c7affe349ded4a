"""The speech section (figures defined in ``bench.speech_bench``)."""

from __future__ import annotations

from typing import Any

from bench.report.tables import each_run, fmt, table


def speech_md(speech: dict[str, Any]) -> str:
    rows = []
    for row in speech["formats"]:
        for side, title in (("bare", "bare engine"), ("api", "through the API")):
            s = row[side]
            rows.append(
                [
                    row["format"],
                    title,
                    fmt(s["x_realtime"], 1),
                    each_run(s["runs"], "x_realtime"),
                    fmt(s["first_audio_ms"], 0),
                    fmt(s["wall_s"], 2),
                    fmt(s["audio_s"], 2),
                    fmt(s["cpu_s_per_audio_s"], 3),
                ]
            )
    ratios = ", ".join(
        f"{r['format']} {'-' if r['ratio'] is None else format(r['ratio'], '.1%')}"
        for r in speech["formats"]
    )
    return "\n".join(
        [
            table(
                [
                    "format",
                    "side",
                    "x real time (median)",
                    "each run",
                    "first audio ms",
                    "wall s",
                    "audio s",
                    "CPU s / audio s",
                ],
                rows,
            ),
            "",
            f"- API / bare x real time: {ratios}.",
            f"- Engine: {speech['engine']} ({speech['model_id']}), voice {speech['voice']}, "
            f'text of {speech["words"]} words: "{speech["text"]}"',
            "",
            "x real time = seconds of audio / wall seconds from the call or request to the last "
            "byte (higher is faster). CPU s / audio s: CPU of the bare process or the server, "
            "with the ffmpeg children it waited for. " + speech.get("settings", ""),
        ]
    )
