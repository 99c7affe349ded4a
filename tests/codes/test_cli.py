"""``minitoolai codes`` as an operator types it, against the database a running gateway uses:
codes made by the CLI are redeemed over HTTP, and the CLI shows who redeemed them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.codes.conftest import CodeGateway

CLI = [sys.executable, "-m", "minitoolai"]


def _env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "MINITOOLAI_DATA_DIR": str(tmp_path / "cli-data")}
    env.pop("MINITOOLAI_DATABASE_URL", None)
    if database_url is not None:
        env["MINITOOLAI_DATABASE_URL"] = database_url
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_codes_made_by_the_cli_are_redeemed_over_http(
    codes_gateway: CodeGateway, tmp_path: Path
) -> None:
    cg, gw = codes_gateway, codes_gateway.gw
    env = _env(tmp_path, cg.database_url)
    made = cli(env, "codes", "create", "1.25", "--count", "2", "--note", "fair", "--json")
    assert made.returncode == 0, made.stderr
    batch = json.loads(made.stdout)
    assert batch["id"].startswith("batch_") and batch["amount"] == "1.250000000"
    assert len(batch["codes"]) == 2 and all(c.startswith("MTAI-") for c in batch["codes"])
    assert batch["created_by"] == "cli" and batch["note"] == "fair"

    done = cg.redeem(gw.api_key, batch["codes"][1])
    assert done.status_code == 200, done.text
    assert done.json()["balance"] == "6.250000000" and done.json()["batch"] == batch["id"]
    assert cg.redeem(gw.api_key, batch["codes"][1]).json()["error"]["code"] == "invalid_code"
    entry = gw.admin("GET", f"/admin/accounts/{gw.account}").json()["recent_entries"][0]
    assert entry["kind"] == "redeem" and batch["id"] in entry["note"]

    shown = json.loads(cli(env, "codes", "show", batch["id"], "--json").stdout)
    assert shown["redeemed"] == 1 and shown["redemptions"][0]["account"] == gw.account
    assert shown["redemptions"][0]["last4"] == batch["codes"][1][-4:]
    listed = json.loads(cli(env, "codes", "list", "--json").stdout)
    assert [b["redeemed"] for b in listed if b["id"] == batch["id"]] == [1]
    readable = cli(env, "codes", "show", batch["id"])
    assert readable.returncode == 0 and gw.account in readable.stdout


def test_the_cli_prints_codes_readably_and_refuses_bad_input(tmp_path: Path) -> None:
    env = _env(tmp_path)
    made = cli(env, "codes", "create", "5", "--count", "3", "--expires", "2099-12-31")
    assert made.returncode == 0, made.stderr
    lines = [line for line in made.stdout.splitlines() if line.startswith("MTAI-")]
    assert len(lines) == 3 and "2100-01-01T00:00:00+00:00" in made.stdout  # through that day
    assert "batch_" in cli(env, "codes", "list").stdout

    for args, says in (
        (["5.0000000001"], "9 decimals"),
        (["abc"], "not a USD amount"),
        (["0"], "positive"),
        (["5", "--count", "0"], "1 to 1000"),
        (["5", "--expires", "someday"], "not a date"),
        (["5", "--expires", "2000-01-01"], "future"),
    ):
        bad = cli(env, "codes", "create", *args)
        assert bad.returncode != 0 and says in (bad.stdout + bad.stderr), (args, bad)
    missing = cli(env, "codes", "show", "batch_nope")
    assert missing.returncode == 1 and "no code batch" in missing.stdout
    assert "Usage" in cli(env, "codes", "--help").stdout
