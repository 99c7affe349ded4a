"""Logs an operator can read and metrics they can scrape.

One log line per request, written after the response (never an access log on the hot path).
Every response carries OpenAI's two debugging headers: ``x-request-id`` (ours, ``req_`` + hex,
also in the access line and on the request's charge) and ``openai-processing-ms`` (the time to
the response head). The id reaches the ledger through ``REQUEST_ID``, a context variable the
middleware sets, so no service signature has to carry it.

Secrets never reach a log line. Code logs only key prefixes, and every record is also passed
through ``minitoolai.redact`` (registered upstream keys, ``Bearer ...``, ``sk-...``,
``mtai-...``, ``api_key=...``), message, arguments and traceback alike: an upstream's error text
or an exception may carry what we would never log on purpose. This is installed when this module
is imported, as a log record factory, so it holds however logging is configured (``serve``'s
``setup_logging``, uvicorn's defaults, pytest's caplog); a logger filter would not do, since
Python applies a logger's filters only to records logged on that very logger, not to those of
its children. ``setup_logging`` also puts the same filter on its handler, for records made
without the factory.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minitoolai.ids import hex_id
from minitoolai.redact import redact

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

RATE_LIMITED = Counter(
    "minitoolai_rate_limited",
    "Requests refused by a rate limit, by scope (key, account) and what ran out",
    ["scope", "kind"],
    registry=REGISTRY,
)
BUDGET_REFUSED = Counter(
    "minitoolai_budget_refused",
    "Holds refused by a spend budget, by scope (key, account) and period (daily, monthly, total)",
    ["scope", "period"],
    registry=REGISTRY,
)
RATE_LIMIT_FALLBACK = Counter(
    "minitoolai_rate_limit_fallback",
    "Admissions counted in-process because Redis was unreachable (limits_on_redis_error=local)",
    registry=REGISTRY,
)

UPSTREAM_LATENCY = Histogram(
    "minitoolai_upstream_first_item_seconds",
    "Time from asking a deployment to its first item (the first token, or the whole answer)",
    ["deployment"],  # the configured deployments: a bounded set
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
# Read from the database when /metrics is scraped: the same figure whichever process answers,
# so under ``--workers`` the most recent scrape's value is the one shown.
HOLDS_OPEN = Gauge(
    "minitoolai_holds_open",
    "Charges held and not yet settled or released (every process; a request held on a"
    " lease has no row until it finishes)",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
QUEUE_DEPTH = Gauge(
    "minitoolai_image_queue_depth",
    "Image jobs waiting for a worker",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)

#: the id of the request this task serves (None outside a request: the CLI, the image worker)
REQUEST_ID: ContextVar[str | None] = ContextVar("minitoolai_request_id", default=None)

access = logging.getLogger("minitoolai.access")
_json_logs = False  # structured fields are built only when a JSON formatter will use them


_traceback_formatter = logging.Formatter()


def redact_record(record: logging.LogRecord) -> None:
    """Take secrets out of a record's message, traceback and stack, in place; once (a record
    whose message was replaced since, as ``logging.makeLogRecord`` does, is redacted again)."""
    done = record.__dict__.get("_minitoolai_redacted")
    if done is not None and done[0] is record.msg and done[1] is record.args:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it itself when it formats
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    record.__dict__["_minitoolai_redacted"] = (record.msg, record.args)
    if record.exc_info and not record.exc_text:
        record.exc_text = _traceback_formatter.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingFilter(logging.Filter):
    """A filter for handlers (or loggers) that redacts instead of dropping."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def install_redaction() -> None:
    """Make every log record of this process redacted at creation; safe to call again."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_minitoolai_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    factory._minitoolai_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


install_redaction()


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the request id of the
    request the line was logged in (``REQUEST_ID``), on every line, not only the access line."""

    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, "fields", None)
        data = _json_fields(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            extra if isinstance(extra, dict) else None,
        )
        if record.exc_text:
            data["exc"] = record.exc_text
        elif record.exc_info:
            data["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(data).decode()


def _json_fields(
    created: float, level: str, logger: str, message: str, extra: dict[str, Any] | None
) -> dict[str, Any]:
    """A JSON line's fields (``extra``'s strings redacted; ``message`` already is)."""
    data: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
        "request_id": REQUEST_ID.get(),
    }
    if extra:
        data.update({k: redact(v) if isinstance(v, str) else v for k, v in extra.items()})
    return data


#: the text format; ``log_access`` writes the access line in it without a record
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    global _json_logs, _direct
    _json_logs = fmt == "json"
    install_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    _direct = handler
    # neither format names a caller, a thread or a process, so no record looks them up (the
    # logging HOWTO's "Optimization"): a stack walk and a getpid system call less per line
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a client's ``%0A`` or ``%00`` in a URL can
    neither forge a log line nor corrupt one."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def new_request_id() -> str:
    """``req_`` and 24 hex digits, like OpenAI's ids (and our charge ids)."""
    return "req_" + hex_id(12)


