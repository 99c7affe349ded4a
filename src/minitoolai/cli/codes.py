"""``minitoolai codes``: make and inspect batches of redeem codes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minitoolai import audit
from minitoolai.cli import output
from minitoolai.cli.options import JsonOpt, parse_usd
from minitoolai.cli.running import run
from minitoolai.money import nano_to_usd

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

app = typer.Typer(help="Make and inspect redeem codes.", no_args_is_help=True)


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


@app.command("create")
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
    amount = parse_usd(usd)
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

    data = run(go)
    if as_json:
        output.print_json(data)
        return
    until = f", valid until {data['expires_at']}" if data["expires_at"] else ""
    output.console.print(
        f"batch [bold]{data['id']}[/bold]: {data['count']} code(s) of US${data['amount']}{until}"
        " (shown once, keep them safe):",
        highlight=False,
    )
    for code in data["codes"]:
        output.console.print(code, highlight=False)


@app.command("list")
def codes_list(as_json: JsonOpt = False) -> None:
    """List code batches, newest first, with how many codes were redeemed."""
    data = [b.to_dict() for b in run(lambda svc: svc.codes.batches())]
    if as_json:
        output.print_json(data)
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
    output.console.print(table)


@app.command("show")
def codes_show(
    batch: Annotated[str, typer.Argument(help="The batch id (batch_...).")],
    as_json: JsonOpt = False,
) -> None:
    """Show a batch and its redemptions: which code (its last 4), by which account, when."""
    data = run(lambda svc: svc.codes.batch(batch)).to_dict()
    if as_json:
        output.print_json(data)
        return
    until = f"  expires {data['expires_at']}" if data["expires_at"] else ""
    output.console.print(
        f"[bold]{data['id']}[/bold]  US${data['amount']} each  "
        f"{data['redeemed']}/{data['count']} redeemed{until}  {data['note'] or ''}",
        highlight=False,
    )
    from rich.table import Table

    table = Table("code", "account", "redeemed at")
    for r in data["redemptions"]:
        table.add_row(r["code"], r["account"], r["redeemed_at"][:19])
    output.console.print(table)
