"""``minitoolai keys``: create, list, limit, budget and revoke API keys."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minitoolai import audit
from minitoolai.cli import output
from minitoolai.cli.limits import set_budgets, set_limits
from minitoolai.cli.options import (
    ConcurrentOpt,
    DailyBudgetOpt,
    IpmOpt,
    JsonOpt,
    MonthlyBudgetOpt,
    RateOpt,
    TotalBudgetOpt,
    TpmOpt,
    parse_budgets,
    parse_rates,
)
from minitoolai.cli.running import run
from minitoolai.limits.overrides import LimitOverrides

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

KeyPrefixArg = Annotated[str, typer.Argument(help="The key's visible prefix (or the whole key).")]


@app.command("create")
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
    rates = parse_rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)
    budgets = parse_budgets(daily=daily_budget, monthly=monthly_budget, total=budget)

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

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    output.console.print(f"API key (shown once, keep it safe): [bold]{data['api_key']}[/bold]")


@app.command("list")
def keys_list(
    name: Annotated[str, typer.Argument(help="Account name.")], as_json: JsonOpt = False
) -> None:
    """List an account's keys (prefixes only; keys are stored as hashes)."""
    data = [k.to_dict() for k in run(lambda svc: svc.accounts.list_keys(name))]
    if as_json:
        output.print_json(data)
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
    output.console.print(table)


@app.command("limit")
def keys_limit(
    key_prefix: KeyPrefixArg,
    rpm: RateOpt = None,
    tpm: TpmOpt = None,
    ipm: IpmOpt = None,
    max_concurrent: ConcurrentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a key's rate limits; options left out are kept, 0 or none clears one."""
    rates = parse_rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)
    set_limits("key", key_prefix, rates, as_json)


@app.command("budget")
def keys_budget(
    key_prefix: KeyPrefixArg,
    daily_budget: DailyBudgetOpt = None,
    monthly_budget: MonthlyBudgetOpt = None,
    budget: TotalBudgetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or clear a key's spend budgets (a request past one is a 402 budget_exceeded)."""
    changes = parse_budgets(daily=daily_budget, monthly=monthly_budget, total=budget)
    set_budgets("key", key_prefix, changes, as_json)


@app.command("revoke")
def keys_revoke(key_prefix: KeyPrefixArg, as_json: JsonOpt = False) -> None:
    """Revoke a key. Every replica refuses it within a second (docs/deployment.md)."""

    async def go(svc: Services) -> None:
        await svc.accounts.revoke_key(key_prefix)
        await svc.audit.record(audit.CLI, "key.revoke", key_prefix[:12])

    run(go)
    if as_json:
        output.print_json({"prefix": key_prefix[:12], "revoked": True})
        return
    output.console.print(f"revoked {key_prefix[:12]}")
