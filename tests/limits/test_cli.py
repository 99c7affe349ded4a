"""``minitoolai keys create --rpm``, ``keys limit``, ``accounts limit``: what they store is what
the key authenticates with."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minitoolai import cli
from minitoolai.accounts.auth import Authenticator
from minitoolai.infra.db import Database
from minitoolai.limits.rates import Overrides, Rates


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


def limits_of(data_dir: Path, key: str) -> Overrides:
    async def load() -> Overrides:
        db = Database(f"sqlite+aiosqlite:///{(data_dir / 'minitoolai.db').resolve()}")
        try:
            return (await Authenticator(db, ttl=0).authenticate(f"Bearer {key}")).limits
        finally:
            await db.dispose()

    return asyncio.run(load())


def test_create_limit_and_clear(data_dir: Path) -> None:
    run("accounts", "create", "acme")
    created = run("keys", "create", "acme", "--rpm", "5", "--tpm", "1000", "--max-concurrent", "2")
    key = str(created["api_key"])
    assert created["limits"] == {
        "object": "rate_limits",
        "account": "acme",
        "key": created["prefix"],
        "rpm": 5,
        "tpm": 1000,
        "ipm": None,
        "max_concurrent": 2,
    }
    assert limits_of(data_dir, key).key == Rates(rpm=5, tpm=1000, max_concurrent=2)

    changed = run("keys", "limit", str(created["prefix"]), "--rpm", "none", "--ipm", "3")
    assert (changed["rpm"], changed["tpm"], changed["ipm"]) == (None, 1000, 3)  # tpm kept
    run("accounts", "limit", "acme", "--rpm", "100", "--tpm", "0")
    assert limits_of(data_dir, key) == Overrides(
        key=Rates(tpm=1000, ipm=3, max_concurrent=2), account=Rates(rpm=100)
    )


def test_a_wrong_rate_is_refused(data_dir: Path) -> None:
    run("accounts", "create", "acme")
    result = CliRunner().invoke(cli.app, ["keys", "create", "acme", "--rpm", "fast"])
    assert result.exit_code == 2
    assert "whole number" in result.output
    result = CliRunner().invoke(cli.app, ["accounts", "limit", "acme", "--rpm", "-3"])
    assert result.exit_code != 0