#: what a client's own ``X-Request-Id`` may be: short, and safe in a log line, a header, a URL
CLIENT_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is well formed, else a new one of ours."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            if CLIENT_REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return new_request_id()


#: each (route, status)'s request counter and latency histogram: ``labels()`` takes a lock and
#: builds a key each time, on every request; routes and statuses are bounded sets
_ROUTE_SERIES: dict[tuple[str, int], tuple[Counter, Histogram]] = {}


def _route_series(route: str, status: int) -> tuple[Counter, Histogram]:
    series = (REQUESTS.labels(route, str(status)), LATENCY.labels(route))
    _ROUTE_SERIES[route, status] = series
    return series


class RequestLog:
    """ASGI middleware: name each request, time it, add the debugging headers to its response,
    and count and log it once it has finished.

    A client's ``X-Request-Id`` is taken when it is well formed (``CLIENT_REQUEST_ID``), so one
    id follows a call through the client's logs, ours, the charge and the upstream; otherwise
    the id is ours. A client's id is not unique by construction: it names, it does not key.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_of(scope)
        id_header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed_ms = int((time.perf_counter() - start) * 1e3)
                headers = [
                    *message.get("headers", ()),
                    id_header,
                    (b"openai-processing-ms", str(elapsed_ms).encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUEST_ID.reset(token)
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            name = getattr(route, "path", None) or "unmatched"
            counted = _ROUTE_SERIES.get((name, status))
            if counted is None:
                counted = _route_series(name, status)
            counted[0].inc()
            counted[1].observe(elapsed)
            if access.isEnabledFor(logging.INFO):
                log_access(
                    printable(scope["method"]),
                    printable(scope["path"]),
                    status,
                    request_id,
                    elapsed,
                )


#: the handler ``setup_logging`` installed: while the access line would reach it alone, the
#: line is written to it directly (``log_access``)
_direct: logging.StreamHandler[Any] | None = None


def log_access(method: str, path: str, status: int, request_id: str, elapsed: float) -> None:
    """The request's access line, as ``logging`` would write it. Through ``logging`` it costs
    ~5% of a small request's CPU (a record, a redaction, a format, each line); while the line
    would go only to the handler of ``setup_logging`` (no other handler, no filter on the way:
    tests' ``caplog`` adds one), the same text is written to that handler's stream at once."""
    ms = elapsed * 1e3
    message = f"{method} {path} {status} {request_id} {ms:.1f}ms"
    fields = (
        {
            "method": method,
            "path": path,
            "status": status,
            "ms": round(ms, 2),
            "request_id": request_id,
        }
        if _json_logs
        else None
    )
    handler = _direct
    if handler is None or not _reaches_only(handler):
        access.info("%s", message, extra={"fields": fields} if fields else None)
        return
    now = time.time()
    message = redact(message)
    if fields is not None:
        line = orjson.dumps(_json_fields(now, "info", access.name, message, fields)).decode()
    else:  # TEXT_FORMAT, rendered
        line = f"{_asctime(now)} INFO    {access.name}: {message}"
    handler.acquire()
    try:
        handler.stream.write(line + handler.terminator)
        handler.stream.flush()
    except Exception:  # as logging does: a failed write (a closed stderr) is reported, not raised
        handler.handleError(logging.makeLogRecord({"name": access.name, "msg": line}))
    finally:
        handler.release()


_second: tuple[int, str] = (0, "")


def _asctime(now: float) -> str:
    """``logging.Formatter``'s default time (``2026-12-02 14:00:00,123``), local; the seconds'
    text made once a second."""
    global _second
    whole = int(now)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)))
    return f"{_second[1]},{int((now - whole) * 1000):03d}"


def _reaches_only(handler: logging.Handler) -> bool:
    """Whether an INFO record of the access logger would reach ``handler`` and nothing else,
    through no filter but its own redaction (which the direct line does itself)."""
    logger: logging.Logger | None = access
    while logger is not None:
        if logger.filters or logger.disabled:
            return False
        if logger.handlers:
            return (
                logger.parent is None  # the root
                and len(logger.handlers) == 1
                and logger.handlers[0] is handler
                and handler.level <= logging.INFO
                and all(isinstance(f, RedactingFilter) for f in handler.filters)
            )
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


# -- /metrics -------------------------------------------------------------------------------


def metrics_allowed(authorization: str | None, secrets_: list[str]) -> bool:
    """A ``Bearer`` token equal to one of ``secrets_`` (compared in constant time)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    given = token.strip().encode()
    found = False
    for secret in secrets_:
        found |= hmac.compare_digest(given, secret.encode())
    return found


def multiprocess_metrics_dir() -> str:
    """Put ``serve --workers N``'s metrics in files every worker writes and any can sum:
    ``PROMETHEUS_MULTIPROC_DIR`` if the operator set it (emptied of a previous run's files),
    else a fresh temporary directory. Set before the workers start, so they inherit it."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="minitoolai-metrics-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def metrics_body() -> tuple[bytes, str]:
    """The exposition: this process's registry, or, under ``serve --workers N``
    (``PROMETHEUS_MULTIPROC_DIR`` set), every worker's values summed from their files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
