"""The ASGI application: ``create_app()`` wires routes, error handlers and the lifespan.

Nothing is built at import time; the lifespan builds the services (database, ledger, engines)
and background tasks (the hold sweeper), and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from minitoolai.bootstrap import Services, build_services
from minitoolai.chat.tokens import encoding
from minitoolai.errors import APIError
from minitoolai.http import deps
from minitoolai.http.openapi import openapi_json
from minitoolai.http.responses import JSON, on_api_error, on_http_error, on_unexpected
from minitoolai.http.routes import (
    account,
    admin,
    chat,
    codes,
    embeddings,
    images,
    models,
    responses,
    speech,
)
from minitoolai.images.worker_thread import WorkerThread
from minitoolai.ledger.price_overrides import REFRESH_S as PRICE_REFRESH_S
from minitoolai.observability import REGISTRY, RequestLog
from minitoolai.payments.routes import routes as payment_routes
from minitoolai.settings import Settings
from minitoolai.web.routes import routes as web_routes

log = logging.getLogger("minitoolai")


async def healthz(request: Request) -> Response:
    svc = deps.services(request)
    try:
        await asyncio.wait_for(svc.db.ping(), timeout=2.0)
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        log.warning("health check failed: %s", exc)
        return JSON({"status": "error", "database": "unreachable"}, status_code=503)
    return JSON({"status": "ok", "database": svc.db.dialect})


async def metrics(_request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _sweep_forever(svc: Services) -> None:
    """Release abandoned holds; delete stored images past their retention."""
    while True:
        await asyncio.sleep(svc.settings.sweep_interval_s)
        try:
            await svc.ledger.sweep_expired()
            await svc.images.purge_older_than(svc.settings.image_retention_s)
        except Exception:  # the sweeper must outlive a database hiccup
            log.exception("sweeper failed; will retry")


async def _maintain_forever(svc: Services) -> None:
    """Renew the holds of requests this process runs, and retry settlements that failed."""
    while True:
        await asyncio.sleep(svc.ledger.renew_interval_s)
        try:
            await svc.ledger.maintain()
        except Exception:  # the database may be away; the next round retries
            log.exception("renewing holds failed; will retry")


async def _refresh_prices_forever(svc: Services) -> None:
    """Follow the console's price overrides made through other processes."""
    while True:
        await asyncio.sleep(PRICE_REFRESH_S)
        try:
            await svc.price_overrides.refresh()
        except Exception:  # the database may be away; the table in memory stays as it was
            log.exception("refreshing the price overrides failed; will retry")


async def _alert_forever(svc: Services) -> None:
    """Send low-balance alerts that crossed, re-arm those that recovered (docs/billing.md)."""
    while True:
        await asyncio.sleep(svc.settings.alert_interval_s)
        try:
            await svc.alerts.check_once()
        except Exception:  # the database may be away; the next round retries
            log.exception("checking low-balance alerts failed; will retry")


def _print_routing(svc: Services) -> None:
    rows = svc.chat.router.table() + svc.speech.router.table()
    if not svc.chat.router.table():
        log.warning(
            "no chat deployments: set OPENAI_API_KEY, or add [[deployments]] to the config file"
        )
    for model, deployment, priority, weight in rows:
        log.info("route %-24s -> %s (priority %d, weight %d)", model, deployment, priority, weight)


class _App(Starlette):
    """Starlette with the request log outermost: even a 500 from the last-resort handler (which
    Starlette puts outside every user middleware) gets the request id and is logged."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestLog(super().build_middleware_stack())


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = services or await build_services(settings)
        app.state.services = svc
        _ = svc.admin_key  # generated (and printed) at first start when not configured
        await asyncio.to_thread(encoding, "o200k_base")  # not on the first request's clock
        _print_routing(svc)
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(_sweep_forever(svc), name="hold-sweeper"),
            asyncio.create_task(_maintain_forever(svc), name="hold-renewer"),
            asyncio.create_task(_alert_forever(svc), name="balance-alerts"),
            asyncio.create_task(_refresh_prices_forever(svc), name="price-refresher"),
        ]
        workers = None
        if svc.settings.image_workers:
            workers = WorkerThread(svc.settings, svc.settings.image_workers, svc.wakeup)
            await asyncio.to_thread(workers.start)
        try:
            yield
        finally:
            if workers is not None:
                await workers.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if services is None:
                await svc.aclose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *account.routes,
        *codes.routes,
        *admin.routes,
        *models.routes,  # before chat's: the first route that matches a path answers it
        *chat.routes,
        *responses.routes,
        *images.routes,
        *speech.routes,
        *embeddings.routes,
        *payment_routes,  # Stripe's webhook: signed, so neither CSRF-checked nor keyed
        *web_routes,  # the storefront's pages: only their own paths (docs/web.md)
    ]
    return _App(
        routes=routes,
        exception_handlers={
            APIError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
