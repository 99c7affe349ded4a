"""The ``minitoolai`` command: run the server, and manage accounts, credit and keys.

Management commands work directly against the configured database (like Django's
``manage.py``), so they need no running server and no admin key.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer

from minitoolai import audit
from minitoolai.accounts.service import budgets_dict
from minitoolai.bootstrap import Services, build_services
from minitoolai.catalog import IMAGE_DEFAULT_CFG_SCALE, IMAGE_DEFAULT_SCHEDULER, IMAGE_DEFAULT_STEPS
from minitoolai.errors import APIError
from minitoolai.limits.overrides import LimitOverrides, parse_rate
from minitoolai.money import nano_to_usd, usd_to_nano
from minitoolai.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from minitoolai.engines.diffusion import CheckpointConfig

T = TypeVar("T")

HELP = """MiniToolAI: a self-hostable AI gateway with API keys and prepaid credit.

\b
Quick start (embedded default: SQLite and files under ./data):
  minitoolai serve                          # http://127.0.0.1:8000
  minitoolai accounts create alice --credit 5
  curl -H "Authorization: Bearer <key>" http://127.0.0.1:8000/api/balance/
  minitoolai users create you@example.com --admin   # log in: /console
  minitoolai codes create 5 --count 10              # redeemed at /topup

\b
Configuration comes from MINITOOLAI_* environment variables, e.g.
  MINITOOLAI_DATA_DIR=./data
  MINITOOLAI_DATABASE_URL=postgresql+asyncpg://user@host/db
  MINITOOLAI_CONFIG=/etc/minitoolai.toml    (prices, providers, models)
