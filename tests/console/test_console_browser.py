"""The operator's console in a real browser (Debian's Chromium through Playwright): an admin
makes a code batch, adjusts an account's credit, and finds both in the audit log; a screenshot
of every console page (to a temporary folder, or to ``MINITOOLAI_SCREENSHOTS``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from minitoolai import cli
from tests.console.conftest import new_email
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.web.conftest import PASSWORD
from tests.web.test_browser import CHROMIUM, SHOTS, browser, page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (make setup installs Debian's chromium)"
)

if CHROMIUM is not None:
    from playwright.sync_api import Page, expect


def shot(tab: Page, name: str) -> None:
    """``tests/web``'s ``shot()``, masking new codes too (a picture is a copy of them)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(
        path=str(SHOTS / f"{name}.png"),
        full_page=True,
        mask=[tab.locator("#new-key"), tab.locator("#codes-list")],
    )


@pytest.fixture(scope="module")
def admin_gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, str]]:
    tmp: Path = tmp_path_factory.mktemp("console-browser")
    url = f"sqlite+aiosqlite:///{tmp / 'console.db'}"
    with running_gateway(
        tmp, url, {"openai": FakeUpstream()}, [{"model": "gpt-4o-mini", "provider": "openai"}]
    ) as gw:
        email = new_email("admin")
        made = CliRunner().invoke(
            cli.app,
            ["users", "create", email, "--admin", "--password-stdin"],
            input=PASSWORD + "\n",
            env={
                "MINITOOLAI_DATABASE_URL": url,
                "MINITOOLAI_DATA_DIR": str(tmp / "data"),
                "MINITOOLAI_CONFIG": None,
            },
        )
        assert made.exit_code == 0, made.output
        yield gw, email


def test_an_admin_makes_codes_adjusts_credit_and_finds_both_in_the_audit_log(
    admin_gw: tuple[Gateway, str],  # first: the CLI's event loop runs before Playwright's
    page: Page,  # noqa: F811
) -> None:
    gw, email = admin_gw
    page.goto(gw.url + "/console")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Console")
    ).to_be_visible()
    shot(page, "console-accounts")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Codes").click()
    page.get_by_label("Amount").fill("2.50")
    page.get_by_label("Count").fill("3")
    page.get_by_label("Note (optional)").fill("launch promo")
    page.get_by_role("button", name="Create codes").click()
    codes = page.locator("#codes-list")
    expect(codes).to_contain_text("MTAI-")
    batch_id = re.search(r"batch_[0-9a-f]{16}", page.locator("h1").inner_text())
    assert batch_id is not None
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.count("MTAI-") == 3 and batch_id.group(0) in csv_text
    shot(page, "console-new-codes")
    page.goto(gw.url + "/console/codes")
    expect(page.get_by_role("link", name=batch_id.group(0))).to_be_visible()
    shot(page, "console-codes")

    page.goto(gw.url + "/console/accounts")
    page.get_by_label("Search by name or email").fill(gw.account)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=gw.account).click()
    expect(page.locator("#balance")).to_have_text("$5.00")
    page.get_by_label("Amount").fill("-1.25")
    page.get_by_label("Note").fill("refund of a test charge")
    page.get_by_role("button", name="Adjust credit").click()
    expect(page.get_by_role("status")).to_have_text("Credit adjusted.")
    expect(page.locator("#balance")).to_have_text("$3.75")
    shot(page, "console-account")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    log = page.locator("#audit")
    expect(
        log.get_by_role("row").filter(has_text="codes.create").filter(has_text=batch_id.group(0))
    ).to_have_count(1)
    expect(
        log.get_by_role("row").filter(has_text="credit.adjust").filter(has_text=gw.account)
    ).to_have_count(1)
    expect(log).to_contain_text("refund of a test charge")
    shot(page, "console-audit")

    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)
    for text in ("hello", "a longer question about the weather today"):  # revenue to draw
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    for path, name, heading in [
        ("/console/prices", "console-prices", "Prices"),
        ("/console/deployments", "console-deployments", "Models and deployments"),
        ("/console/jobs", "console-jobs", "Image job queue"),
        ("/console/revenue", "console-revenue", "Revenue and usage"),
    ]:
        page.goto(gw.url + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        shot(page, name)
    expect(page.locator(".console-chart rect.bar")).to_have_count(2)  # a day, a model
