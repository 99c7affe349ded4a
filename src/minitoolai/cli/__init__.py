"""The ``minitoolai`` command: run the server, and manage accounts, credit and keys.

Management commands work directly against the configured database (like Django's
``manage.py``), so they need no running server and no admin key. Each noun's commands are
a module of this package; this one assembles them.
"""

from __future__ import annotations

import typer

from minitoolai.cli import accounts, codes, credit, keys, models, server, users

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
app.command()(server.serve)
app.command()(server.worker)
app.command()(server.migrate)
# the order --help lists them in
app.add_typer(accounts.app, name="accounts")
app.add_typer(credit.app, name="credit")
app.add_typer(keys.app, name="keys")
app.add_typer(codes.app, name="codes")
app.add_typer(models.app, name="models")
app.add_typer(users.app, name="users")


def main() -> None:
    app()
