"""``minitoolai users create``: a login for a new account, or for one the operator made."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minitoolai import cli
from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.people.service import PeopleService, Person

PASSWORD = "operator-chosen password"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINITOOLAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MINITOOLAI_DATABASE_URL", raising=False)
    monkeypatch.delenv("MINITOOLAI_CONFIG", raising=False)
    return tmp_path / "data"


def _login(data_dir: Path, email: str, password: str) -> Person | None:
    async def go() -> Person | None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'minitoolai.db'}")
        try:
            return await PeopleService(db, AccountService(db, Ledger(db))).login(email, password)
        finally:
            await db.dispose()

    return asyncio.run(go())


def test_a_new_admin_with_a_new_account(data_dir: Path) -> None:
    result = CliRunner().invoke(
        cli.app,
        ["users", "create", "Boss@Example.com", "--admin", "--password-stdin", "--json"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    made = orjson.loads(result.stdout)
    assert made["email"] == "boss@example.com" and made["role"] == "admin"
    assert made["account"] == "boss@example.com" and made["api_key"].startswith("mtai-")
    person = _login(data_dir, "boss@example.com", PASSWORD)
    assert person is not None and person.is_admin
    again = CliRunner().invoke(
        cli.app, ["users", "create", "boss@example.com", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert again.exit_code == 1 and "already exists" in again.output


def test_an_account_made_with_the_cli_gets_a_login(data_dir: Path) -> None:
    made = CliRunner().invoke(cli.app, ["accounts", "create", "acme", "--json"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(
        cli.app,
        ["users", "create", "ops@acme.io", "--account", "acme", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created customer ops@acme.io (account acme)" in result.output
    assert "mtai-" not in result.output  # no new key: the account has its own
    person = _login(data_dir, "ops@acme.io", PASSWORD)
    assert person is not None and person.account_name == "acme" and not person.is_admin


def test_a_short_password_or_an_unknown_account_is_refused(data_dir: Path) -> None:
    short = CliRunner().invoke(
        cli.app, ["users", "create", "a@b.io", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 1 and "at least 8" in short.output
    unknown = CliRunner().invoke(
        cli.app,
        ["users", "create", "a@b.io", "--account", "nope", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert unknown.exit_code == 1 and "no account named" in unknown.output
    assert _login(data_dir, "a@b.io", PASSWORD) is None
