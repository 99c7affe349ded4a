"""The limiter a process uses: in Redis when ``MINITOOLAI_REDIS_URL`` is set (shared by every
process on it), else in this process; the defaults from the config file's ``[limits]``."""

from __future__ import annotations

from minitoolai.limits.backend import InProcess
from minitoolai.limits.rates import Rates
from minitoolai.limits.service import Defaults, RateLimits
from minitoolai.settings import FileConfig, LimitRatesConfig, Settings


def _rates(table: LimitRatesConfig) -> Rates:
    return Rates(table.rpm, table.tpm, table.ipm, table.max_concurrent)


def build_limits(settings: Settings, config: FileConfig) -> RateLimits:
    defaults = Defaults(_rates(config.limits.key), _rates(config.limits.account))
    if settings.redis_url:
        from minitoolai.limits.redis_backend import RedisBackend  # redis: only when configured

        backend = RedisBackend.from_url(settings.redis_url, settings.limits_redis_prefix)
        return RateLimits(backend, defaults, on_store_error=settings.limits_on_redis_error)
    return RateLimits(InProcess(), defaults)
