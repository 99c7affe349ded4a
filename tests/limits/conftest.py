"""The limits tests' Redis: the shared server's database 5 (keys under a prefix of each
test's own); a test that stops Redis starts its own server instead (``private_redis``)."""

from __future__ import annotations

import os

REDIS_URL = os.environ.get("MINITOOLAI_TEST_LIMITS_REDIS_URL", "redis://127.0.0.1:6379/5")
