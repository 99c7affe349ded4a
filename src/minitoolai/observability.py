"""Logs an operator can read and metrics they can scrape.

One log line per request, written after the response (never an access log on the hot path).
Secrets never reach a log line: only key prefixes are logged.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "minitoolai_http_requests",
    "HTTP requests by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "minitoolai_http_request_seconds",
    "Time to the last byte, by route",
    ["route"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CHARGED = Counter(
    "minitoolai_charged_nanousd", "Nano-dollars settled, by model", ["model"], registry=REGISTRY
)
TOKENS = Counter(
    "minitoolai_tokens",
    "Tokens billed, by model and direction",
    ["model", "direction"],
    registry=REGISTRY,
)
UPSTREAM_FAILURES = Counter(
    "minitoolai_upstream_failures",
    "Deployment attempts that failed",
    ["deployment"],
    registry=REGISTRY,
)

access = logging.getLogger("minitoolai.access")
_json_logs = False  # structured fields are built only when a JSON formatter will use them


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(data).decode()


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    global _json_logs
    _json_logs = fmt == "json"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class RequestLog:
    """ASGI middleware: count, time and log each request once it has finished."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(name, str(status)).inc()
            LATENCY.labels(name).observe(elapsed)
            if access.isEnabledFor(logging.INFO):
                method, path = scope["method"], scope["path"]
                fields = (
                    {
                        "method": method,
                        "path": path,
                        "status": status,
                        "ms": round(elapsed * 1e3, 2),
                    }
                    if _json_logs
                    else None
                )
                access.info(
                    "%s %s %d %.1fms",
                    method,
                    path,
                    status,
                    elapsed * 1e3,
                    extra={"fields": fields} if fields else None,
                )
