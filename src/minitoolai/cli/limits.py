"""``keys limit``/``accounts limit`` and ``keys budget``/``accounts budget``: one way to store,
audit and print a key's or an account's own rate limits or spend budgets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from minitoolai import audit
from minitoolai.accounts.service import budgets_dict
from minitoolai.cli import output
from minitoolai.cli.running import run
from minitoolai.limits.overrides import LimitOverrides

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

#: what is changed: a key (named by its prefix) or an account (by its name)
Scope = Literal["key", "account"]


def set_limits(scope: Scope, target: str, rates: dict[str, int | None], as_json: bool) -> None:
    """Change the rate limits named in ``rates`` (the others stay) and print them all."""

    async def go(svc: Services) -> dict[str, Any]:
        overrides = LimitOverrides(svc.db)
        details: dict[str, Any]
        if scope == "key":
            changed = await overrides.set_key(target, rates)
            details = {"prefix": changed.key_prefix, **rates}
        else:
            _, changed = await overrides.set_account(target, rates)
            details = rates
        await svc.audit.record(audit.CLI, f"{scope}.limits", changed.account, details)
        return changed.to_dict()

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    who = f"key {data['key']}" if data.get("key") else f"account {data['account']}"
    shown = ", ".join(
        f"{name} {data[name] if data[name] is not None else 'default'}"
        for name in ("rpm", "tpm", "ipm", "max_concurrent")
    )
    output.console.print(f"[bold]{who}[/bold]: {shown}", highlight=False)


def set_budgets(scope: Scope, target: str, changes: dict[str, int | None], as_json: bool) -> None:
    """Set or clear the budgets named in ``changes`` (the others stay) and print them all."""

    async def go(svc: Services) -> dict[str, Any]:
        details: dict[str, Any]
        if scope == "key":
            record, _ = await svc.accounts.set_key_budget(target, **changes)
            caps, owner, label = record.budgets, record.account_name, record.prefix
            details = {"prefix": record.prefix, **changes}
        else:
            caps = await svc.accounts.set_account_budget(target, **changes)
            owner = label = target
            details = changes
        await svc.audit.record(audit.CLI, f"{scope}.budget", owner, details)
        return {"object": f"{scope}_budget", scope: label, **budgets_dict(caps)}

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    shown = ", ".join(
        f"{p} {'US$' + data[p] if data[p] is not None else 'none'}"
        for p in ("daily", "monthly", "total")
    )
    output.console.print(f"[bold]{scope} {data[scope]}[/bold]: budgets {shown}", highlight=False)
