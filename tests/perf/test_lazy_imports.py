"""A chat-only gateway loads no library that only pages, payments, log-ins or local engines use
(issue 16: each costs memory and start-up time in every ``serve`` process).

``serve``'s own code path runs in a fresh interpreter (the CLI module imported, the app from
``serve``'s factory under uvicorn, its lifespan, an account made and one chat answered through
a fake upstream), which then prints the libraries it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port, serve_in_thread

#: loaded on first need: a page (jinja2), a card payment (stripe), a log-in (argon2), an
#: embeddings answer (numpy), an image part (PIL, and aiohttp for a fetched one or a webhook),
#: a CLI table (rich), a local engine, an exact token count (tiktoken: holds use a bound)
LAZY = (
    "aiohttp",
    "argon2",
    "diffusers",
    "jinja2",
    "llama_cpp",
    "numpy",
    "onnxruntime",
    "PIL",
    "piper",
    "rich",
    "stripe",
    "tiktoken",
    "torch",
    "transformers",
)

SERVE_AND_CHAT = """
import json, sys, threading, time, urllib.request
import uvicorn
import minitoolai.cli  # what `minitoolai serve` runs in

port, admin = int(sys.argv[1]), sys.argv[2]
config = uvicorn.Config(
    "minitoolai.app:create_serve_app", factory=True, host="127.0.0.1", port=port,
    loop="uvloop", http="httptools", log_config=None, access_log=False,
)
server = uvicorn.Server(config)
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
deadline = time.monotonic() + 60
while not server.started and time.monotonic() < deadline:
    time.sleep(0.05)
assert server.started, "the server did not start"
base = f"http://127.0.0.1:{port}"

def post(path, body, key):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={
        "Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())

key = post("/admin/accounts", {"name": "lazy", "credit": "5"}, admin)["api_key"]
answer = post("/v1/chat/completions",
              {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}, key)
assert answer["choices"][0]["message"]["content"], answer
server.should_exit = True
thread.join(30)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_chat_only_serve_loads_no_page_payment_login_or_engine_library(tmp_path: Path) -> None:
    with serve_in_thread(FakeUpstream().app()) as upstream:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.fake]\nbase_url = "{upstream}/v1"\napi_key = "sk-fake"\n\n'
            '[[deployments]]\nmodel = "gpt-4o-mini"\nprovider = "fake"\n'
        )
        admin = "mtai-admin-lazy-imports"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MINITOOLAI_", "OPENAI_"))
        } | {
            "MINITOOLAI_CONFIG": str(config),
            "MINITOOLAI_DATA_DIR": str(tmp_path / "data"),
            "MINITOOLAI_ADMIN_KEY": admin,
            "MINITOOLAI_LOCAL_DEFAULT": "false",
            "MINITOOLAI_LOCAL_SPEECH": "false",
            "MINITOOLAI_IMAGE_WORKERS": "0",
        }
        done = subprocess.run(
            [sys.executable, "-c", SERVE_AND_CHAT, str(free_port()), admin],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "minitoolai" in loaded and "orjson" in loaded  # it did run the gateway
    assert sorted(loaded & set(LAZY)) == []
