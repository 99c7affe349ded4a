"""The schema, as SQLAlchemy Core tables. Alembic migrations create it; this file describes it.

Money columns are BIGINT nano-dollars. ``accounts.balance`` and ``accounts.held`` are caches of
the ledger: ``balance == SUM(ledger_entries.amount)`` and ``held == SUM(ledger_entries.held)``
per account, always, because every change to them happens in the same transaction as the entry.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

#: the entry kinds a charge has at most one of (a lease's ``grow``, ``draw``, ``return`` repeat)
ONCE_KINDS = "kind NOT IN ('grow', 'draw', 'return')"


def rate_limit_columns() -> list[Column[int]]:
    """Requests, tokens, images per minute and requests in flight (``limits.rates``)."""
    return [
        Column(f"limit_{name}", Integer, nullable=True)
        for name in ("rpm", "tpm", "ipm", "max_concurrent")
    ]


def budget_columns() -> list[Column[int]]:
    """Spend caps per UTC day, per UTC month and in total, in nano-dollars (``ledger.budgets``,
    migration 0012); NULL: no cap."""
    return [
        Column(f"{name}_budget", BigInteger, nullable=True)
        for name in ("daily", "monthly", "total")
    ]


accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("balance", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # the console's suspension (migration 0009): its keys are refused (accounts.auth)
    Column("suspended", Boolean, nullable=False, server_default="0"),
    # the account's own rate limits (migration 0011, docs/limits.md); NULL: the default
    *rate_limit_columns(),
    *budget_columns(),  # the account's spend budgets (0012, docs/billing.md)
    CheckConstraint("held >= 0", name="ck_accounts_held_nonneg"),
    CheckConstraint("balance >= held", name="ck_accounts_covered"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("prefix", String(32), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    Column("allowed_models", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    # the key's own rate limits (migration 0011, docs/limits.md); NULL: the default
    *rate_limit_columns(),
    *budget_columns(),  # the key's spend budgets (0012, docs/billing.md)
)

# One row per charged request: its hold, then its settlement or release. The usage log.
# On PostgreSQL ``charges`` and ``ledger_entries`` carry no foreign keys (migration 0015: their
# checks were 29% of a batch of settles there); the ledger's statements keep them, the audit checks
charges = Table(
    "charges",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("api_key_id", Integer, ForeignKey("api_keys.id"), nullable=True),
    Column("kind", String(16), nullable=False),  # chat | image | speech | embeddings
    Column("model", String(200), nullable=False),
    Column("status", String(16), nullable=False),  # held | settled | released | refunded
    Column("held_amount", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=True),
    Column("prompt_tokens", BigInteger, nullable=True),
    Column("completion_tokens", BigInteger, nullable=True),
    Column("units", BigInteger, nullable=True),  # images, characters
    Column("usage_estimated", Boolean, nullable=False, server_default="0"),
    Column("served_by", String(200), nullable=True),
    # "<endpoint> <client's key>": a key is scoped to the endpoint it was first used on
    Column("idempotency_key", String(300), nullable=True),
    Column("request_hash", String(64), nullable=True),  # the body a key is bound to
    Column("result", JSON, nullable=True),  # what an idempotent retry is answered with
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # the hold's deadline
    Column("settled_at", DateTime(timezone=True), nullable=True),
    Column("request_id", String(64), nullable=True),  # the HTTP request's x-request-id
    # the UTC day (YYYY-MM-DD) a budgeted hold was taken in; NULL: no budget counted it (0012)
    Column("budget_period", String(10), nullable=True),
    UniqueConstraint("account_id", "idempotency_key", name="uq_charges_idempotency"),
    CheckConstraint("held_amount >= 0", name="ck_charges_hold_nonneg"),
    Index("ix_charges_account_created", "account_id", "created_at"),
    # the sweeper's: live holds only, by deadline (0013)
    Index(
        "ix_charges_held_expires",
        "expires_at",
        sqlite_where=text("status = 'held'"),
        postgresql_where=text("status = 'held'"),
    ),
    # Ledger.spent: an account's settled costs since a time, from the index alone (0010)
    Index(
        "ix_charges_account_settled",
        "account_id",
        "created_at",
        "cost",
        sqlite_where=text("status = 'settled'"),
        postgresql_where=text("status = 'settled'"),
    ),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("charge_id", String(64), ForeignKey("charges.id"), nullable=True),
    # topup hold settle release refund redeem ...; a lease's: hold grow draw return release
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),  # change to the balance
    Column("held", BigInteger, nullable=False),  # change to the held amount
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A charge moves through each step at most once: the database refuses a double settle; a
    # lease's grow/draw/return entries repeat (migrations 0014 and 0016).
    Index(
        "uq_ledger_charge_kind",
        "charge_id",
        "kind",
        unique=True,
        postgresql_where=text(ONCE_KINDS),
        sqlite_where=text(ONCE_KINDS),
    ),
    Index("ix_ledger_account_id", "account_id", "id"),
)

# Text-to-image jobs. The database is the queue's source of truth: workers claim rows with a
# conditional UPDATE (SKIP LOCKED on PostgreSQL), hold a lease, and heartbeat it.
image_jobs = Table(
    "image_jobs",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # random, not sequential
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("charge_id", String(64), ForeignKey("charges.id"), nullable=False),
    Column("model", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # queued running succeeded failed cancelled
    Column("progress", Float, nullable=False, server_default="0"),
    Column("message", Text, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("worker_id", String(64), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("result_key", String(200), nullable=True),
    Column("seed", BigInteger, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_image_jobs_status_created", "status", "created_at"),
)

# -- people (the storefront's users; issue 14) -----------------------------------------------

# A person signs in with an email and a password (argon2id) and owns one billing account.
users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),  # lowercased
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # customer | admin
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A browser session: the cookie holds a random token, the row only its SHA-256.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# A password-reset link: single use, expiring, stored as the SHA-256 of its token.
password_resets = Table(
    "password_resets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# Responses the Responses API kept (``store``, the default): the response object as the client
# got it, and the conversation it ends in chat's messages, which ``previous_response_id``
# continues. Deleting a response deletes its row.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("body", JSON, nullable=False),
    Column("conversation", JSON, nullable=False),
    Index("ix_responses_account_created", "account_id", "created_at"),
)

# Redeem codes (issue 14): a batch is what the operator made at once (one amount, one expiry);
# each code is kept only as the sha256 of its normalised text, with its last 4 characters to
# tell codes apart in listings. Redeeming fills ``redeemed_by``/``redeemed_at``/``entry_id`` in
# the same transaction as the account's credit and its ``redeem`` ledger entry
# (``ledger.store``), so a used code always names the one entry that paid it.
code_batches = Table(
    "code_batches",
    metadata,
    Column("id", String(40), primary_key=True),  # batch_<hex>
    Column("amount", BigInteger, nullable=False),  # nano-dollars, each code of the batch
    Column("count", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_by", String(200), nullable=False),  # cli | admin-api | a console user
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("amount > 0", name="ck_code_batches_amount_positive"),
    CheckConstraint("count > 0", name="ck_code_batches_count_positive"),
)

redeem_codes = Table(
    "redeem_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch_id", String(40), ForeignKey("code_batches.id"), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("last4", String(4), nullable=False),
    Column("redeemed_by", Integer, ForeignKey("accounts.id"), nullable=True),
    Column("redeemed_at", DateTime(timezone=True), nullable=True),
    Column("entry_id", Integer, ForeignKey("ledger_entries.id"), nullable=True, unique=True),
    CheckConstraint("(redeemed_at IS NULL) = (entry_id IS NULL)", name="ck_redeem_codes_paid_once"),
)

# Card top-ups through Stripe Checkout (issue 14): an order is made before its Checkout Session,
# so a webhook's session must name an order this server made, for its amount and currency.
# ``entry_id`` is the ``payment`` entry that credited it, written in the same transaction as the
# credit (``ledger.store``); refunds and disputes take back through ``payment_events``, one row
# per Stripe event applied, each naming the entry it wrote.
payment_orders = Table(
    "payment_orders",
    metadata,
    Column("id", String(40), primary_key=True),  # ord_<hex>
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),  # nano-dollars credited when paid
    Column("amount_minor", BigInteger, nullable=False),  # what Stripe charges, in cents
    Column("currency", String(3), nullable=False),  # usd
    Column("status", String(16), nullable=False),  # created | paid | refunded | disputed
    Column("stripe_session_id", String(200), nullable=True, unique=True),
    Column("payment_intent_id", String(200), nullable=True, unique=True),
    Column("entry_id", Integer, ForeignKey("ledger_entries.id"), nullable=True, unique=True),
    # what refunds (Stripe's running total) and disputes asked back, in cents
    Column("refunded_minor", BigInteger, nullable=False, server_default="0"),
    Column("disputed_minor", BigInteger, nullable=False, server_default="0"),
    Column("taken_back", BigInteger, nullable=False, server_default="0"),  # nano-dollars taken
    Column("shortfall", BigInteger, nullable=False, server_default="0"),  # asked, not there
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("paid_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("amount > 0 AND amount_minor > 0", name="ck_payment_orders_positive"),
    CheckConstraint(
        "(status = 'created') = (entry_id IS NULL)", name="ck_payment_orders_paid_once"
    ),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("id", String(200), primary_key=True),  # Stripe's event id (evt_...)
    Column("type", String(100), nullable=False),
    Column("order_id", String(40), ForeignKey("payment_orders.id"), nullable=False, index=True),
    Column("entry_id", Integer, ForeignKey("ledger_entries.id"), nullable=True, unique=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

# -- the operator's console (issue 14, migration 0009) ----------------------------------------

# Every admin action, from the console, the CLI or the admin API (``minitoolai.audit``).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("actor", String(254), nullable=False),  # cli | admin-api | the admin's email
    Column("action", String(64), nullable=False),  # e.g. credit.adjust, codes.create
    Column("target", String(254), nullable=True),  # an account, a batch, a key prefix, a model
    Column("details", JSON, nullable=True),
    Index("ix_audit_log_action_id", "action", "id"),
    Index("ix_audit_log_actor_id", "actor", "id"),
)

# The console's price overrides, nano-dollars, on top of the config file's (``ledger.pricing``).
price_overrides = Table(
    "price_overrides",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("input_per_m", BigInteger, nullable=True),
    Column("output_per_m", BigInteger, nullable=True),
    Column("per_image", BigInteger, nullable=True),
    Column("per_m_chars", BigInteger, nullable=True),
    Column("updated_by", String(254), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A low-balance alert per account (docs/billing.md): below ``threshold`` nano-dollars available,
# one email to the owner and/or a POST to ``webhook_url``. ``armed`` goes false when the alert
# is claimed for sending (one conditional UPDATE: replicas never send twice) and true again
# once the account is back at or above the threshold.
account_alerts = Table(
    "account_alerts",
    metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("threshold", BigInteger, nullable=False),
    Column("notify_email", Boolean, nullable=False, server_default="1"),
    Column("webhook_url", Text, nullable=True),
    Column("armed", Boolean, nullable=False, server_default="1"),
    Column("alerted_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("threshold > 0", name="ck_account_alerts_threshold_positive"),
)

# Spend budgets' counters (migration 0012, ``ledger.budgets``): per key or account and period
# (``day:YYYY-MM-DD``, ``month:YYYY-MM``, ``total``), what its settled charges cost and what
# its live holds reserve. Moved only by the ledger's hold/settle/release/refund statements.
budget_spend = Table(
    "budget_spend",
    metadata,
    Column("scope", String(8), primary_key=True),  # key | account
    Column("scope_id", Integer, primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("spent", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("cap", BigInteger, nullable=True),  # the cap in force at its latest hold
    CheckConstraint("held >= 0", name="ck_budget_spend_held_nonneg"),
)
