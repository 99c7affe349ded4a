"""A running gateway for the storefront's tests, with a browser-like HTTP client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("web")
    fake = FakeUpstream()
    with running_gateway(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'web.db'}",
        {"openai": fake},
        [{"model": "gpt-4o-mini", "provider": "openai"}],
    ) as gateway:
        yield gateway


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def signed_up(url: str, email: str, password: str = PASSWORD) -> requests.Session:
    """A client that signed up (and so is signed in) through the forms, as a browser does."""
    browser = requests.Session()
    form = browser.get(url + "/signup", timeout=10)
    done = browser.post(
        url + "/signup",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
        timeout=10,
    )
    assert done.status_code == 201, done.text
    return browser
