"""Secrets out of text: what an upstream says in its errors, and every log line.

An upstream may echo what it was sent (``"bad key: Bearer sk-..."``), and an exception's text
may carry a header or a URL; neither may reach a client or a log. Two layers, applied by
:func:`redact`:

- **literal secrets**, registered by whoever holds them (``register``: a provider's key and
  its secret-looking headers, when its endpoint is built), replaced wherever they appear;
- **patterns** for secrets we were never told about: ``Bearer <token>``, OpenAI-style
  ``sk-...`` keys, our own ``mtai-...`` keys, and assignments such as ``api_key=...``,
  ``"api-key": "..."`` or ``Authorization: ...``.

A redacted secret becomes ``[redacted]`` (keeping what names it: ``Bearer [redacted]``,
``api_key=[redacted]``), so a message still says what went wrong. Redaction is idempotent.
Patterns err on the side of hiding: ``Bearer tokens`` in prose becomes ``Bearer [redacted]``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "[redacted]"

#: Literal secrets shorter than this are not replaced (they would mangle ordinary words);
#: the patterns still apply to them.
MIN_LITERAL = 4

_VALUE = r"[^\s\"'&,;<>\[\]{}]+"
_PATTERN = re.compile(
    # 1: a name that announces a secret, then its value
    r"(?P<name>\b(?:x-)?(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token"
    r"|client[_-]?secret|secret[_-]?key|password|authorization)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:Bearer|Basic|Token)\s+)?+)" + _VALUE + r"|"
    # 2: a bearer credential
    r"(?P<scheme>\bBearer\s+)" + _VALUE + r"|"
    # 3: key shapes: OpenAI-style sk-..., ours (mtai-...)
    r"(?P<shape>\b(?:sk|mtai)-)[A-Za-z0-9_\-]{6,}",
    re.IGNORECASE,
)

#: Every pattern above contains one of these (lower-cased): a line without any skips the regex.
_TRIGGERS = ("bearer", "sk-", "mtai-", "key", "token", "secret", "password", "authorization")

_lock = threading.Lock()
_literals: tuple[str, ...] = ()  # longest first


def _keep_label(match: re.Match[str]) -> str:
    return (match.group("name") or match.group("scheme") or match.group("shape") or "") + REDACTED


def register(*values: str | None) -> None:
    """Remember secrets to be replaced in every later :func:`redact` (logs included)."""
    global _literals
    new = {v for v in values if v and len(v) >= MIN_LITERAL}
    if new <= set(_literals):
        return
    with _lock:
        _literals = tuple(sorted(new | set(_literals), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with registered secrets, ``secrets`` and secret-shaped tokens replaced.

    Cheap when there is nothing to hide (a few substring tests), as on most log lines.
    """
    literals = _literals
    if secrets:
        extra = {v for v in secrets if len(v) >= MIN_LITERAL}
        literals = tuple(sorted(extra.union(literals), key=len, reverse=True))
    for literal in literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
    lowered = text.lower()
    for trigger in _TRIGGERS:
        if trigger in lowered:
            return _PATTERN.sub(_keep_label, text)
    return text


def secret_header_values(headers: dict[str, str]) -> list[str]:
    """Values of headers (or query parameters) whose name says they carry a credential."""
    markers = ("key", "token", "auth", "secret", "password", "signature", "sig")
    return [value for name, value in headers.items() if any(m in name.lower() for m in markers)]
