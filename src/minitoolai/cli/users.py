"""``minitoolai users``: storefront logins, each with its account."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from minitoolai import audit
from minitoolai.cli import output
from minitoolai.cli.options import JsonOpt
from minitoolai.cli.running import run

if TYPE_CHECKING:
    from minitoolai.bootstrap import Services

app = typer.Typer(help="Storefront logins: people and their accounts.", no_args_is_help=True)


@app.command("create")
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

    person, key = run(go)
    if as_json:
        output.print_json(
            {
                "email": person.email,
                "role": person.role,
                "account": person.account_name,
                "api_key": key,
            }
        )
        return
    output.console.print(f"created {person.role} {person.email} (account {person.account_name})")
    if key:
        output.console.print(f"the new account's API key (shown once): {key}", highlight=False)
