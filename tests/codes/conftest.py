"""A running gateway on each database, with the URL of its database (for the CLI and for
reading its tables)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.chat.conftest import database_url
from tests.conftest import BACKENDS, unique
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway


@dataclass
class CodeGateway:
    gw: Gateway
    database_url: str

    def new_account(self, credit: str = "0") -> tuple[str, str]:
        """(name, API key) of a fresh account."""
        name = unique()
        made = self.gw.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
        assert made.status_code == 201, made.text
        return name, made.json()["api_key"]

    def make_codes(self, amount: str, count: int = 1, **extra: object) -> dict[str, object]:
        made = self.gw.admin(
            "POST", "/admin/codes", json={"amount": amount, "count": count, **extra}
        )
        assert made.status_code == 201, made.text
        body: dict[str, object] = made.json()
        return body

    def redeem(self, key: str, code: str) -> requests.Response:
        return requests.post(
            self.gw.url + "/api/redeem/",
            json={"code": code},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    def balance(self, name: str) -> str:
        answer = self.gw.admin("GET", f"/admin/accounts/{name}").json()
        return str(answer["balance"])


@pytest.fixture(params=BACKENDS)
def codes_gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CodeGateway]:
    url = database_url(request.param, tmp_path)
    with running_gateway(tmp_path, url, {"up": FakeUpstream()}, [], credit="5") as gw:
        yield CodeGateway(gw, url)
