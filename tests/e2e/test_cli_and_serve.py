"""The operator's commands as a user types them, and `minitoolai serve` as the README runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.chat.test_seed_endpoint import seed_snippet
from tests.support.servers import free_port

CLI = [sys.executable, "-m", "minitoolai"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_cli_accounts_credit_keys(tmp_path: Path) -> None:
    env = {**os.environ, "MINITOOLAI_DATA_DIR": str(tmp_path / "data")}
    env.pop("MINITOOLAI_DATABASE_URL", None)
    created = cli(env, "accounts", "create", "alice", "--credit", "5", "--json")
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["account"]["balance"] == "5.000000000" and data["api_key"].startswith("mtai-")
    assert not (tmp_path / "data" / "admin.key").exists()  # management commands need no admin key

    assert cli(env, "credit", "add", "alice", "2.5", "--note", "invoice 1").returncode == 0
    shown = json.loads(cli(env, "accounts", "show", "alice", "--json").stdout)
    assert shown["balance"] == "7.500000000" and shown["open_holds"] == 0
    assert [e["kind"] for e in shown["recent_entries"]] == ["topup", "topup"]

    listed = json.loads(cli(env, "accounts", "list", "--json").stdout)
    assert [a["name"] for a in listed] == ["alice"]
    key = json.loads(cli(env, "keys", "create", "alice", "--model", "gpt-4o", "--json").stdout)
    keys = json.loads(cli(env, "keys", "list", "alice", "--json").stdout)
    assert len(keys) == 2 and keys[1]["allowed_models"] == ["gpt-4o"]
    assert cli(env, "keys", "revoke", key["prefix"]).returncode == 0
    assert json.loads(cli(env, "keys", "list", "alice", "--json").stdout)[1]["revoked"] is True

    bad = cli(env, "credit", "add", "alice", "1.0000000001")
    assert bad.returncode != 0 and "9 decimals" in (bad.stdout + bad.stderr)
    missing = cli(env, "accounts", "show", "nobody")
    assert missing.returncode == 1 and "no account named" in missing.stdout
    for args in (
        [],
        ["accounts", "--help"],
        ["credit", "add", "--help"],
        ["keys", "revoke", "--help"],
    ):
        assert "Usage" in cli(env, *args, "--help").stdout


def test_serve_on_the_embedded_default_answers_offline(tmp_path: Path) -> None:
    """`minitoolai serve` with no configuration and no network: health, chat, speech."""
    env = {
        **os.environ,
        "MINITOOLAI_DATA_DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        "MINITOOLAI_IMAGE_ENGINE": "test-pattern",
    }
    for name in ("MINITOOLAI_DATABASE_URL", "MINITOOLAI_CONFIG", "OPENAI_API_KEY"):
        env.pop(name, None)
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert health.status_code == 200 and health.json() == {"status": "ok", "database": "sqlite"}
        assert (tmp_path / "data" / "minitoolai.db").exists()
        assert (tmp_path / "data" / "admin.key").stat().st_mode & 0o077 == 0

        key = json.loads(cli(env, "accounts", "create", "zoe", "--credit", "1", "--json").stdout)
        _, lines = seed_snippet(f"http://127.0.0.1:{port}/api/chat-completions/", key["api_key"])
        usage = json.loads(lines[-2][6:])["usage"]
        assert json.loads(lines[0][6:])["model"] == "smollm2-135m-instruct"
        cost = usage["prompt_tokens"] * 150 + usage["completion_tokens"] * 600
        shown = json.loads(cli(env, "accounts", "show", "zoe", "--json").stdout)
        assert shown["balance"] == f"0.{1_000_000_000 - cost:09d}"
        speech = requests.post(
            f"http://127.0.0.1:{port}/v1/audio/speech",
            timeout=60,
            headers={"Authorization": f"Bearer {key['api_key']}"},
            json={"model": "tts-1", "voice": "alloy", "input": "Hi.", "response_format": "wav"},
        )
        assert speech.status_code == 200 and speech.content[:4] == b"RIFF"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert "generated an admin key" in out
    assert "route gpt-4o-mini" in out and "local:smollm2-135m-instruct" in out
    assert "Traceback" not in out
