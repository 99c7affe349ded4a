"""The usage page in a real browser (Debian's Chromium through Playwright): the charts draw a
bar per day, the filters narrow the rows and the charts, the CSV link carries the filters.
Screenshots go to a temporary folder, or to ``MINITOOLAI_SCREENSHOTS``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.usage.conftest import Shop
from tests.web.test_browser import CHROMIUM, shot, sign_up

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (make setup installs Debian's chromium)"
)

if CHROMIUM is not None:
    from playwright.sync_api import Page, expect

    from tests.web.test_browser import browser, page  # noqa: F401 (the fixtures)


def test_usage_charts_and_filters(page: Page, shop: Shop) -> None:
    email = sign_up(page, shop.gw.url)
    account_id = shop.account_id(email)
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) - timedelta(days=6)
    specs = []
    for i in range(30):
        model = ("gpt-4o-mini", "gpt-4o", "tts-1")[i % 3]
        kind = "speech" if model == "tts-1" else "chat"
        specs.append(
            (
                start + timedelta(days=i % 6, minutes=i),
                10_000_000 * (i % 6 + 1) + 3_000_000 * (i % 5),
                model,
                kind,
                "settled",
            )
        )
    placed = shop.charges(account_id, specs)
    days = sorted({p.at.strftime("%Y-%m-%d") for p in placed})

    page.goto(shop.gw.url + "/usage")
    expect(page.locator("#chart-days rect.bar")).to_have_count(len(days))
    expect(page.locator("#chart-models rect.bar")).to_have_count(3)
    expect(page.get_by_role("img", name="Spending per day, 6 days")).to_be_visible()
    shot(page, "usage-charts")

    page.get_by_label("Model", exact=True).select_option("gpt-4o")
    page.get_by_label("From", exact=True).fill(days[1])
    page.get_by_label("To", exact=True).fill(days[3])
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"{shop.gw.url}/usage?model=gpt-4o&kind=&from={days[1]}&to={days[3]}")
    wanted = [
        p for p in placed if p.model == "gpt-4o" and days[1] <= p.at.strftime("%Y-%m-%d") <= days[3]
    ]
    expect(page.locator("table.usage tbody tr")).to_have_count(len(wanted))
    expect(page.locator("#chart-models rect.bar")).to_have_count(1)
    expect(page.locator("#chart-days rect.bar")).to_have_count(len({p.at.date() for p in wanted}))
    href = page.locator("#csv-link").get_attribute("href")
    assert href is not None and "model=gpt-4o" in href and f"from={days[1]}" in href
    page.get_by_text("Per day, as a table").click()
    expect(page.locator("#days-table tbody tr")).to_have_count(len({p.at.date() for p in wanted}))
    shot(page, "usage-filtered")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(shop.gw.url + "/usage")
    expect(page.locator("#chart-days")).to_be_visible()
    shot(page, "phone-usage")
