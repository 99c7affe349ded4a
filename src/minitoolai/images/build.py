"""Assemble the image side: service (API), worker and engine, from settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from minitoolai.engines.base import GeneratedImage, ImageEngine, ImageSpec, ProgressCallback
from minitoolai.engines.errors import EngineUnavailable
from minitoolai.images.notify import Wakeup, publish_redis
from minitoolai.images.queue import JobQueue
from minitoolai.images.service import ImageService
from minitoolai.images.signing import Signer, load_or_create_secret
from minitoolai.images.storage import LocalStorage
from minitoolai.images.worker import ImageWorker
from minitoolai.infra.db import Database
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger
from minitoolai.settings import FileConfig, Settings

log = logging.getLogger("minitoolai.images")


class UnavailableEngine:
    """Stands where the diffusers engine cannot be built: every job fails, refunded, saying why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def loaded_models(self) -> list[str]:
        return []

    def generate(
        self, spec: ImageSpec, on_progress: ProgressCallback | None = None
    ) -> GeneratedImage:
        raise EngineUnavailable(self.reason)


def build_image_service(
    settings: Settings, db: Database, ledger: Ledger, prices: PriceTable, wakeup: Wakeup
) -> ImageService:
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    redis_url = settings.redis_url

    async def notify(model: str) -> None:
        wakeup.set()  # workers in this process
        if redis_url:
            await publish_redis(redis_url, model)

    return ImageService(
        ledger,
        prices,
        JobQueue(db, lease_s=settings.job_lease_s, max_attempts=settings.job_max_attempts),
        Signer(load_or_create_secret(secret, settings.data_dir)),
        LocalStorage(settings.data_dir / "images"),
        url_ttl_s=settings.image_url_ttl_s,
        notify=notify,
    )


class LazyEngine:
    """Builds the real engine at the first job, in the worker's thread.

    Importing torch costs seconds and hundreds of MiB; a server that never gets an image job
    should pay neither.
    """

    def __init__(self, factory: Callable[[], ImageEngine]) -> None:
        self._factory = factory
        self._engine: ImageEngine | None = None
        self._lock = threading.Lock()

    def loaded_models(self) -> list[str]:
        return [] if self._engine is None else self._engine.loaded_models()

    def generate(
        self, spec: ImageSpec, on_progress: ProgressCallback | None = None
    ) -> GeneratedImage:
        with self._lock:
            if self._engine is None:
                self._engine = self._factory()
        return self._engine.generate(spec, on_progress)


def build_image_engine(settings: Settings, config: FileConfig) -> ImageEngine:
    """The configured engine. Importing torch takes seconds: call this off the event loop."""
    if settings.image_engine == "test-pattern":
        from minitoolai.engines.pattern import PatternEngine

        return PatternEngine(step_s=settings.test_pattern_step_s)
    from minitoolai.engines.diffusion.checkpoints import resolve_checkpoints

    checkpoints = resolve_checkpoints(config.image_models)
    try:
        from minitoolai.engines.diffusion.engine import DiffusionEngine

        return DiffusionEngine(
            checkpoints,
            allow_download=settings.image_allow_download,
            cache_dir=None,
        )
    except ImportError as exc:
        reason = (
            f"the diffusers engine is not installed ({exc.name} is missing): install the "
            "'images' extra (pip install torch==2.13.0 && pip install 'minitoolai[images]')"
        )
        log.warning("%s; image jobs will fail (refunded) until it is", reason)
        return UnavailableEngine(reason)


async def start_wakeup(settings: Settings, db: Database) -> Wakeup:
    wakeup = Wakeup()
    if not db.is_sqlite:
        await wakeup.listen_postgres(settings.resolved_database_url())
    if settings.redis_url:
        await wakeup.listen_redis(settings.redis_url)
    return wakeup


def build_worker(
    service: ImageService, engine: ImageEngine, wakeup: Wakeup, poll_s: float = 1.0
) -> ImageWorker:
    return ImageWorker(
        service.queue,
        service.ledger,
        service.prices,
        service.storage,
        engine,
        wakeup,
        poll_s=poll_s,
    )
