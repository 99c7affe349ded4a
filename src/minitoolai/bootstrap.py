"""Builds the services the API and the worker share, in one place, in dependency order."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from minitoolai.accounts.admin import AccountAdmin
from minitoolai.accounts.auth import Authenticator
from minitoolai.accounts.invalidation import ChangeBus
from minitoolai.accounts.service import AccountService
from minitoolai.alerts import AlertService, webhook_policy
from minitoolai.audit import AuditLog
from minitoolai.chat.images import ImageResolver
from minitoolai.chat.pipeline import ChatService
from minitoolai.codes.service import CodeService
from minitoolai.embeddings.service import EmbeddingService
from minitoolai.engines.diffusion.checkpoints import resolve_checkpoints
from minitoolai.images.build import build_image_service, start_wakeup
from minitoolai.images.notify import Wakeup
from minitoolai.images.service import ImageService
from minitoolai.infra.db import Database
from minitoolai.infra.http import Client, upstream_client
from minitoolai.infra.migrate import upgrade
from minitoolai.ledger.journal import Journal
from minitoolai.ledger.price_overrides import PriceOverrides
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger
from minitoolai.limits.backend import InProcess
from minitoolai.limits.build import build_limits
from minitoolai.limits.service import RateLimits
from minitoolai.payments import Payments, build_payments
from minitoolai.people.mail import Mailer
from minitoolai.people.service import PeopleService
from minitoolai.people.throttle import LoginThrottle
from minitoolai.responses.service import ResponsesService
from minitoolai.responses.store import ResponseStore
from minitoolai.routing.build import Engines, build_engines
from minitoolai.settings import FileConfig, Settings
from minitoolai.speech.service import SpeechService
from minitoolai.vision import FetchPolicy

log = logging.getLogger("minitoolai")


@dataclass
class Services:
    settings: Settings
    config: FileConfig
    db: Database
    ledger: Ledger
    accounts: AccountService
    codes: CodeService
    auth: Authenticator
    http: Client
    chat: ChatService
    responses: ResponsesService
    speech: SpeechService
    embeddings: EmbeddingService
    engines: Engines
    images: ImageService
    wakeup: Wakeup
    people: PeopleService
    alerts: AlertService
    audit: AuditLog
    account_admin: AccountAdmin
    price_overrides: PriceOverrides
    changes: ChangeBus  # key and account changes, to every process's key cache
    payments: Payments | None = None  # card top-ups, when Stripe is configured
    # rate limits (docs/limits.md): build_services sets them from the settings
    limits: RateLimits = field(default_factory=lambda: RateLimits(InProcess()))
    _admin_key: str | None = None

    @property
    def admin_key(self) -> str:
        """Made on first use, so CLI commands never generate one."""
        if self._admin_key is None:
            self._admin_key = _admin_key(self.settings)
        return self._admin_key

    async def aclose(self) -> None:
        await self.changes.close()
        await self.wakeup.close()
        await self.limits.aclose()
        await self.engines.aclose()
        await self.ledger.close()
        await self.http.close()
        await self.db.dispose()


def _admin_key(settings: Settings) -> str:
    """The operator's key: from the environment, or generated once and kept in the data dir."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path: Path = settings.data_dir / "admin.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = "mtai-admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    # Logs redact every key; the operator sees this one once, on the terminal that started us.
    log.warning("generated an admin key, kept in %s (mode 0600)", path)
    print(f"minitoolai: the admin key is {key}", file=sys.stderr, flush=True)
    return key


async def build_services(
    settings: Settings, *, migrate: bool = True, engines: bool = True
) -> Services:
    """Everything the API needs. ``engines=False`` (the CLI, image workers) loads no models."""
    config = settings.load_file()
    db = Database(settings.resolved_database_url())
    if migrate:
        await upgrade(db.engine)
    ledger = Ledger(
        db,
        hold_timeout_s=settings.hold_timeout_s,
        journal=Journal(settings.data_dir / "journal"),  # a file appears at the first settle
        settle_wait=settings.settle_wait,
        leases=settings.ledger_leases,
        gather_s=settings.settle_gather_ms / 1000,
    )
    prices = PriceTable(config.prices)
    price_overrides = PriceOverrides(db, prices)
    await price_overrides.refresh()  # the console's overrides; the app refreshes them
    http = upstream_client()
    routing = await build_engines(settings, config, http) if engines else Engines.empty()
    chat = ChatService(
        ledger,
        prices,
        routing.chat,
        image_resolver=ImageResolver(
            FetchPolicy(
                allowed_networks=tuple(settings.image_fetch_allow),
                max_bytes=settings.image_fetch_max_bytes,
                timeout_s=settings.image_fetch_timeout_s,
            ),
            concurrency=settings.image_fetch_concurrency,
        ),
        max_image_parts=settings.image_max_parts,
    )
    # a typo in [image_models] already stopped load_file; this catches what only the engine
    # can judge (a checkpoint's form, a .ckpt file)
    resolve_checkpoints(config.image_models)
    wakeup = await start_wakeup(settings, db)
    changes = ChangeBus(db)
    accounts = AccountService(db, ledger, changes=changes)
    smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
    people = PeopleService(
        db,
        accounts,
        session_ttl_s=settings.session_ttl_s,
        mailer=Mailer(smtp_url),
        signups=LoginThrottle(max_failures=settings.signups_per_hour, window_s=3_600),
    )
    auth = Authenticator(db, ttl=settings.key_cache_ttl_s, changes=changes)
    return Services(
        settings=settings,
        config=config,
        db=db,
        ledger=ledger,
        accounts=accounts,
        codes=CodeService(db, ledger),
        auth=auth,
        http=http,
        chat=chat,
        responses=ResponsesService(chat, ResponseStore(db)),
        speech=SpeechService(ledger, prices, routing.speech),
        embeddings=EmbeddingService(ledger, prices, routing.embeddings),
        engines=routing,
        images=build_image_service(settings, db, ledger, prices, wakeup),
        wakeup=wakeup,
        people=people,
        alerts=AlertService(
            db,
            people.mailer,
            webhook_policy(settings.alert_webhook_allow_loopback),
            base_url=settings.public_base_url,
        ),
        audit=AuditLog(db),
        account_admin=AccountAdmin(db, auth, changes=changes),
        price_overrides=price_overrides,
        changes=changes,
        payments=build_payments(settings, db, ledger),
        limits=build_limits(settings, config),
    )
