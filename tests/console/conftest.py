"""A running gateway on each database with an admin and a customer signed in through the
forms, and the operator's CLI pointed at the same database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from typer.testing import CliRunner

from minitoolai import cli
from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.web.conftest import PASSWORD, csrf_of, signed_up

#: the key cache's TTL in these tests: what "within the cache TTL" waits for
KEY_TTL_S = 1.0


def new_email(kind: str = "person") -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}@example.com"


def log_in(url: str, email: str, password: str = PASSWORD) -> requests.Session:
    browser = requests.Session()
    form = browser.get(url + "/login", timeout=10)
    done = browser.post(
        url + "/login",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text
    return browser


@dataclass
class Console:
    gw: Gateway
    database_url: str
    data_dir: Path
    admin_email: str
    admin: requests.Session
    customer_email: str
    customer: requests.Session
    customer_key: str

    @property
    def url(self) -> str:
        return self.gw.url

    def cli(self, *args: str, stdin: str | None = None) -> Any:
        """Run ``minitoolai ARGS --json`` against this gateway's database; its JSON answer."""
        result = CliRunner().invoke(
            cli.app,
            [*args, "--json"],
            input=stdin,
            env={
                "MINITOOLAI_DATABASE_URL": self.database_url,
                "MINITOOLAI_DATA_DIR": str(self.data_dir),
                "MINITOOLAI_CONFIG": None,
            },
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)

    def post(
        self, who: requests.Session, path: str, form_page: str, **fields: str
    ) -> requests.Response:
        """Post a console form as a browser does: with the CSRF token of a page it opened."""
        page = who.get(self.url + form_page, timeout=10)
        token = csrf_of(page.text)
        return who.post(
            self.url + path,
            data={"csrf_token": token, **fields},
            allow_redirects=False,
            timeout=30,
        )

    def new_account(self, credit: str = "0") -> tuple[str, str]:
        name = "acct-" + uuid.uuid4().hex[:10]
        made = self.gw.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
        assert made.status_code == 201, made.text
        return name, made.json()["api_key"]

    def balance(self, name: str) -> Decimal:
        return Decimal(self.gw.admin("GET", f"/admin/accounts/{name}").json()["balance"])

    def audit_rows(self, **filters: str) -> list[dict[str, Any]]:
        answer = self.gw.admin("GET", "/admin/audit", params={**filters, "limit": "500"})
        assert answer.status_code == 200, answer.text
        rows: list[dict[str, Any]] = answer.json()["data"]
        return rows


@pytest.fixture(scope="module", params=BACKENDS)
def console(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    tmp: Path = tmp_path_factory.mktemp("console")
    url = database_url(request.param, tmp)
    with running_gateway(
        tmp,
        url,
        {"openai": FakeUpstream()},
        [{"model": "gpt-4o-mini", "provider": "openai"}],
        key_cache_ttl_s=KEY_TTL_S,
    ) as gw:
        admin_email = new_email("admin")
        made = CliRunner().invoke(
            cli.app,
            ["users", "create", admin_email, "--admin", "--password-stdin", "--json"],
            input=PASSWORD + "\n",
            env={
                "MINITOOLAI_DATABASE_URL": url,
                "MINITOOLAI_DATA_DIR": str(tmp / "data"),
                "MINITOOLAI_CONFIG": None,
            },
        )
        assert made.exit_code == 0, made.output
        customer_email = new_email("customer")
        customer = signed_up(gw.url, customer_email)
        keys = customer.get(gw.url + "/keys", timeout=10)
        made_key = customer.post(
            gw.url + "/keys",
            data={"csrf_token": csrf_of(keys.text), "name": "", "expires": "", "models": ""},
            timeout=10,
        )
        key = re.findall(r'id="new-key" class="key">(mtai-[^<]+)<', made_key.text)[0]
        yield Console(
            gw,
            url,
            tmp / "data",
            admin_email,
            log_in(gw.url, admin_email),
            customer_email,
            customer,
            key,
        )
