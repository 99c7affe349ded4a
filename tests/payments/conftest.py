"""A running gateway with card payments on, against a fake of Stripe's API on loopback."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger_audit import audit
from tests.support.servers import serve_in_thread
from tests.web.conftest import csrf_of, signed_up

#: a chat a test makes spends a visible part of a card payment
EXPENSIVE = '\n[prices."gpt-4o-mini"]\ninput = "100000"\noutput = "100000"\n'


@dataclass
class StripeGateway:
    gw: Gateway
    stripe: FakeStripe
    stripe_url: str
    database_url: str

    @property
    def url(self) -> str:
        return self.gw.url

    def person(self) -> tuple[requests.Session, str]:
        """A signed-in browser of a new person, and their email (their account's name)."""
        email = f"payer-{uuid.uuid4().hex[:10]}@example.com"
        return signed_up(self.url, email), email

    def pay(self, browser: requests.Session, **form: str) -> requests.Response:
        """Press "Pay by card" (the redirect is not followed)."""
        page = browser.get(self.url + "/topup", timeout=10)
        return browser.post(
            self.url + "/topup/card",
            data={"csrf_token": csrf_of(page.text), **form},
            allow_redirects=False,
            timeout=30,
        )

    def paid_session(self, browser: requests.Session, amount: str = "10") -> dict[str, Any]:
        """A Checkout Session for ``amount`` dollars, made through the top-up form."""
        made = self.pay(browser, amount=amount)
        assert made.status_code == 303, made.text
        session = self.stripe.last_session()
        assert made.headers["location"] == session["url"]
        return session

    def new_key(self, browser: requests.Session) -> str:
        form = browser.get(self.url + "/keys", timeout=10)
        made = browser.post(
            self.url + "/keys", data={"csrf_token": csrf_of(form.text), "name": "k"}, timeout=10
        )
        assert made.status_code == 201, made.text
        found = re.search(r'id="new-key" class="key">(mtai-[^<]+)<', made.text)
        assert found
        return found.group(1)

    def deliver(self, event: dict[str, Any], **kw: Any) -> requests.Response:
        answer: requests.Response = self.stripe.deliver(self.url, event, **kw)
        return answer

    def balance(self, account: str) -> Decimal:
        return Decimal(self.gw.admin("GET", f"/admin/accounts/{account}").json()["balance"])

    def audit_clean(self, account: str) -> None:
        assert audit(self.database_url, account).problems() == []


@contextmanager
def stripe_gateway(tmp_path: Path, url: str, **settings: Any) -> Iterator[StripeGateway]:
    fake = FakeStripe()
    with (
        serve_in_thread(fake.app()) as stripe_url,
        running_gateway(
            tmp_path,
            url,
            {"openai": FakeUpstream()},
            [{"model": "gpt-4o-mini", "provider": "openai"}],
            extra_toml=EXPENSIVE,
            stripe_secret_key=fake.secret_key,
            stripe_webhook_secret=fake.webhook_secret,
            stripe_api_base=stripe_url,
            **settings,
        ) as gw,
    ):
        yield StripeGateway(gw, fake, stripe_url, url)


@pytest.fixture(scope="module", params=BACKENDS)
def sgw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StripeGateway]:
    """One gateway per database for a module's tests (they use fresh people)."""
    tmp = tmp_path_factory.mktemp("stripe")
    with stripe_gateway(tmp, database_url(request.param, tmp)) as gateway:
        yield gateway
