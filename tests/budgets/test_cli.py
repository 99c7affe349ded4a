"""``minitoolai keys create --daily-budget``, ``keys budget``, ``accounts budget``: what they
store is what the key authenticates with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minitoolai import cli
from minitoolai.accounts.auth import Authenticator
from minitoolai.infra.db import Database
from minitoolai.ledger.budgets import Budgets, Caps
from minitoolai.money import usd_to_nano


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MINITOOLAI_DATABASE_URL", "MINITOOLAI_CONFIG", "MINITOOLAI_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINITOOLAI_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = orjson.loads(result.stdout)
    return data


def budgets_of(data_dir: Path, key: str) -> Budgets | None:
    async def load() -> Budgets | None:
        db = Database(f"sqlite+aiosqlite:///{(data_dir / 'minitoolai.db').resolve()}")
        try:
            return (await Authenticator(db, ttl=0).authenticate(f"Bearer {key}")).budgets
        finally:
            await db.dispose()

    return asyncio.run(load())


def test_budgets_from_the_cli_reach_the_principal(data_dir: Path) -> None:
    run("accounts", "create", "shop", "--credit", "5")
    made = run("keys", "create", "shop", "--daily-budget", "1.50", "--budget", "20")
    key, prefix = str(made["api_key"]), str(made["prefix"])
    assert made["budgets"] == {"daily": "1.500000000", "monthly": None, "total": "20.000000000"}
    assert budgets_of(data_dir, key) == Budgets(
        key=Caps(daily=usd_to_nano("1.5"), total=usd_to_nano("20")), account=Caps()
    )
    changed = run("keys", "budget", prefix, "--daily-budget", "none", "--monthly-budget", "3")
    assert changed["daily"] is None and changed["monthly"] == "3.000000000"
    assert changed["total"] == "20.000000000"  # left out: unchanged
    shared = run("accounts", "budget", "shop", "--daily-budget", "0.25")
    assert shared["daily"] == "0.250000000"
    assert budgets_of(data_dir, key) == Budgets(
        key=Caps(monthly=usd_to_nano("3"), total=usd_to_nano("20")),
        account=Caps(daily=usd_to_nano("0.25")),
    )
    run("keys", "budget", prefix, "--monthly-budget", "none", "--budget", "none")
    run("accounts", "budget", "shop", "--daily-budget", "none")
    assert budgets_of(data_dir, key) is None


def test_a_bad_budget_is_refused(data_dir: Path) -> None:
    run("accounts", "create", "shop2")
    for bad in ("-1", "0", "lots"):
        result = CliRunner().invoke(cli.app, ["accounts", "budget", "shop2", "--daily-budget", bad])
        assert result.exit_code != 0, bad
