"""The access line written directly (``observability.log_access``) is the line ``logging``
writes, in both formats, redacted the same; and it goes through ``logging`` whenever anything
else would see the record (another handler, a filter)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from minitoolai import observability
from minitoolai.observability import access, log_access, setup_logging

KEY = "sk-" + "a1b2c3d4e5f6g7h8"  # a key's shape, in a path: redacted either way
CALL = ("POST", f"/v1/keys/{KEY}/x", 200, "req_0123456789abcdef01234567", 0.00123)


class Seen(logging.Filter):
    """A filter that lets everything through, counting (its presence forces ``logging``)."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def filter(self, record: logging.LogRecord) -> bool:
        self.records += 1
        return True


@pytest.fixture
def configured() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, observability._direct, observability._json_logs)
    try:
        yield
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        observability._direct, observability._json_logs = saved[2], saved[3]


def _lines(fmt: str) -> tuple[str, str, int]:
    """The line written directly, the line through ``logging`` (a filter on the way), and the
    records made for the direct one (none)."""
    setup_logging("info", fmt)
    handler = observability._direct
    assert handler is not None
    out = io.StringIO()
    handler.setStream(out)
    made = 0
    factory = logging.getLogRecordFactory()

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        nonlocal made
        made += 1
        return factory(*args, **kwargs)

    logging.setLogRecordFactory(counting)
    try:
        log_access(*CALL)
        direct, made_direct = out.getvalue(), made
        out.seek(0), out.truncate()
        seen = Seen()
        access.addFilter(seen)  # a filter on the way: the record must be made for it
        try:
            log_access(*CALL)
        finally:
            access.removeFilter(seen)
    finally:
        logging.setLogRecordFactory(factory)
    assert seen.records == 1 and made == 1
    return direct, out.getvalue(), made_direct


def test_the_text_line_is_logging_s_line(configured: None) -> None:
    direct, logged, made = _lines("text")
    assert direct.endswith("\n") and logged.endswith("\n")
    # "2026-12-02 14:00:00,123 INFO    minitoolai.access: POST ..."; the time aside, the same
    assert direct[23:] == logged[23:], (direct, logged)
    assert direct[:10] == logged[:10] and direct[19] == ","
    assert KEY not in direct and "[redacted]" in direct
    assert " INFO    minitoolai.access: POST /v1/keys/" in direct
    assert made == 0  # no record was made for the direct line


def test_the_json_line_is_logging_s_line(configured: None) -> None:
    direct, logged, made = _lines("json")
    one, other = orjson.loads(direct), orjson.loads(logged)
    assert list(one) == list(other)  # the same keys in the same order
    one.pop("time"), other.pop("time")
    assert one == other
    assert one["status"] == 200 and one["ms"] == 1.23 and one["logger"] == "minitoolai.access"
    assert KEY not in direct
    assert made == 0


def test_another_handler_gets_the_record(configured: None) -> None:
    setup_logging("info", "text")
    handler = observability._direct
    assert handler is not None
    handler.setStream(io.StringIO())
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logging.getLogger().addHandler(Keep())
    log_access(*CALL)
    assert [r.name for r in records] == ["minitoolai.access"]
    assert KEY not in records[0].getMessage()
    assert handler.stream.getvalue().count("\n") == 1  # and the usual handler its line


def test_a_failed_write_is_reported_not_raised(
    configured: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("stderr is gone")

    setup_logging("info", "text")
    handler = observability._direct
    assert handler is not None
    handler.setStream(Closed())
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    log_access(*CALL)  # the request it ends is not failed by its log line
    assert len(reported) == 1 and "POST /v1/keys/" in reported[0].getMessage()
