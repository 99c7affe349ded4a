"""The storefront over plain HTTP: CSRF, cookies, headers, redirects, throttling, keys, usage,
password reset and top-up, against a real server (SQLite)."""

from __future__ import annotations

import csv
import io
import logging
import re
import uuid
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import requests

from minitoolai.web.templating import usd
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.web.conftest import PASSWORD, csrf_of, signed_up


def new_email() -> str:
    return f"web-{uuid.uuid4().hex[:10]}@example.com"


def logged_in(gw: Gateway, email: str, password: str = PASSWORD, **extra: str) -> requests.Response:
    browser = requests.Session()
    form = browser.get(gw.url + "/login", timeout=10)
    return browser.post(
        gw.url + "/login",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password, **extra},
        allow_redirects=False,
        timeout=10,
    )


def new_key(browser: requests.Session, url: str, **fields: str) -> str:
    form = browser.get(url + "/keys", timeout=10)
    made = browser.post(
        url + "/keys",
        data={"csrf_token": csrf_of(form.text), "name": "", "expires": "", "models": "", **fields},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    keys = re.findall(r'id="new-key" class="key">(mtai-[^<]+)<', made.text)
    assert len(keys) == 1
    return keys[0]


def test_pages_carry_the_security_headers(gw: Gateway) -> None:
    for path in ("/", "/login", "/signup", "/password-reset"):
        page = requests.get(gw.url + path, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in page.text and " style=" not in page.text  # nothing inline


def test_the_landing_page_shows_prices_and_this_servers_quickstart(gw: Gateway) -> None:
    page = requests.get(gw.url + "/", timeout=10).text
    assert "gpt-4o-mini" in page and "$0.15" in page and "$0.60" in page  # the seed's price
    assert f'base_url="{gw.url}/v1"'.replace('"', "&#34;") in page  # escaped, Python snippet
    assert f"curl {gw.url}/v1/chat/completions" in page
    assert "Bearer YOUR_KEY" in page


def test_paths_outside_the_pages_stay_the_json_api(gw: Gateway) -> None:
    for path in ("/nope", "/v1/nope", "/admin/nope", "/signup/extra"):
        answer = requests.get(gw.url + path, timeout=10)
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "not_found_error"
    assert requests.get(gw.url + "/api/balance/", timeout=10).status_code == 401


def test_a_signed_out_visitor_is_sent_to_log_in(gw: Gateway) -> None:
    for path in ("/dashboard", "/keys", "/usage", "/usage.csv", "/topup"):
        answer = requests.get(gw.url + path, allow_redirects=False, timeout=10)
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?next={path}"


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(gw: Gateway) -> None:
    email = new_email()
    browser = requests.Session()
    browser.get(gw.url + "/signup", timeout=10)  # has the CSRF cookie, but sends no token
    refused = browser.post(
        gw.url + "/signup", data={"email": email, "password": PASSWORD}, timeout=10
    )
    assert refused.status_code == 403
    forged = browser.post(
        gw.url + "/signup",
        data={"email": email, "password": PASSWORD, "csrf_token": "x" * 43},
        timeout=10,
    )
    assert forged.status_code == 403
    assert logged_in(gw, email).status_code == 401  # nobody was signed up

    signed = signed_up(gw.url, new_email())
    before = signed.get(gw.url + "/keys", timeout=10).text.count("Revoke ")
    anon_token = csrf_of(requests.get(gw.url + "/login", timeout=10).text)
    for data in ({"name": "x"}, {"name": "x", "csrf_token": anon_token}):
        assert signed.post(gw.url + "/keys", data=data, timeout=10).status_code == 403
    as_json = signed.post(gw.url + "/keys", json={"name": "x"}, timeout=10)
    assert as_json.status_code == 403
    assert signed.get(gw.url + "/keys", timeout=10).text.count("Revoke ") == before
    assert signed.post(gw.url + "/logout", timeout=10).status_code == 403
    assert signed.get(gw.url + "/dashboard", allow_redirects=False, timeout=10).status_code == 200


def test_the_session_cookie_is_httponly_lax_and_secure_over_https(gw: Gateway) -> None:
    email = new_email()
    signed_up(gw.url, email)
    plain = logged_in(gw, email)
    cookie = plain.headers["set-cookie"]
    assert "mtai_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie
    https = {"X-Forwarded-Proto": "https"}  # a TLS proxy on loopback, which uvicorn trusts
    form = requests.get(gw.url + "/login", headers=https, timeout=10)
    assert "Secure" in form.headers["set-cookie"]  # the anonymous CSRF cookie too
    answer = requests.post(  # the jar would keep a Secure cookie off plain http: send it
        gw.url + "/login",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": PASSWORD},
        cookies={"mtai_csrf": form.cookies["mtai_csrf"]},
        headers=https,
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def _session_set(answer: requests.Response) -> str:
    found = re.search(r"mtai_session=([^;]+);", answer.headers.get("set-cookie", ""))
    assert found, answer.headers
    return found.group(1)


def test_logging_in_makes_a_new_session_and_ends_the_one_brought(gw: Gateway) -> None:
    email = new_email()
    first = signed_up(gw.url, email)
    old = first.cookies["mtai_session"]
    # a token someone chose: never becomes a session
    page = requests.get(gw.url + "/login", timeout=10)
    csrf = page.cookies["mtai_csrf"]
    answer = requests.post(
        gw.url + "/login",
        data={"csrf_token": csrf, "email": email, "password": PASSWORD},
        cookies={"mtai_session": "attacker-chosen", "mtai_csrf": csrf},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303 and _session_set(answer) not in (old, "attacker-chosen")
    # a real session the browser brought (planted by someone who logged in as themselves):
    # logging in replaces it, and the old token opens nothing any more
    dashboard = first.get(gw.url + "/dashboard", timeout=10)
    answer = requests.post(
        gw.url + "/login",
        data={"csrf_token": csrf_of(dashboard.text), "email": email, "password": PASSWORD},
        cookies={"mtai_session": old},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303
    fresh = _session_set(answer)
    assert fresh != old
    gone = requests.get(
        gw.url + "/dashboard", cookies={"mtai_session": old}, allow_redirects=False, timeout=10
    )
    assert gone.status_code == 303
    works = requests.get(
        gw.url + "/dashboard", cookies={"mtai_session": fresh}, allow_redirects=False, timeout=10
    )
    assert works.status_code == 200


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/keys", "/keys"),
        ("/usage?x=1", "/usage?x=1"),
        ("//evil.example/", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("/\t/evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
        ("", "/dashboard"),
    ],
)
def test_after_log_in_only_same_site_paths(gw: Gateway, target: str, expected: str) -> None:
    email = new_email()
    signed_up(gw.url, email)
    answer = logged_in(gw, email, next=target)
    assert answer.status_code == 303 and answer.headers["location"] == expected


def test_a_wrong_password_is_refused_and_repeated_failures_throttle(gw: Gateway) -> None:
    email = new_email()
    signed_up(gw.url, email)
    for _ in range(5):
        wrong = logged_in(gw, email, password="not the password")
        assert wrong.status_code == 401 and "Wrong email or password." in wrong.text
        assert "mtai_session" not in wrong.headers.get("set-cookie", "")
    throttled = logged_in(gw, email)  # even the right password, for a while
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
    assert "Too many failed attempts" in throttled.text
    assert "mtai_session" not in throttled.headers.get("set-cookie", "")
    other = new_email()
    signed_up(gw.url, other)
    assert logged_in(gw, other).status_code == 303  # only that email was throttled


def test_sign_ups_from_one_address_are_limited(tmp_path: Path) -> None:
    """Each sign-up is an account, a key and a password hash: an address gets
    ``MINITOOLAI_SIGNUPS_PER_HOUR`` of them, then a 429 that makes nothing."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'signups.db'}"
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path, url, {"up": FakeUpstream()}, deployments, signups_per_hour=3
    ) as gw:
        for _ in range(3):
            signed_up(gw.url, new_email())
        browser = requests.Session()
        form = browser.get(gw.url + "/signup", timeout=10)
        refused_email = new_email()
        refused = browser.post(
            gw.url + "/signup",
            data={"csrf_token": csrf_of(form.text), "email": refused_email, "password": PASSWORD},
            timeout=10,
        )
        assert refused.status_code == 429, refused.text
        assert "Too many sign-ups from this address" in refused.text
        assert 3000 < int(refused.headers["retry-after"]) <= 3601
        assert "mtai_session" not in refused.headers.get("set-cookie", "")
        names = [a["name"] for a in gw.admin("GET", "/admin/accounts").json()["data"]]
        assert refused_email.lower() not in names and len(names) == 4  # 3 and the fixture's


def test_log_out_ends_the_session(gw: Gateway) -> None:
    browser = signed_up(gw.url, new_email())
    token = browser.cookies["mtai_session"]
    page = browser.get(gw.url + "/dashboard", timeout=10)
    out = browser.post(
        gw.url + "/logout",
        data={"csrf_token": csrf_of(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert out.status_code == 303 and out.headers["location"] == "/"
    stolen = requests.get(
        gw.url + "/dashboard", cookies={"mtai_session": token}, allow_redirects=False, timeout=10
    )
    assert stolen.status_code == 303  # the old token opens nothing


def test_a_key_is_shown_once_works_with_the_sdk_and_can_be_revoked(gw: Gateway) -> None:
    browser = signed_up(gw.url, new_email())
    key = new_key(browser, gw.url, name="laptop", models="gpt-4o-mini")
    listing = browser.get(gw.url + "/keys", timeout=10)
    assert key not in listing.text and key[:12] in listing.text and "laptop" in listing.text
    assert listing.headers["cache-control"] == "no-store"
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    revoke = browser.post(
        gw.url + "/keys/revoke",
        data={"csrf_token": csrf_of(listing.text), "prefix": key[:12]},
        allow_redirects=False,
        timeout=10,
    )
    assert revoke.status_code == 303
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_someone_elses_key_cannot_be_revoked(gw: Gateway) -> None:
    owner = signed_up(gw.url, new_email())
    key = new_key(owner, gw.url)
    thief = signed_up(gw.url, new_email())
    page = thief.get(gw.url + "/keys", timeout=10)
    refused = thief.post(
        gw.url + "/keys/revoke",
        data={"csrf_token": csrf_of(page.text), "prefix": key[:12]},
        timeout=10,
    )
    assert refused.status_code == 404
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    assert client.models.list().data


def test_a_bad_key_form_is_a_400_with_the_message(gw: Gateway) -> None:
    browser = signed_up(gw.url, new_email())
    page = browser.get(gw.url + "/keys", timeout=10)
    for expires in ("2001-01-01", "tomorrow"):
        bad = browser.post(
            gw.url + "/keys",
            data={"csrf_token": csrf_of(page.text), "name": "x", "expires": expires},
            timeout=10,
        )
        assert bad.status_code == 400 and 'role="alert"' in bad.text
        assert 'id="new-key"' not in bad.text  # no key was made


def test_usage_dashboard_and_csv_show_what_was_charged(gw: Gateway) -> None:
    email = new_email()
    browser = signed_up(gw.url, email)
    key = new_key(browser, gw.url)
    codes = gw.admin("POST", "/admin/codes", json={"amount": "2", "count": 1}).json()["codes"]
    page = browser.get(gw.url + "/topup", timeout=10)
    browser.post(
        gw.url + "/topup", data={"csrf_token": csrf_of(page.text), "code": codes[0]}, timeout=10
    )
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    api = requests.get(
        gw.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).json()["data"]
    assert len(api) == 1 and Decimal(api[0]["cost"]) > 0
    rows = list(csv.DictReader(io.StringIO(browser.get(gw.url + "/usage.csv", timeout=10).text)))
    assert len(rows) == 1
    assert rows[0]["model"] == "gpt-4o-mini" and rows[0]["cost_usd"] == api[0]["cost"]
    assert int(rows[0]["prompt_tokens"]) == api[0]["prompt_tokens"]
    cost = Decimal(api[0]["cost"])
    dashboard = browser.get(gw.url + "/dashboard", timeout=10).text
    assert f'id="spent-today">{usd(int(cost * 10**9))}<' in dashboard
    assert f'id="spent-month">{usd(int(cost * 10**9))}<' in dashboard
    balance = Decimal(re.search(r'id="balance">\$([0-9.]+)<', dashboard).group(1))  # type: ignore[union-attr]
    assert balance == Decimal(2) - cost  # exact to the nano-dollar
    assert "gpt-4o-mini" in browser.get(gw.url + "/usage", timeout=10).text


def test_a_code_credits_once(gw: Gateway) -> None:
    browser = signed_up(gw.url, new_email())
    code = gw.admin("POST", "/admin/codes", json={"amount": "1.25", "count": 1}).json()["codes"][0]
    page = browser.get(gw.url + "/topup", timeout=10)
    assert 'id="balance">$0.00<' in page.text
    done = browser.post(
        gw.url + "/topup", data={"csrf_token": csrf_of(page.text), "code": code}, timeout=10
    )
    assert done.status_code == 200 and 'id="balance">$1.25<' in done.text
    again = browser.post(
        gw.url + "/topup", data={"csrf_token": csrf_of(page.text), "code": code}, timeout=10
    )
    assert again.status_code == 400 and 'id="balance">$1.25<' in again.text
    assert 'role="alert"' in again.text


def test_a_password_reset_link_from_the_log_sets_a_new_password(gw: Gateway) -> None:
    email = new_email()
    signed_up(gw.url, email)
    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Catch()
    logging.getLogger("minitoolai.people.mail").addHandler(handler)
    try:
        browser = requests.Session()
        for address in ("nobody-" + email, email):
            page = browser.get(gw.url + "/password-reset", timeout=10)
            sent = browser.post(
                gw.url + "/password-reset",
                data={"csrf_token": csrf_of(page.text), "email": address},
                timeout=10,
            )
            assert sent.status_code == 200 and "If an account uses that email" in sent.text
    finally:
        logging.getLogger("minitoolai.people.mail").removeHandler(handler)
    links = [m for line in seen for m in re.findall(r"http://\S+/password-reset/\S+", line)]
    assert len(links) == 1  # none for the unknown email
    link = links[0]
    form = browser.get(link, timeout=10)
    assert form.status_code == 200 and form.headers["referrer-policy"] == "no-referrer"
    done = browser.post(
        link,
        data={"csrf_token": csrf_of(form.text), "password": "a brand new password"},
        timeout=10,
    )
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert logged_in(gw, email, password="a brand new password").status_code == 303
    assert logged_in(gw, email).status_code == 401
    used = browser.get(link, timeout=10)
    assert used.status_code == 400 and "invalid, already used or expired" in used.text


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("x" * 10_000 + "@example.com", PASSWORD),
        ("nul\x00@example.com", PASSWORD),
        ("ok@example.com", "p" * 2_000),
        ("", ""),
    ],
)
def test_bad_sign_ups_are_4xx_forms_never_500(gw: Gateway, email: str, password: str) -> None:
    browser = requests.Session()
    form = browser.get(gw.url + "/signup", timeout=10)
    answer = browser.post(
        gw.url + "/signup",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
        timeout=10,
    )
    assert 400 <= answer.status_code < 500 and 'role="alert"' in answer.text
    raw = browser.post(  # bytes that are not UTF-8 (a one-character password once decoded)
        gw.url + "/signup",
        data=f"csrf_token={csrf_of(form.text)}&email=%FF%FE%40x.io&password=%FF".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert raw.status_code == 400


def test_bad_key_forms_are_4xx_never_500(gw: Gateway) -> None:
    browser = signed_up(gw.url, new_email())
    page = browser.get(gw.url + "/keys", timeout=10)
    for fields in (
        {"name": "n" * 600},
        {"name": "nul\x00"},
        {"models": "gpt\x00"},
        {"expires": "9999-12-31"},
        {"expires": "2030-02-30"},
    ):
        answer = browser.post(
            gw.url + "/keys", data={"csrf_token": csrf_of(page.text), **fields}, timeout=10
        )
        assert answer.status_code == 400, (fields, answer.status_code)
    too_big = browser.post(
        gw.url + "/keys", data={"csrf_token": csrf_of(page.text), "name": "n" * 100_000}, timeout=10
    )
    assert too_big.status_code == 413
