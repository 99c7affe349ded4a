"""``minitoolai accounts``: create, list, show, suspend, alert, limit and budget accounts."""

from __future__ import annotations

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
    parse_usd,
)
from minitoolai.cli.running import run
from minitoolai.money import nano_to_usd

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

app = typer.Typer(help="Create, list and inspect accounts.", no_args_is_help=True)


@app.command("create")
def accounts_create(
    name: str,
    credit: Annotated[str, typer.Option(help="Initial credit in USD, e.g. 5 or 0.25.")] = "0",
    as_json: JsonOpt = False,
) -> None:
    """Create an account and its first API key (shown once)."""
    amount = parse_usd(credit)

    async def go(svc: Services) -> dict[str, Any]:
        account, key = await svc.accounts.create(name, amount)
        await svc.audit.record(
            audit.CLI, "account.create", account.name, {"credit": nano_to_usd(amount)}
        )
        return {"account": account.to_dict(), "api_key": key}

    result = run(go)
    if as_json:
        output.print_json(result)
        return
    acct = result["account"]
    output.console.print(f"created account [bold]{acct['name']}[/bold] with US${acct['balance']}")
    output.console.print(f"API key (shown once, keep it safe): [bold]{result['api_key']}[/bold]")


@app.command("list")
def accounts_list(as_json: JsonOpt = False) -> None:
    """List accounts with their balances."""
    rows = run(lambda svc: svc.accounts.all())
    data = [a.to_dict() for a in rows]
    if as_json:
        output.print_json(data)
        return
    from rich.table import Table

    table = Table("name", "balance (USD)", "held", "available", "created")
    for a in data:
        table.add_row(a["name"], a["balance"], a["held"], a["available"], a["created_at"][:19])
    output.console.print(table)


@app.command("show")
def accounts_show(name: str, as_json: JsonOpt = False) -> None:
    """Show an account: balance, open holds and recent ledger entries."""

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        return {
            **account.to_dict(),
            "open_holds": await svc.accounts.open_holds(account.id),
            "recent_entries": await svc.accounts.recent_entries(account.id),
        }

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    output.console.print(
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
    output.console.print(table)


@app.command("suspend")
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

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    state = "suspended" if data["suspended"] else "restored"
    output.console.print(f"{state} [bold]{data['name']}[/bold]", highlight=False)


@app.command("alert")
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
    threshold = None if below is None else parse_usd(below)

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        if threshold is None:
            await svc.alerts.clear(account.id)
            await svc.audit.record(audit.CLI, "alert.clear", account.name)
            return {"object": "balance_alert", "account": account.name, "deleted": True}
        alert = await svc.alerts.configure(account.id, threshold, email=email, webhook_url=webhook)
        await svc.audit.record(audit.CLI, "alert.set", account.name, alert.audit_details())
        return alert.to_dict(account.name)

    data = run(go)
    if as_json:
        output.print_json(data)
    elif data.get("deleted"):
        output.console.print(f"removed the low-balance alert of [bold]{data['account']}[/bold]")
    else:
        to = " and ".join(
            (["email the owner"] if data["email"] else [])
            + ([f"POST {data['webhook_url']}"] if data["webhook_url"] else [])
        )
        output.console.print(
            f"[bold]{data['account']}[/bold]: below US${data['below']} available, {to}",
            highlight=False,
        )


@app.command("limit")
def accounts_limit(
    name: Annotated[str, typer.Argument(help="Account name.")],
    rpm: RateOpt = None,
    tpm: TpmOpt = None,
    ipm: IpmOpt = None,
    max_concurrent: ConcurrentOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set an account's rate limits, shared by all its keys; 0 or none clears one."""
    rates = parse_rates(rpm=rpm, tpm=tpm, ipm=ipm, max_concurrent=max_concurrent)
    set_limits("account", name, rates, as_json)


@app.command("budget")
def accounts_budget(
    name: str,
    daily_budget: DailyBudgetOpt = None,
    monthly_budget: MonthlyBudgetOpt = None,
    budget: TotalBudgetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set or clear an account's spend budgets, shared by all its keys."""
    changes = parse_budgets(daily=daily_budget, monthly=monthly_budget, total=budget)
    set_budgets("account", name, changes, as_json)