and OPENAI_API_KEY / OPENAI_BASE_URL to route the gpt-* models upstream.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False)
accounts_app = typer.Typer(help="Create, list and inspect accounts.", no_args_is_help=True)
credit_app = typer.Typer(help="Top up an account's prepaid credit.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(credit_app, name="credit")
app.add_typer(keys_app, name="keys")
codes_app = typer.Typer(help="Make and inspect redeem codes.", no_args_is_help=True)
app.add_typer(codes_app, name="codes")
models_app = typer.Typer(
    help="Image models: what serves each name, fetch weights.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
users_app = typer.Typer(help="Storefront logins: people and their accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


class _Console:
    """rich's ``Console``, made at the first print: ``serve`` never loads rich."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        self._console.print(*objects, **options)


console: Console | _Console = _Console()


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _run(action: Callable[[Services], Awaitable[T]]) -> T:
    async def go() -> T:
        services = await build_services(Settings(), engines=False)
        try:
            return await action(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(go())
    except APIError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _usd(value: str) -> int:
    try:
        return usd_to_nano(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (each its own event loop).")] = 1,
) -> None:
    """Run the API server (migrations are applied on start).

    SIGTERM drains: no new connections, requests in flight finish for up to
    MINITOOLAI_DRAIN_GRACE_S, then exit 0 (docs/deployment.md).
    """
    import math
    import signal

    import uvicorn

    from minitoolai.observability import multiprocess_metrics_dir, setup_logging

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    if workers > 1:
        multiprocess_metrics_dir()  # /metrics sums every worker's values
    # uvicorn raises the signal again once it has shut down gracefully, to die of it; a drain
    # that went as planned is a success, so it ends here with 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "minitoolai.app:create_worker_app" if workers > 1 else "minitoolai.app:create_serve_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.drain_grace_s),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at once in this process.")] = 1,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
) -> None:
    """Run image workers alone (e.g. on a GPU machine) against the shared database and storage.

    \b
    Point it at the same database and data dir (or storage) as the API:
      MINITOOLAI_DATABASE_URL=postgresql+asyncpg://... MINITOOLAI_DATA_DIR=/shared minitoolai worker
    and run the API with MINITOOLAI_IMAGE_WORKERS=0 if it should not generate images itself.
    """
    import signal

    from minitoolai.images.build import build_image_engine, build_worker
    from minitoolai.observability import setup_logging

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)

    async def go(svc: Services) -> int:
        engine = await asyncio.to_thread(build_image_engine, settings, svc.config)
        workers = [build_worker(svc.images, engine, svc.wakeup) for _ in range(concurrency)]
        loop = asyncio.get_running_loop()

        def stop_all() -> None:
            for w in workers:
                w.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        console.print(f"image worker(s) {', '.join(w.id for w in workers)} waiting for jobs")
        done = await asyncio.gather(*(w.run(burst=burst) for w in workers))
        return sum(done)

    handled = _run(go)
    console.print(f"worker stopped after {handled} job(s)")


@app.command()
def migrate() -> None:
    """Apply database migrations and exit (serve does this on start too)."""

    async def go(_svc: Services) -> None:
        return None

    _run(go)
    console.print("database is up to date")


@accounts_app.command("create")
def accounts_create(
    name: str,
    credit: Annotated[str, typer.Option(help="Initial credit in USD, e.g. 5 or 0.25.")] = "0",
    as_json: JsonOpt = False,
) -> None:
    """Create an account and its first API key (shown once)."""
    amount = _usd(credit)

    async def go(svc: Services) -> dict[str, Any]:
        account, key = await svc.accounts.create(name, amount)
        await svc.audit.record(
            audit.CLI, "account.create", account.name, {"credit": nano_to_usd(amount)}
        )
        return {"account": account.to_dict(), "api_key": key}

    result = _run(go)
    if as_json:
        _print_json(result)
        return
    acct = result["account"]
    console.print(f"created account [bold]{acct['name']}[/bold] with US${acct['balance']}")
    console.print(f"API key (shown once, keep it safe): [bold]{result['api_key']}[/bold]")


@accounts_app.command("list")
def accounts_list(as_json: JsonOpt = False) -> None:
    """List accounts with their balances."""
    rows = _run(lambda svc: svc.accounts.all())
    data = [a.to_dict() for a in rows]
    if as_json:
        _print_json(data)
        return
    from rich.table import Table

    table = Table("name", "balance (USD)", "held", "available", "created")
    for a in data:
        table.add_row(a["name"], a["balance"], a["held"], a["available"], a["created_at"][:19])
    console.print(table)


@accounts_app.command("show")
def accounts_show(name: str, as_json: JsonOpt = False) -> None:
    """Show an account: balance, open holds and recent ledger entries."""

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        return {
            **account.to_dict(),
            "open_holds": await svc.accounts.open_holds(account.id),
            "recent_entries": await svc.accounts.recent_entries(account.id),
        }

    data = _run(go)
    if as_json:
        _print_json(data)
        return
    console.print(
        f"[bold]{data['name']}[/bold]  balance US${data['balance']}  held US${data['held']} "
        f"({data['open_holds']} open holds)  available US${data['available']}"
    )
    from rich.table import Table

    table = Table("when", "kind", "amount", "held", "request", "note")
    for e in data["recent_entries"]:
        table.add_row(
            e["created_at"][:19],
            e["kind"],
            e["amount"],
            e["held"],
            e["request"] or "",
            e["note"] or "",
        )
    console.print(table)


@accounts_app.command("suspend")
def accounts_suspend(
    name: str,
    restore: Annotated[bool, typer.Option("--restore", help="Lift the suspension.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Suspend an account (its keys are refused, 403, by every replica within a second)."""

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.account_admin.set_suspended(name, not restore)
        action = "account.unsuspend" if restore else "account.suspend"
        await svc.audit.record(audit.CLI, action, account.name)
        return {"object": "account", "name": account.name, "suspended": account.suspended}

    data = _run(go)
    if as_json:
        _print_json(data)
        return
    state = "suspended" if data["suspended"] else "restored"
    console.print(f"{state} [bold]{data['name']}[/bold]", highlight=False)


@accounts_app.command("alert")
def accounts_alert(
    name: str,
    below: Annotated[
        str | None, typer.Option(help="Alert when the available balance goes below this (USD).")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="Also POST the alert as JSON to this http(s) URL.")
    ] = None,
    email: Annotated[
        bool, typer.Option("--email/--no-email", help="Email the account's owner (its login).")
    ] = True,
    off: Annotated[bool, typer.Option("--off", help="Remove the account's alert.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a low-balance alert: one email and/or webhook when the balance crosses below."""
    if off == (below is not None):
        raise typer.BadParameter("give --below USD, or --off")
    threshold = None if below is None else _usd(below)

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        if threshold is None:
            await svc.alerts.clear(account.id)
            await svc.audit.record(audit.CLI, "alert.clear", account.name)
            return {"object": "balance_alert", "account": account.name, "deleted": True}
        alert = await svc.alerts.configure(account.id, threshold, email=email, webhook_url=webhook)
        await svc.audit.record(audit.CLI, "alert.set", account.name, alert.audit_details())
        return alert.to_dict(account.name)

    data = _run(go)
    if as_json:
        _print_json(data)
    elif data.get("deleted"):
        console.print(f"removed the low-balance alert of [bold]{data['account']}[/bold]")
    else:
        to = " and ".join(
            (["email the owner"] if data["email"] else [])
            + ([f"POST {data['webhook_url']}"] if data["webhook_url"] else [])
        )
        console.print(
            f"[bold]{data['account']}[/bold]: below US${data['below']} available, {to}",
            highlight=False,
        )


@credit_app.command("add")
def credit_add(
    name: str,
    usd: Annotated[str, typer.Argument(help="Amount in USD, e.g. 10 or 0.50.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the ledger).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top up an account ("Ricarica")."""
    amount = _usd(usd)

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        await svc.ledger.top_up(account.id, amount, note)
        await svc.audit.record(
            audit.CLI, "credit.add", account.name, {"amount": nano_to_usd(amount), "note": note}
        )
        return (await svc.accounts.get(name)).to_dict()

    data = _run(go)
    if as_json:
        _print_json(data)
        return
    console.print(f"added US${nano_to_usd(amount)}; balance now US${data['balance']}")


RateOpt = Annotated[
    str | None, typer.Option(help="Requests per minute; 0 or none clears it (docs/limits.md).")
]
TpmOpt = Annotated[str | None, typer.Option(help="Tokens per minute; 0 or none clears it.")]
IpmOpt = Annotated[str | None, typer.Option(help="Images per minute; 0 or none clears it.")]
ConcurrentOpt = Annotated[
    str | None,
    typer.Option("--max-concurrent", help="Requests in flight at once; 0 or none clears it."),
]


def _rates(**given: str | None) -> dict[str, int | None]:
    """The rate options given on the command line (left out: unchanged)."""
    try:
        return {name: parse_rate(text, name) for name, text in given.items() if text is not None}
    except APIError as exc:
        raise typer.BadParameter(exc.message) from None


def _print_limits(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(data)
        return
    who = f"key {data['key']}" if data.get("key") else f"account {data['account']}"
    rates = ", ".join(
        f"{name} {data[name] if data[name] is not None else 'default'}"
        for name in ("rpm", "tpm", "ipm", "max_concurrent")
    )
    console.print(f"[bold]{who}[/bold]: {rates}", highlight=False)


DailyBudgetOpt = Annotated[
    str | None,
    typer.Option("--daily-budget", help="USD per UTC day; none clears it (docs/billing.md)."),
]
MonthlyBudgetOpt = Annotated[
    str | None, typer.Option("--monthly-budget", help="USD per UTC month; none clears it.")
]
TotalBudgetOpt = Annotated[
    str | None, typer.Option("--budget", help="USD in total, never reset; none clears it.")
]


def _budgets(**given: str | None) -> dict[str, int | None]:
    """The budget options given on the command line (left out: unchanged; none: cleared)."""
    return {
        period: None if text.strip().lower() == "none" else _usd(text)
        for period, text in given.items()
        if text is not None
    }


def _print_budgets(who: str, data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(data)
        return
    shown = ", ".join(
        f"{p} {'US$' + data[p] if data[p] is not None else 'none'}"
        for p in ("daily", "monthly", "total")
    )
    console.print(f"[bold]{who}[/bold]: budgets {shown}", highlight=False)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Account name.")],
    label: Annotated[str | None, typer.Option(help="A label for the key.")] = None,
    expires: Annotated[
        datetime | None, typer.Option(help="Expiry, e.g. 2027-01-31T00:00:00+00:00.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Allow only this model (repeatable).")
    ] = None,
    rpm: RateOpt = None,
    tpm: TpmOpt = None,
    ipm: IpmOpt = None,
    max_concurrent: ConcurrentOpt = None,
    daily_budget: DailyBudgetOpt = None,
    monthly_budget: MonthlyBudgetOpt = None,
    budget: TotalBudgetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create another API key for an account (shown once)."""
    rates = _rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)
    budgets = _budgets(daily=daily_budget, monthly=monthly_budget, total=budget)

    async def go(svc: Services) -> dict[str, Any]:
        key, record = await svc.accounts.create_key(
            name,
            name=label,
            expires_at=expires,
            allowed_models=model or None,
            **{f"{p}_budget": v for p, v in budgets.items()},
        )
        limits = None
        if rates:  # the key's own limits, on the row just written
            limits = (await LimitOverrides(svc.db).set_key(key, rates)).to_dict()
        await svc.audit.record(
            audit.CLI,
            "key.create",
            record.account_name,
            {"prefix": record.prefix, "name": label, **rates},
        )
        return {**record.to_dict(), "api_key": key, "limits": limits}

    data = _run(go)
    if as_json:
        _print_json(data)
        return
    console.print(f"API key (shown once, keep it safe): [bold]{data['api_key']}[/bold]")


@keys_app.command("list")
def keys_list(
    name: Annotated[str, typer.Argument(help="Account name.")], as_json: JsonOpt = False
) -> None:
    """List an account's keys (prefixes only; keys are stored as hashes)."""
    data = [k.to_dict() for k in _run(lambda svc: svc.accounts.list_keys(name))]
    if as_json:
        _print_json(data)
        return
    from rich.table import Table

    table = Table("prefix", "label", "models", "created", "expires", "revoked")
    for k in data:
        table.add_row(
            k["prefix"],
            k["name"] or "",
            ",".join(k["allowed_models"] or []) or "all",
            k["created_at"][:19],
            (k["expires_at"] or "")[:19],
            "yes" if k["revoked"] else "",
        )
    console.print(table)


@keys_app.command("limit")
def keys_limit(
    key_prefix: Annotated[str, typer.Argument(help="The key's visible prefix (or the whole key).")],
    rpm: RateOpt = None,
    tpm: TpmOpt = None,
    ipm: IpmOpt = None,
    max_concurrent: ConcurrentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a key's rate limits; options left out are kept, 0 or none clears one."""
    rates = _rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)

    async def go(svc: Services) -> dict[str, Any]:
        changed = await LimitOverrides(svc.db).set_key(key_prefix, rates)
        await svc.audit.record(
            audit.CLI, "key.limits", changed.account, {"prefix": changed.key_prefix, **rates}
        )
        return changed.to_dict()

    _print_limits(_run(go), as_json)


@accounts_app.command("limit")
def accounts_limit(
    name: Annotated[str, typer.Argument(help="Account name.")],
    rpm: RateOpt = None,
    tpm: TpmOpt = None,
    ipm: IpmOpt = None,
    max_concurrent: ConcurrentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set an account's rate limits, shared by all its keys; 0 or none clears one."""
    rates = _rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)

    async def go(svc: Services) -> dict[str, Any]:
        _, changed = await LimitOverrides(svc.db).set_account(name, rates)
        await svc.audit.record(audit.CLI, "account.limits", changed.account, rates)
        return changed.to_dict()

    _print_limits(_run(go), as_json)


@keys_app.command("budget")
def keys_budget(
    key_prefix: Annotated[str, typer.Argument(help="The key's visible prefix (or the whole key).")],
    daily_budget: DailyBudgetOpt = None,
    monthly_budget: MonthlyBudgetOpt = None,
    budget: TotalBudgetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or clear a key's spend budgets (a request past one is a 402 budget_exceeded)."""
    changes = _budgets(daily=daily_budget, monthly=monthly_budget, total=budget)

    async def go(svc: Services) -> dict[str, Any]:
        record, _ = await svc.accounts.set_key_budget(key_prefix, **changes)
        details = {"prefix": record.prefix, **changes}
        await svc.audit.record(audit.CLI, "key.budget", record.account_name, details)
        return {"object": "key_budget", "key": record.prefix, **record.to_dict()["budgets"]}

    data = _run(go)
    _print_budgets(f"key {data['key']}", data, as_json)


@accounts_app.command("budget")
def accounts_budget(
    name: str,
    daily_budget: DailyBudgetOpt = None,
    monthly_budget: MonthlyBudgetOpt = None,
    budget: TotalBudgetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or clear an account's spend budgets, shared by all its keys."""
    changes = _budgets(daily=daily_budget, monthly=monthly_budget, total=budget)

    async def go(svc: Services) -> dict[str, Any]:
        caps = await svc.accounts.set_account_budget(name, **changes)
        await svc.audit.record(audit.CLI, "account.budget", name, changes)
        return {"object": "account_budget", "account": name, **budgets_dict(caps)}

    data = _run(go)
    _print_budgets(f"account {data['account']}", data, as_json)


@keys_app.command("revoke")
def keys_revoke(
    key_prefix: Annotated[str, typer.Argument(help="The key's visible prefix (or the whole key).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key. Every replica refuses it within a second (docs/deployment.md)."""

    async def go(svc: Services) -> None:
        await svc.accounts.revoke_key(key_prefix)
        await svc.audit.record(audit.CLI, "key.revoke", key_prefix[:12])

    _run(go)
    if as_json:
        _print_json({"prefix": key_prefix[:12], "revoked": True})
        return
    console.print(f"revoked {key_prefix[:12]}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Argument(help="The person's email; they log in with it.")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    account: Annotated[
        str | None,
        typer.Option(help="Give this existing account the login (default: a new account)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a login for the storefront (prompts for the password unless --password-stdin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    role = "admin" if admin else "customer"

    async def go(svc: Services) -> tuple[Any, str | None]:
        made = await svc.people.create(email, password, role=role, account=account)
        await svc.audit.record(
            audit.CLI, "user.create", made[0].email, {"role": role, "account": made[0].account_name}
        )
        return made

    person, key = _run(go)
    if as_json:
        _print_json(
            {
                "email": person.email,
                "role": person.role,
                "account": person.account_name,
                "api_key": key,
            }
        )
        return
    console.print(f"created {person.role} {person.email} (account {person.account_name})")
    if key:
        console.print(f"the new account's API key (shown once): {key}", highlight=False)


def _image_checkpoints() -> dict[str, CheckpointConfig]:
    """What serves each image name, from the config file; a bad file is a one-line error."""
    from minitoolai.engines.diffusion import resolve_checkpoints

    try:
        return resolve_checkpoints(Settings().load_file().image_models)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every public image model name, what serves it, and whether its weights are here."""
    from minitoolai.engines.diffusion import weights_present

    checkpoints = _image_checkpoints()
    # What a request that names no sampler, steps or CFG scale gets: the same for every model.
    defaults = {
        "scheduler": IMAGE_DEFAULT_SCHEDULER,
        "steps": IMAGE_DEFAULT_STEPS,
        "cfg_scale": IMAGE_DEFAULT_CFG_SCALE,
    }
    rows = [
        {
            "model": name,
            "checkpoint": cfg.checkpoint,
            "architecture": cfg.architecture,
            "timestep_spacing": cfg.timestep_spacing,
            **defaults,
            "enabled": cfg.enabled,
            "stand_in": cfg.stand_in,
            "weights_present": weights_present(cfg),
        }
        for name, cfg in checkpoints.items()
    ]
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(
        "model",
        "checkpoint",
        "arch",
        "spacing",
        "weights",
        caption=(
            f"A request without scheduler, steps or cfgScale gets {IMAGE_DEFAULT_SCHEDULER}, "
            f"{IMAGE_DEFAULT_STEPS} steps, cfg {IMAGE_DEFAULT_CFG_SCALE:g}, whatever the model."
        ),
    )
    for r in rows:
        mark = "[green]present[/green]" if r["weights_present"] else "[red]missing[/red]"
        note = " (stand-in)" if r["stand_in"] else ""
        table.add_row(
            str(r["model"]),
            f"{r['checkpoint']}{note}",
            str(r["architecture"]),
            str(r["timestep_spacing"]),
            mark if r["enabled"] else "disabled",
        )
    console.print(table)


@models_app.command("pull")
def models_pull(name: Annotated[str, typer.Argument(help="A public image model name.")]) -> None:
    """Download a model's weights into the Hugging Face cache (needs a network)."""
    from minitoolai.engines.diffusion import WeightsUnavailable, pull

    checkpoints = _image_checkpoints()
    if name not in checkpoints:
        console.print(f"[red]error:[/red] no image model {name!r}; see `minitoolai models list`")
        raise typer.Exit(2)
    try:
        located = pull(checkpoints[name], progress=True)
    except WeightsUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(f"{name}: weights ready at {located.path}")


def _expiry(value: str | None) -> datetime | None:
    """``--expires``: a date alone is valid through that day (UTC); a time without a zone is
    UTC."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1)
            return datetime.combine(day, dt_time(), tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise typer.BadParameter(
            f"not a date: {value!r} (e.g. 2027-01-31 or 2027-01-31T18:00:00+01:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@codes_app.command("create")
def codes_create(
    usd: Annotated[str, typer.Argument(help="What each code credits, in USD, e.g. 5 or 0.50.")],
    count: Annotated[int, typer.Option(help="How many codes (1 to 1000).")] = 1,
    expires: Annotated[
        str | None,
        typer.Option(help="Last day (UTC) the codes work, e.g. 2027-01-31, or an exact time."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="What the batch is for.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a batch of single-use redeem codes. They are shown this once: keep them."""
    amount = _usd(usd)
    expires_at = _expiry(expires)

    async def go(svc: Services) -> dict[str, Any]:
        batch = await svc.codes.create_batch(
            amount, count, expires_at=expires_at, note=note, created_by="cli"
        )
        await svc.audit.record(
            audit.CLI,
            "codes.create",
            batch.id,
            {"amount": nano_to_usd(amount), "count": batch.count, "note": note},
        )
        return batch.to_dict()

    data = _run(go)
    if as_json:
        _print_json(data)
        return
    until = f", valid until {data['expires_at']}" if data["expires_at"] else ""
    console.print(
        f"batch [bold]{data['id']}[/bold]: {data['count']} code(s) of US${data['amount']}{until}"
        " (shown once, keep them safe):",
        highlight=False,
    )
    for code in data["codes"]:
        console.print(code, highlight=False)


@codes_app.command("list")
def codes_list(as_json: JsonOpt = False) -> None:
    """List code batches, newest first, with how many codes were redeemed."""
    data = [b.to_dict() for b in _run(lambda svc: svc.codes.batches())]
    if as_json:
        _print_json(data)
        return
    from rich.table import Column, Table

    # the id and the amount whole, however narrow the terminal: `codes show` needs the id
    table = Table(
        Column("batch", no_wrap=True),
        Column("each (USD)", no_wrap=True),
        "redeemed",
        "expires",
        "note",
        "created",
    )
    for b in data:
        table.add_row(
            b["id"],
            b["amount"],
            f"{b['redeemed']}/{b['count']}",
            (b["expires_at"] or "")[:19],
            b["note"] or "",
            b["created_at"][:19],
        )
    console.print(table)


@codes_app.command("show")
def codes_show(
    batch: Annotated[str, typer.Argument(help="The batch id (batch_...).")],
    as_json: JsonOpt = False,
) -> None:
    """Show a batch and its redemptions: which code (its last 4), by which account, when."""
    data = _run(lambda svc: svc.codes.batch(batch)).to_dict()
    if as_json:
        _print_json(data)
        return
    until = f"  expires {data['expires_at']}" if data["expires_at"] else ""
    console.print(
        f"[bold]{data['id']}[/bold]  US${data['amount']} each  "
        f"{data['redeemed']}/{data['count']} redeemed{until}  {data['note'] or ''}",
        highlight=False,
    )
    from rich.table import Table

    table = Table("code", "account", "redeemed at")
    for r in data["redemptions"]:
        table.add_row(r["code"], r["account"], r["redeemed_at"][:19])
    console.print(table)


def main() -> None:
    app()
