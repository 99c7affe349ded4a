"""``serve``, ``worker`` and ``migrate``: the processes an operator runs."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from minitoolai.cli import output
from minitoolai.cli.running import run
from minitoolai.settings import Settings

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each its own event loop).")] = 1,
) -> None:
    """Run the API server (migrations are applied on start).

    SIGTERM drains: no new connections, requests in flight finish for up to
    MINITOOLAI_DRAIN_GRACE_S, then exit 0 (docs/deployment.md).
    """
    import math
    import signal

    import uvicorn

    from minitoolai.observability import multiprocess_metrics_dir, setup_logging

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    if workers > 1:
        multiprocess_metrics_dir()  # /metrics sums every worker's values
    # uvicorn raises the signal again once it has shut down gracefully, to die of it; a drain
    # that went as planned is a success, so it ends here with 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "minitoolai.app:create_worker_app" if workers > 1 else "minitoolai.app:create_serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.drain_grace_s),
    )


def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once in this process.")] = 1,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
) -> None:
    """Run image workers alone (e.g. on a GPU machine) against the shared database and storage.

    \b
    Point it at the same database and data dir (or storage) as the API:
      MINITOOLAI_DATABASE_URL=postgresql+asyncpg://... MINITOOLAI_DATA_DIR=/shared minitoolai worker
    and run the API with MINITOOLAI_IMAGE_WORKERS=0 if it should not generate images itself.
    """
    import signal

    from minitoolai.images.build import build_image_engine, build_worker
    from minitoolai.observability import setup_logging

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)

    async def go(svc: Services) -> int:
        engine = await asyncio.to_thread(build_image_engine, settings, svc.config)
        workers = [build_worker(svc.images, engine, svc.wakeup) for _ in range(concurrency)]
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            for w in workers:
                w.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        output.console.print(f"image worker(s) {', '.join(w.id for w in workers)} waiting for jobs")
        done = await asyncio.gather(*(w.run(burst=burst) for w in workers))
        return sum(done)

    handled = run(go)
    output.console.print(f"worker stopped after {handled} job(s)")


def migrate() -> None:
    """Apply database migrations and exit (serve does this on start too)."""

    async def go(_svc: Services) -> None:
        return None

    run(go)
    output.console.print("database is up to date")
