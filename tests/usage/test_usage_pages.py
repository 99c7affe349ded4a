"""``/dashboard``'s spending and ``/usage``'s filters, pages, charts and CSV over plain HTTP
against a running gateway, compared with the charges the test placed."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape

from minitoolai.web.templating import usd
from tests.usage.charges import Placed
from tests.usage.conftest import Shop


def _now() -> datetime:
    return datetime.now(UTC)


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _nano(text: str) -> int:
    return int(Decimal(text) * 1_000_000_000)


def test_the_dashboard_shows_exact_spending_today_and_this_month(shop: Shop) -> None:
    browser, _, account_id = shop.customer()
    now = _now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    specs = [
        (max(day, now - timedelta(minutes=1)), 1_000_000_001, "gpt-4o-mini", "chat", "settled"),
        (max(day, now - timedelta(minutes=2)), 3, "gpt-4o", "chat", "settled"),
        (max(day, now - timedelta(minutes=3)), 500, "gpt-4o", "chat", "refunded"),
        (now - timedelta(days=3), 20_000_000_000, "gpt-4o", "chat", "settled"),
        (now - timedelta(days=40), 7, "tts-1", "speech", "settled"),
    ]
    placed = shop.charges(account_id, specs)
    today = sum(p.cost for p in placed if p.status == "settled" and p.at >= day)
    month = sum(p.cost for p in placed if p.status == "settled" and p.at >= day.replace(day=1))
    html = browser.get(shop.gw.url + "/dashboard", timeout=10).text
    assert re.search(r'id="spent-today">([^<]+)<', html).group(1) == usd(today)  # type: ignore[union-attr]
    assert re.search(r'id="spent-month">([^<]+)<', html).group(1) == usd(month)  # type: ignore[union-attr]
    assert usd(today) == "$1.000000004"  # not rounded to cents


def _history(shop: Shop) -> tuple[object, int, list[Placed], datetime]:
    browser, _, account_id = shop.customer()
    base = _now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=10)
    specs = []
    for i in range(64):
        model = ("gpt-4o-mini", "gpt-4o", "tts-1", "text-embedding-3-small")[i % 4]
        kind = {"tts-1": "speech", "text-embedding-3-small": "embeddings"}.get(model, "chat")
        status = "released" if i % 9 == 0 else "settled"
        specs.append((base + timedelta(days=i % 7, minutes=i), 1_000 * i + 7, model, kind, status))
    return browser, account_id, shop.charges(account_id, specs), base


def test_usage_filters_pages_charts_and_csv_agree_with_the_rows(shop: Shop) -> None:
    browser, _, placed, base = _history(shop)
    url = shop.gw.url
    assert isinstance(placed, list)

    # no filter: all of it as CSV, exactly the rows
    rows = _csv(browser.get(url + "/usage.csv", timeout=10).text)  # type: ignore[attr-defined]
    assert {(r["request_id"], _nano(r["cost_usd"])) for r in rows} == {
        (p.id, p.cost) for p in placed
    }

    # model + kind + dates: the page, its pages, its CSV and its sums
    first = (base + timedelta(days=2)).strftime("%Y-%m-%d")
    last = (base + timedelta(days=5)).strftime("%Y-%m-%d")
    query = {"model": "gpt-4o", "kind": "chat", "from": first, "to": last}
    wanted = [
        p for p in placed if p.model == "gpt-4o" and first <= p.at.strftime("%Y-%m-%d") <= last
    ]
    assert wanted
    got = _csv(browser.get(url + "/usage.csv", params=query, timeout=10).text)  # type: ignore[attr-defined]
    assert sorted(r["request_id"] for r in got) == sorted(p.id for p in wanted)
    assert all(r["model"] == "gpt-4o" and r["kind"] == "chat" for r in got)
    assert [r["created_at"] for r in got] == sorted((r["created_at"] for r in got), reverse=True)
    page = browser.get(url + "/usage", params=query, timeout=10)  # type: ignore[attr-defined]
    assert page.status_code == 200
    html = page.text
    # the form keeps what was chosen, with labels
    for label in ("Model", "Kind", "From", "To"):
        assert re.search(rf"<label for=\"f-\w+\">{label}</label>", html)
    assert f'value="{first}"' in html and '<option value="gpt-4o" selected>' in html
    # one bar per day with charges, each with its exact figures in a <title>
    days: dict[str, list[int]] = {}
    for p in wanted:
        day = days.setdefault(p.at.strftime("%Y-%m-%d"), [0, 0])
        day[0] += 1
        day[1] += p.cost if p.status == "settled" else 0
    bars = re.findall(r'<rect class="bar" data-day="([\d-]+)"[^>]*><title>([^<]+)</title>', html)
    assert [d for d, _ in bars] == sorted(days)
    for d, tip in bars:
        assert (
            unescape(tip)
            == f"{d}: {usd(days[d][1])} ({days[d][0]} request{'s' if days[d][0] != 1 else ''})"
        )
    table = re.search(r'<table class="sums" id="days-table">(.*?)</table>', html, re.S)
    assert table and len(re.findall(r"<tr><td>", table.group(1))) == len(days)
    assert re.search(r'id="usage-total">([^<]+)<', html).group(1) == usd(  # type: ignore[union-attr]
        sum(v[1] for v in days.values())
    )
    models = re.findall(r'<rect class="bar" data-model="([^"]+)"', html)
    assert models == ["gpt-4o"]
    assert 'role="img"' in html and '<title id="chart-days-title">' in html


def test_usage_pages_walk_every_row_newest_first(shop: Shop) -> None:
    browser, _, placed, _ = _history(shop)
    url, seen = shop.gw.url + "/usage", 0
    pages = 0
    while url:
        html = browser.get(url, timeout=10).text  # type: ignore[attr-defined]
        seen += html.count("<tr>\n      <td>")
        older = re.search(r'<a href="([^"]+)" rel="next"', html)
        url = shop.gw.url + unescape(older.group(1)) if older else ""
        pages += 1
    assert pages == 2 and seen == len(placed)


def test_bad_filters_are_a_400_page_not_a_500(shop: Shop) -> None:
    browser, _, _ = shop.customer()
    for query in (
        {"kind": "poetry"},
        {"from": "2026-13-01"},
        {"from": "2026-05-02", "to": "2026-05-01"},
        {"before": "not-a-cursor"},
        {"model": "x\x00y"},
    ):
        page = browser.get(shop.gw.url + "/usage", params=query, timeout=10)
        assert page.status_code == 400, query
        assert 'role="alert"' in page.text
    assert (
        browser.get(shop.gw.url + "/usage.csv", params={"kind": "x"}, timeout=10).status_code == 400
    )


def test_the_csv_streams_a_big_account(shop: Shop) -> None:
    """More rows than one export batch (1,000): every one arrives, in order, in pieces."""
    browser, _, account_id = shop.customer()
    start = _now() - timedelta(days=1)
    placed = shop.charges(
        account_id,
        [
            (start + timedelta(seconds=i), i + 1, "gpt-4o-mini", "chat", "settled")
            for i in range(2300)
        ],
    )
    with browser.get(shop.gw.url + "/usage.csv", stream=True, timeout=30) as answer:
        assert answer.headers.get("content-length") is None  # streamed, not one body
        text = b"".join(answer.iter_content(65536)).decode()
    rows = _csv(text)
    assert [r["request_id"] for r in rows] == [p.id for p in reversed(placed)]
    assert sum(_nano(r["cost_usd"]) for r in rows) == sum(p.cost for p in placed)


def test_without_a_start_date_the_charts_cover_the_last_92_days(shop: Shop) -> None:
    """The listing and CSV keep everything; the charts' sums stay an index range scan."""
    browser, _, account_id = shop.customer()
    now = _now()
    old, recent = shop.charges(
        account_id,
        [
            (now - timedelta(days=120), 5_000, "gpt-4o", "chat", "settled"),
            (now - timedelta(minutes=5), 7, "gpt-4o-mini", "chat", "settled"),
        ],
    )
    html = browser.get(shop.gw.url + "/usage", timeout=10).text
    assert re.findall(r'data-day="([\d-]+)"', html) == [recent.at.strftime("%Y-%m-%d")]
    assert "in the last 92 days" in html and old.at.strftime("%Y-%m-%d") in html  # listed
    since = (now - timedelta(days=200)).strftime("%Y-%m-%d")
    html = browser.get(shop.gw.url + "/usage", params={"from": since}, timeout=10).text
    assert len(re.findall(r'data-day="([\d-]+)"', html)) == 2 and "in the last" not in html
    assert re.search(r'id="usage-total">([^<]+)<', html).group(1) == usd(5_007)  # type: ignore[union-attr]
