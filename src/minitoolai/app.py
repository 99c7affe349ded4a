"""The ASGI application: ``create_app()`` wires routes, error handlers and the lifespan.

Nothing is built at import time; the lifespan builds the services (database, ledger, engines)
and background tasks (the hold sweeper), and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from minitoolai.bootstrap import Services, build_services
from minitoolai.errors import APIError, AuthenticationFailed
from minitoolai.http import deps
from minitoolai.http.fastlane import FastLane
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
from minitoolai.images.queue import JobStatus
from minitoolai.images.worker import reap_abandoned
from minitoolai.images.worker_thread import WorkerThread
from minitoolai.infra.leader import Leadership
from minitoolai.infra.tables import charges
from minitoolai.ledger.price_overrides import REFRESH_S as PRICE_REFRESH_S
from minitoolai.limits.backend import LEASE_MS as LIMITS_LEASE_MS
from minitoolai.observability import (
    HOLDS_OPEN,
    QUEUE_DEPTH,
    RequestLog,
    metrics_allowed,
    metrics_body,
    setup_logging,
)
from minitoolai.payments.routes import routes as payment_routes
from minitoolai.settings import Settings
from minitoolai.web.routes import routes as web_routes

log = logging.getLogger("minitoolai")


async def openapi_json(request: Request) -> Response:
    from minitoolai.http.openapi import openapi_json  # built at the first ask, not at start

    return await openapi_json(request)


async def healthz(request: Request) -> Response:
    svc = deps.services(request)
    try:
        await asyncio.wait_for(svc.db.ping(), timeout=2.0)
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        log.warning("health check failed: %s", exc)
        return JSON({"status": "error", "database": "unreachable"}, status_code=503)
    return JSON({"status": "ok", "database": svc.db.dialect})


async def metrics(request: Request) -> Response:
    """Prometheus' exposition, for the admin key or ``MINITOOLAI_METRICS_TOKEN`` (unless
    ``MINITOOLAI_METRICS_OPEN``): it names deployments, models and volumes."""
    svc = deps.services(request)
    settings = svc.settings
    if not settings.metrics_open:
        allowed = [svc.admin_key]
        if settings.metrics_token is not None:
            allowed.append(settings.metrics_token.get_secret_value())
        if not metrics_allowed(request.headers.get("authorization"), allowed):
            raise AuthenticationFailed(
                "Send 'Authorization: Bearer <the admin key or MINITOOLAI_METRICS_TOKEN>'.",
                code="invalid_api_key",
            )
    await _read_gauges(svc)
    body, media_type = metrics_body()
    return Response(body, media_type=media_type)


async def _read_gauges(svc: Services) -> None:
    """The gauges that are facts of the database, the same whichever process is scraped."""
    try:
        async with svc.db.read() as conn:
            held = await conn.execute(
                select(func.count())
                .select_from(charges)
                .where(charges.c.status == "held", charges.c.kind != "lease")
            )
            HOLDS_OPEN.set(held.scalar_one())
        QUEUE_DEPTH.set((await svc.images.queue.counts())[JobStatus.QUEUED.value])
    except Exception as exc:  # the database is away: the other series are still worth having
        log.warning("reading the gauges for /metrics failed: %s", exc)


async def _sweep_forever(svc: Services, leader: Leadership) -> None:
    """Release abandoned holds; delete stored images past their retention; fail (and refund)
    image jobs whose workers died too often. In the elected process only."""
    while True:
        await asyncio.sleep(svc.settings.sweep_interval_s)
        if not leader.is_leader:
            continue
        try:
            await svc.ledger.sweep_expired()
            await svc.images.purge_older_than(svc.settings.image_retention_s)
            await reap_abandoned(svc.images.queue, svc.ledger)
        except Exception:  # the sweeper must outlive a database hiccup
            log.exception("sweeper failed; will retry")


async def _maintain_forever(svc: Services) -> None:
    """Renew the holds of requests this process runs, on time; beside that, one round at a
    time, retry settlements that failed and replay dead processes' journals (``catch_up``:
    a long replay after a replica died must not hold the renewals back past a deadline)."""
    catching_up: asyncio.Task[None] | None = None
    try:
        while True:
            await asyncio.sleep(svc.ledger.renew_interval_s)
            try:
                await svc.ledger.renew()
            except Exception:  # the database may be away; the next round retries
                log.exception("renewing holds failed; will retry")
            if catching_up is None or catching_up.done():
                catching_up = asyncio.create_task(_catch_up(svc), name="ledger-catch-up")
    finally:
        if catching_up is not None and not catching_up.done():
            catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await catching_up


async def _catch_up(svc: Services) -> None:
    try:
        await svc.ledger.catch_up()
    except Exception:  # the database may be away; the next round retries
        log.exception("retrying settlements failed; will retry")


async def _refresh_prices_forever(svc: Services) -> None:
    """Follow the console's price overrides made through other processes."""
    while True:
        await asyncio.sleep(PRICE_REFRESH_S)
        try:
            await svc.price_overrides.refresh()
        except Exception:  # the database may be away; the table in memory stays as it was
            log.exception("refreshing the price overrides failed; will retry")


