"""HMAC signatures: job ids (the poll's credential) and image URLs (signed, expiring).

The secret is ``MINITOOLAI_SECRET_KEY`` or one generated once into the data dir; replicas that
share jobs must share it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

#: an ``exp`` we sign is a unix time in ASCII digits; anything longer is not one of our links
#: (and ``int()`` of thousands of digits is refused by Python: it must stay a 403, not a 500)
MAX_EXPIRY_DIGITS = 12
_EXPIRY = re.compile(rf"[0-9]{{1,{MAX_EXPIRY_DIGITS}}}")


def load_or_create_secret(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip().encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its secret
        return path.read_text(encoding="utf-8").strip().encode()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value.encode()


def _mac(secret: bytes, message: str, size: int = 16) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()[:size]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Signer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def job(self, job_id: int) -> str:
        return _mac(self._secret, f"job:{job_id}")

    def job_ok(self, job_id: int, signature: str) -> bool:
        return hmac.compare_digest(self.job(job_id).encode(), signature.encode())

    def url_query(self, name: str, ttl_s: int, now: float | None = None) -> str:
        expires = int((now or time.time()) + ttl_s)
        return f"exp={expires}&sig={_mac(self._secret, f'file:{name}:{expires}')}"

    def url_ok(self, name: str, expires: str, signature: str, now: float | None = None) -> bool:
        # ASCII digits only: str.isdigit() also accepts "²", which int() then rejects
        if not _EXPIRY.fullmatch(expires) or int(expires) < (now or time.time()):
            return False
        expected = _mac(self._secret, f"file:{name}:{expires}")
        return hmac.compare_digest(expected.encode(), signature.encode())
