"""The contenders: each started the way its users run it in production, in front of one upstream.

A contender is a name, the settings it runs with (written into the report, so the comparison
can be checked), a check that says why it cannot run here, and a start function returning the
URL and headers the load generator uses. All of them get the same upstream, the same request
bodies, the same core and the same load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import pg
from bench.procs import Cores, Proc, free_port, pinned, start, wait_http
from bench.workload import MODEL

UPSTREAM_KEY = "sk-upstream-fake"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
ADMIN_KEY = "mtai-admin-bench-key"
BENCH = Path(__file__).resolve().parent
LITELLM_BIN = BENCH / ".venvs" / "litellm" / "bin" / "litellm"
PORTKEY_DIR = BENCH / ".peers" / "portkey"
PORTKEY_PACKAGE = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway"
PORTKEY_SCRIPT = PORTKEY_PACKAGE / "build" / "start-server.js"


@dataclass
class Context:
    """What every contender needs: where the upstream is, where to write, which cores."""

    work: Path  # configs, databases and logs of this run
    upstream: str  # http://127.0.0.1:PORT
    cores: Cores
    postgres_url: str
    python: str = sys.executable

    @property
    def logs(self) -> Path:
        return self.work / "logs"


@dataclass
class Running:
    url: str  # the chat completions endpoint
    headers: dict[str, str]
    proc: Proc | None  # None for the direct call: nothing sits in between
    version: str = ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@dataclass(frozen=True)
class Contender:
    name: str
    title: str
    settings: str
    missing: Callable[[Context], str | None]
    start: Callable[[Context], Running]
    #: read the database server's CPU too (PostgreSQL runs outside the gateway's process tree)
    database_cpu: bool = False
    tags: tuple[str, ...] = field(default=())
    #: run when ``--contenders`` is not given (a variant of another contender is not)
    default: bool = True


def base_env() -> dict[str, str]:
    """The parent environment minus anything that could steer a contender elsewhere."""
    drop = ("OPENAI_", "MINITOOLAI_", "LITELLM_", "DATABASE_URL", "PORTKEY_", "HTTP_PROXY")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.pop("HTTPS_PROXY", None)
    env.pop("https_proxy", None)
    env.pop("http_proxy", None)
    return env


# -- direct: the floor -------------------------------------------------------------------------


def _start_direct(ctx: Context) -> Running:
    return Running(
        ctx.upstream + "/v1/chat/completions", {"Authorization": f"Bearer {UPSTREAM_KEY}"}, None
    )


# -- this project ------------------------------------------------------------------------------


def _minitoolai_config(ctx: Context) -> str:
    return (
        "[providers.fake]\n"
        f'base_url = "{ctx.upstream}/v1"\n'
        f'api_key = "{UPSTREAM_KEY}"\n'
        "timeout_s = 60\n\n"
        "[[deployments]]\n"
        f'model = "{MODEL}"\n'
        'provider = "fake"\n'
    )


def start_minitoolai(
    ctx: Context,
    database: str,
    name: str | None = None,
    extra: dict[str, str] | None = None,
    *,
    prefix: tuple[str, ...] = (),
    start_timeout: float = 90,
) -> Running:
    """``minitoolai serve`` as the bench runs it; ``prefix`` goes before the command (what
    ``bench.instructions`` runs it under), after the CPU pinning."""
    name = name or f"minitoolai-{database}"
    home = ctx.work / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    config = home / "config.toml"
    config.write_text(_minitoolai_config(ctx))
    env = (
        base_env()
        | {
            "MINITOOLAI_CONFIG": str(config),
            "MINITOOLAI_DATA_DIR": str(home / "data"),
            "MINITOOLAI_ADMIN_KEY": ADMIN_KEY,
            # the gateway as a gateway: no in-process models loaded beside it
            "MINITOOLAI_LOCAL_DEFAULT": "false",
            "MINITOOLAI_LOCAL_SPEECH": "false",
            "MINITOOLAI_IMAGE_WORKERS": "0",
        }
        | (extra or {})
    )
    if database == "postgres":
        pg.reset(ctx.postgres_url)
        env["MINITOOLAI_DATABASE_URL"] = ctx.postgres_url
    create = ["accounts", "create", "bench", "--credit", "1000000", "--json"]
    created = subprocess.run(
        [ctx.python, "-m", "minitoolai", *create],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(f"minitoolai accounts create failed:\n{created.stderr.decode()[-2000:]}")
    key = orjson.loads(created.stdout)["api_key"]
    port = free_port()
    cmd = [ctx.python, "-m", "minitoolai", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = start(name, pinned([*prefix, *cmd], ctx.cores.gateway), ctx.logs, env=env)
    wait_http(proc, f"http://127.0.0.1:{port}/healthz", timeout=start_timeout)
    return Running(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        {"Authorization": f"Bearer {key}"},
        proc,
        version=minitoolai_version(),
    )


def minitoolai_version() -> str:
    from importlib.metadata import version

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(BENCH.parent), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "?"
    dirty = (
        ", with uncommitted changes in src/" if git("status", "--porcelain", "--", "src") else ""
    )
    return f"{version('minitoolai')} (git {rev}{dirty})"


def _postgres_missing(ctx: Context) -> str | None:
    return pg.unreachable(ctx.postgres_url)


# -- LiteLLM -----------------------------------------------------------------------------------


def _litellm_missing(_ctx: Context) -> str | None:
    if not LITELLM_BIN.exists():
        return f"not installed ({LITELLM_BIN} missing): run bench/setup_peers.sh"
    return None


def _litellm_config(ctx: Context) -> str:
    return f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_base: {ctx.upstream}/v1
      api_key: {UPSTREAM_KEY}
litellm_settings:
  set_verbose: false
  json_logs: true
  request_timeout: 600
general_settings:
  master_key: {LITELLM_MASTER_KEY}
"""


