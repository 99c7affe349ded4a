"""``minitoolai credit``: top up an account's prepaid credit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from minitoolai import audit
from minitoolai.cli import output
from minitoolai.cli.options import JsonOpt, parse_usd
from minitoolai.cli.running import run
from minitoolai.money import nano_to_usd

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

app = typer.Typer(help="Top up an account's prepaid credit.", no_args_is_help=True)


@app.command("add")
def credit_add(
    name: str,
    usd: Annotated[str, typer.Argument(help="Amount in USD, e.g. 10 or 0.50.")],
    note: Annotated[str | None, typer.Option(help="Why (kept in the ledger).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Top up an account ("Ricarica")."""
    amount = parse_usd(usd)

    async def go(svc: Services) -> dict[str, Any]:
        account = await svc.accounts.get(name)
        await svc.ledger.top_up(account.id, amount, note)
        await svc.audit.record(
            audit.CLI, "credit.add", account.name, {"amount": nano_to_usd(amount), "note": note}
        )
        return (await svc.accounts.get(name)).to_dict()

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    output.console.print(f"added US${nano_to_usd(amount)}; balance now US${data['balance']}")