async def _renew_limits_forever(svc: Services) -> None:
    """Keep the concurrency leases of this process's live requests (docs/limits.md)."""
    while True:
        await asyncio.sleep(LIMITS_LEASE_MS / 3000)
        try:
            await svc.limits.renew()
        except Exception:  # Redis may be away; a lease that runs out frees a slot, no more
            log.exception("renewing rate-limit leases failed; will retry")


async def _alert_forever(svc: Services, leader: Leadership) -> None:
    """Send low-balance alerts that crossed, re-arm those that recovered (docs/billing.md). In
    the elected process only."""
    while True:
        await asyncio.sleep(svc.settings.alert_interval_s)
        if not leader.is_leader:
            continue
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
    Starlette puts outside every user middleware) gets the request id and is logged. Inside it,
    the paid surfaces' exact paths take the fast lane (``http.fastlane``)."""

    fast_routes: list[Route] = []

    def build_middleware_stack(self) -> ASGIApp:
        lane = FastLane(
            super().build_middleware_stack(),
            self.fast_routes,
            self.router,
            on_api_error=on_api_error,
            on_http_error=on_http_error,
            on_unexpected=on_unexpected,
        )
        return RequestLog(lane)


def create_serve_app() -> Starlette:
    """``serve``'s factory: the app of a process that serves until it is stopped."""
    return create_app(Settings(), freeze_after_start=True)


def create_worker_app() -> Starlette:
    """``serve --workers N``'s factory: each worker is a fresh interpreter, which sets up its
    own logging (level, JSON) as ``serve`` did for itself, or it would log warnings only."""
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    return create_app(settings, freeze_after_start=True)


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    freeze_after_start: bool = False,
) -> Starlette:
    """The ASGI app. ``freeze_after_start`` (``serve``'s processes): what start-up made lives as
    long as the process, so it is frozen out of the cyclic collector, which then no longer
    walks it in every full collection (about 10% less CPU per request in the bench). Apps
    made and dropped in one process (the tests) leave it off, or their graphs would stay."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        svc = services or await build_services(settings)
        app.state.services = svc
        _ = svc.admin_key  # generated (and printed) at first start when not configured
        _print_routing(svc)
        await svc.changes.start()  # hear key revocations and suspensions made elsewhere
        await svc.ledger.replay_journals()  # settles a killed process journaled, before serving
        leader = Leadership(svc.db)
        await leader.start()  # the singletons below run in one process of all
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(_sweep_forever(svc, leader), name="hold-sweeper"),
            asyncio.create_task(_maintain_forever(svc), name="hold-renewer"),
            asyncio.create_task(_alert_forever(svc, leader), name="balance-alerts"),
            asyncio.create_task(_refresh_prices_forever(svc), name="price-refresher"),
            asyncio.create_task(_renew_limits_forever(svc), name="limit-lease-renewer"),
        ]
        workers = None
        if svc.settings.image_workers:
            workers = WorkerThread(svc.settings, svc.settings.image_workers, svc.wakeup)
            await asyncio.to_thread(workers.start)
        if freeze_after_start:
            gc.collect()
            gc.freeze()
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
            await leader.close()
            await svc.changes.close()
            try:  # the requests have drained: land queued settles, retry any refused
                await svc.ledger.flush()
                await svc.ledger.maintain()
            except Exception:
                log.exception("settling at shutdown failed; the sweeper will release the holds")
            if services is None:
                await svc.aclose()

    # Starlette tries routes in order: the paid surfaces come first, so a chat request is not
    # matched against every admin and storefront path before its own
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        *models.routes,  # before chat's: the first route that matches a path answers it
        *chat.routes,
        *responses.routes,
        *embeddings.routes,
        *images.routes,
        *speech.routes,
        *account.routes,
        *codes.routes,
        *admin.routes,
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *payment_routes,  # Stripe's webhook: signed, so neither CSRF-checked nor keyed
        *web_routes,  # the storefront's pages: only their own paths (docs/web.md)
    ]
    app = _App(
        routes=routes,
        exception_handlers={
            APIError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.fast_routes = [*chat.routes, *responses.routes, *embeddings.routes]
    return app