def _start_litellm(ctx: Context) -> Running:
    home = ctx.work / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "config.yaml"
    config.write_text(_litellm_config(ctx))
    env = base_env() | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    port = free_port()
    cmd = [str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--num_workers", "1"]
    proc = start("litellm", pinned(cmd, ctx.cores.gateway), ctx.logs, env=env, cwd=home)
    wait_http(proc, f"http://127.0.0.1:{port}/health/liveliness", timeout=180)
    return Running(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
        proc,
        version=_pip_version(LITELLM_BIN.parent / "python", "litellm"),
    )


def _pip_version(python: Path, package: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


# -- Portkey -----------------------------------------------------------------------------------


def _portkey_missing(_ctx: Context) -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not PORTKEY_SCRIPT.exists():
        return f"not installed ({PORTKEY_SCRIPT} missing): run bench/setup_peers.sh"
    return None


def _start_portkey(ctx: Context) -> Running:
    port = free_port()
    cmd = ["node", str(PORTKEY_SCRIPT), f"--port={port}", "--headless"]
    env = base_env() | {"NODE_ENV": "production"}
    proc = start("portkey", pinned(cmd, ctx.cores.gateway), ctx.logs, env=env, cwd=PORTKEY_DIR)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {
        "Authorization": f"Bearer {UPSTREAM_KEY}",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"{ctx.upstream}/v1",
    }
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    wait_http(proc, url, body=body, headers=headers | {"Content-Type": "application/json"})
    version = orjson.loads((PORTKEY_PACKAGE / "package.json").read_bytes()).get("version", "?")
    return Running(url, headers, proc, version=str(version))


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in [
        Contender(
            "direct",
            "direct to upstream (floor)",
            "No gateway: the load generator calls the fake upstream itself. Its figures are the "
            "floor every gateway's are compared with, and the upstream's own ceiling.",
            lambda _ctx: None,
            _start_direct,
        ),
        Contender(
            "minitoolai-sqlite",
            "MiniToolAI (SQLite)",
            "`minitoolai serve` (1 worker: uvicorn + uvloop + httptools, no access log), "
            "embedded default SQLite (WAL, synchronous=NORMAL) in a fresh data dir, "
            "`[providers.fake]` + one `[[deployments]]` for gpt-4o-mini, an account made with "
            "`minitoolai accounts create bench --credit 1000000 --json`: API-key auth (5 s key "
            "cache), credit hold and settle, usage row per request, default log level (info).",
            lambda _ctx: None,
            lambda ctx: start_minitoolai(ctx, "sqlite"),
            tags=("ours",),
        ),
        Contender(
            "minitoolai-postgres",
            "MiniToolAI (PostgreSQL)",
            "As the SQLite run, on PostgreSQL (asyncpg, pool of 10 + 10) in a dedicated "
            "database whose schema is dropped and re-created before the run. The database "
            "server's CPU is reported apart from the gateway's.",
            _postgres_missing,
            lambda ctx: start_minitoolai(ctx, "postgres"),
            database_cpu=True,
            tags=("ours",),
        ),
        Contender(
            "minitoolai-postgres-journal",
            "MiniToolAI (PostgreSQL, settle_wait = journal)",
            "As the PostgreSQL run, with `MINITOOLAI_SETTLE_WAIT=journal`: a response's last "
            "byte follows its settle's line in the local journal, not the database's commit "
            "(docs/billing.md). Not in the default set; name it in `--contenders`.",
            _postgres_missing,
            lambda ctx: start_minitoolai(
                ctx,
                "postgres",
                "minitoolai-postgres-journal",
                {"MINITOOLAI_SETTLE_WAIT": "journal"},
            ),
            database_cpu=True,
            tags=("ours",),
            default=False,
        ),
        Contender(
            "litellm",
            "LiteLLM proxy (no DB)",
            "`litellm --config config.yaml --num_workers 1`, its production checklist's settings "
            "that apply without a database (master_key, set_verbose false, json_logs, "
            "request_timeout 600, LITELLM_LOG=ERROR, LITELLM_LOCAL_MODEL_COST_MAP=True). Virtual "
            "keys and spend tracking need its database mode, which needs Prisma engines that "
            "cannot be installed here; this mode still authenticates the master key and "
            "computes a cost per request, but keeps no ledger.",
            _litellm_missing,
            _start_litellm,
        ),
        Contender(
            "portkey",
            "Portkey gateway (OSS)",
            "`node build/start-server.js --headless` from npm `@portkey-ai/gateway`, with "
            "`hono@4.9.7` and `@hono/node-server@1.13.5` pinned (streaming fails with the "
            "versions npm picks today), NODE_ENV=production, provider and upstream per request "
            "(`x-portkey-provider: openai`, `x-portkey-custom-host`). It has no auth and no "
            "billing on inference. It listens on all interfaces (no host option); only "
            "loopback is used.",
            _portkey_missing,
            _start_portkey,
        ),
    ]
}
