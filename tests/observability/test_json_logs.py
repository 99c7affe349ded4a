"""``MINITOOLAI_LOG_FORMAT=json``: every line is one JSON object, and each line logged while a
request runs names it, not only the access line."""

from __future__ import annotations

from pathlib import Path

import orjson
import requests

from tests.reliability.chat_client import write_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import serve_in_thread

FIELDS = {"time", "level", "logger", "message", "request_id"}


def test_json_lines_carry_the_request_id(tmp_path: Path) -> None:
    broken, working = FakeUpstream(status=500), FakeUpstream()
    with serve_in_thread(broken.app()) as down, serve_in_thread(working.app()) as up:
        config = tmp_path / "config.toml"
        write_config(config, {"down": down, "up": up}, {})
        config.write_text(
            config.read_text()
            + '[[deployments]]\nmodel = "gpt-4o-mini"\nprovider = "down"\npriority = 0\n\n'
            + '[[deployments]]\nmodel = "gpt-4o-mini"\nprovider = "up"\npriority = 1\n'
        )
        env = minitoolai_env(
            tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'j.db'}", config=config
        )
        env["MINITOOLAI_LOG_FORMAT"] = "json"
        server = Server(env, tmp_path / "serve.log")
        server.start()
        try:
            key = server.create_account("logged", "1")
            response = requests.post(
                server.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}", "X-Request-Id": "trace-me-42"},
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                timeout=10,
            )
            assert response.status_code == 200, response.text
        finally:
            server.stop()
    lines = [
        line
        for line in server.log_path.read_text().splitlines()
        if line and not line.startswith("=== start")
    ]
    records = [orjson.loads(line) for line in lines]  # every line parses
    assert all(set(r) >= FIELDS for r in records), records
    mine = [r for r in records if r["request_id"] == "trace-me-42"]
    loggers = {r["logger"] for r in mine}
    # the failover's warning (logged inside the request) and the access line
    assert {"minitoolai.routing", "minitoolai.access"} <= loggers, mine
    assert any(r["level"] == "warning" and "failed" in r["message"] for r in mine), mine
