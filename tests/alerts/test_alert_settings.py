"""Setting an alert by the admin API, the person's dashboard form and the CLI (bad values are
a 4xx), and the running server's periodic check sending it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from rich.console import Console
from typer.testing import CliRunner

from minitoolai import cli
from tests.alerts.conftest import Receiver
from tests.conftest import unique
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.web.conftest import csrf_of, signed_up


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("alerts")
    with running_gateway(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'alerts.db'}",
        {"openai": FakeUpstream()},
        [{"model": "gpt-4o-mini", "provider": "openai"}],
        alert_interval_s=0.2,
        alert_webhook_allow_loopback=True,
    ) as gateway:
        yield gateway


def test_the_admin_api_sets_an_alert_and_the_server_sends_it_once(
    gw: Gateway, hook: Receiver
) -> None:
    # the account has US$5; an alert below US$6 has crossed already
    put = gw.admin(
        "PUT", f"/admin/accounts/{gw.account}/alert", json={"below": "6", "webhook_url": hook.url}
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["object"] == "balance_alert" and body["below"] == "6.000000000"
    assert body["armed"] is True and body["email"] is True and body["webhook_url"] == hook.url
    deadline = time.monotonic() + 10
    while not hook.posts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hook.posts) == 1 and hook.posts[0]["account"] == gw.account
    assert hook.posts[0]["balance"] == "5.000000000" and hook.posts[0]["threshold"] == "6.000000000"
    time.sleep(0.6)  # three more rounds of the loop: nothing new
    assert len(hook.posts) == 1
    logged = gw.admin("GET", "/admin/audit", params={"action": "alert.set"}).json()["data"]
    mine = [e for e in logged if e["target"] == gw.account]
    assert mine and mine[0]["actor"] == "admin-api"
    assert mine[0]["details"] == {
        "below": "6.000000000",
        "email": True,
        "webhook_host": "127.0.0.1",
    }
    assert gw.admin("PUT", f"/admin/accounts/{gw.account}/alert", json={"below": None}).json() == {
        "object": "balance_alert",
        "account": gw.account,
        "deleted": True,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"below": "-1"},
        {"below": "0"},
        {"below": "abc"},
        {"below": "1.0000000001"},
        {"below": "2000000000"},
        {"below": "5", "webhook_url": "http://10.0.0.1/hook"},
        {"below": "5", "webhook_url": "http://169.254.169.254/"},
        {"below": "5", "webhook_url": "ftp://example.com/"},
        {"below": "5", "email": False},
        {"below": "5", "colour": "red"},
        {},
    ],
)
def test_bad_alerts_are_a_400(gw: Gateway, body: dict[str, object]) -> None:
    answer = gw.admin("PUT", f"/admin/accounts/{gw.account}/alert", json=body)
    assert answer.status_code == 400, (body, answer.text)
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_unknown_account_and_no_admin_key(gw: Gateway) -> None:
    assert (
        gw.admin("PUT", "/admin/accounts/nobody-here/alert", json={"below": "5"}).status_code == 404
    )
    plain = requests.put(
        gw.url + f"/admin/accounts/{gw.account}/alert", json={"below": "5"}, timeout=10
    )
    assert plain.status_code == 401


def test_the_dashboard_form_sets_and_clears_the_alert(gw: Gateway) -> None:
    browser = signed_up(gw.url, unique("form") + "@shop.test")

    def post(**fields: str) -> requests.Response:
        csrf = csrf_of(browser.get(gw.url + "/dashboard", timeout=10).text)
        return browser.post(
            gw.url + "/dashboard/alert", data={"csrf_token": csrf, **fields}, timeout=10
        )

    page = browser.get(gw.url + "/dashboard", timeout=10).text
    assert '<label for="alert-below">Alert threshold</label>' in page
    assert '<label for="alert-webhook">Webhook URL</label>' in page
    for bad in (
        {"below": "abc", "email": "on"},
        {"below": "-2", "email": "on"},
        {"below": "0", "email": "on"},
        {"below": "5", "webhook_url": "http://192.168.0.1/x", "email": "on"},
        {"below": "5"},  # neither email nor a webhook
    ):
        answer = post(**bad)
        assert answer.status_code == 400, bad
        assert 'role="alert"' in answer.text
        assert bad["below"] in answer.text  # the form keeps what was typed
    done = post(below="2.5", email="on", webhook_url="https://hooks.example.com/balance")
    assert done.status_code == 200 and done.url.endswith("/dashboard?saved=alert")
    assert "Alert saved." in done.text and "below $2.50" in done.text
    assert 'value="https://hooks.example.com/balance"' in done.text
    cleared = post(below="", email="on")
    assert cleared.status_code == 200 and 'id="alert-state"' not in cleared.text
    # without the CSRF token nothing changes
    refused = browser.post(gw.url + "/dashboard/alert", data={"below": "3"}, timeout=10)
    assert refused.status_code == 403


def test_the_cli_sets_an_alert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINITOOLAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MINITOOLAI_CONFIG", raising=False)
    monkeypatch.delenv("MINITOOLAI_DATABASE_URL", raising=False)
    monkeypatch.setattr("minitoolai.cli.output.console", Console(width=200))
    runner = CliRunner()
    assert runner.invoke(cli.app, ["accounts", "create", "shop", "--credit", "3"]).exit_code == 0
    done = runner.invoke(
        cli.app,
        [
            "accounts",
            "alert",
            "shop",
            "--below",
            "4.25",
            "--webhook",
            "https://h.example.com/x",
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    shown = orjson.loads(done.stdout)
    assert (shown["below"], shown["webhook_url"], shown["email"]) == (
        "4.250000000",
        "https://h.example.com/x",
        True,
    )
    assert runner.invoke(cli.app, ["accounts", "alert", "shop", "--below", "x"]).exit_code == 2
    bad_url = runner.invoke(
        cli.app, ["accounts", "alert", "shop", "--below", "1", "--webhook", "http://10.0.0.1/"]
    )
    assert bad_url.exit_code == 1 and "not allowed" in bad_url.output
    assert runner.invoke(cli.app, ["accounts", "alert", "nobody", "--below", "1"]).exit_code == 1
    off = runner.invoke(cli.app, ["accounts", "alert", "shop", "--off"])
    assert off.exit_code == 0, off.output
