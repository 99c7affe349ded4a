"""The playground and the API reference in a real browser (Debian's Chromium through
Playwright): a chat's text arriving while it streams and its cost equal to the charge, an image
job's progress then the image, speech in an audio player, and screenshots of both pages on a
desktop and a phone (in a temporary folder, or ``MINITOOLAI_SCREENSHOTS``; see test_browser).
"""

from __future__ import annotations

import base64
import shutil
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from tests.support.gateway import Gateway
from tests.web.conftest import PASSWORD
from tests.web.test_browser import SHOTS
from tests.web.test_playground import WORDS, playground_gateway

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (make setup installs Debian's chromium)"
)

if CHROMIUM is not None:
    from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with playground_gateway(tmp_path_factory.mktemp("playground-browser")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _watched(browser: Browser, **options: Any) -> tuple[Any, Page, list[str]]:
    """A new tab and the errors its pages log (a CSP violation, a script error); a status
    code (the JSON 404 of /favicon.ico, a refused run's 4xx) is not one."""
    context = browser.new_context(**options)
    tab = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    tab.on("console", on_console)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    return context, tab, errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop tab; the test fails if its pages logged an error."""
    context, tab, errors = _watched(browser, viewport={"width": 1280, "height": 800})
    yield tab
    context.close()
    assert errors == [], errors


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def signed_up_with_credit(page: Page, gw: Gateway, credit: str = "5") -> dict[str, str]:
    """Sign up in the page; the admin API tops the account up and makes a key to read its
    usage with (the page itself never sees one)."""
    email = f"play-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(gw.url + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Welcome to MiniToolAI")).to_be_visible()
    topped = gw.admin("POST", f"/admin/accounts/{email}/credit", json={"amount": credit})
    assert topped.status_code == 200, topped.text
    key = gw.admin("POST", f"/admin/accounts/{email}/keys", json={"name": "reader"}).json()
    return {"email": email, "key": key["api_key"]}


def usage_of(gw: Gateway, key: str) -> list[dict[str, Any]]:
    answer = requests.get(
        gw.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


def test_chat_streams_in_the_page_and_shows_its_cost(page: Page, gw: Gateway) -> None:
    me = signed_up_with_credit(page, gw)
    page.goto(gw.url + "/")
    page.get_by_role("link", name="Playground").click()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()
    assert "mtai-" not in page.content()
    page.get_by_label("Chat model").select_option("gpt-4o-mini")
    expect(page.get_by_label("Image (for vision)")).to_be_visible()  # this model reads images
    page.get_by_label("System prompt").fill("Be brief.")
    page.get_by_label("Message").fill("Say twelve words.")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("#chat-answer")
    expect(answer).not_to_have_text("")
    first = answer.inner_text()
    time.sleep(0.5)  # three more words, 0.15 s apart
    second = answer.inner_text()
    assert page.locator("#playground").get_attribute("data-chat") == "running"
    assert len(second) > len(first) and second.startswith(first)  # it grew while streaming
    expect(page.locator("#chat-cost")).to_contain_text("Cost: $")
    expect(page.locator("#playground")).to_have_attribute("data-chat", "done")
    assert answer.inner_text().strip() == "".join(f"w{i} " for i in range(WORDS)).strip()
    row = usage_of(gw, me["key"])[0]
    assert row["kind"] == "chat" and row["status"] == "settled"
    assert page.locator("#chat-cost").get_attribute("data-cost") == row["cost"]
    shown = page.locator("#chat-cost").inner_text()
    assert f"{row['prompt_tokens']} prompt tokens" in shown
    assert f"{row['completion_tokens']} completion tokens" in shown
    assert Decimal(shown.split("$")[1].split(" ")[0]) == Decimal(row["cost"])

    # an image for vision goes with the message
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    )
    page.get_by_label("Image (for vision)").set_input_files(
        {"name": "dot.png", "mimeType": "image/png", "buffer": png}
    )
    page.get_by_label("Message").fill("What is in the picture?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#playground")).to_have_attribute("data-chat", "done", timeout=15_000)
    expect(page.locator("#chat-cost")).to_contain_text("Cost: $")
    parts = gw.upstreams["openai"].requests[-1]["messages"][-1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    runs = usage_of(gw, me["key"])
    assert len(runs) == 2

    # both runs are in the person's usage (the page's CSV export, with the session's cookie)
    exported = page.request.get(gw.url + "/usage.csv").text()
    assert all(run["request_id"] in exported for run in runs)


def test_an_image_job_shows_progress_then_the_image(page: Page, gw: Gateway) -> None:
    me = signed_up_with_credit(page, gw)
    page.goto(gw.url + "/playground")
    page.get_by_label("Image model").select_option("dreamshaper")
    page.get_by_label("Scheduler").select_option("DPM++ 2M Karras")
    page.get_by_label("Steps").fill("8")
    page.get_by_label("cfgScale").fill("4")
    page.get_by_label("Width").fill("256")
    page.get_by_label("Height").fill("256")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    page.get_by_label("Negative prompt").fill("fog")
    page.get_by_role("button", name="Generate").click()
    status = page.locator("#image-status")
    expect(status).to_have_attribute("data-status", "processing", timeout=15_000)
    expect(status).to_contain_text("%")
    expect(page.locator("#image-progress")).to_be_visible()
    expect(status).to_have_attribute("data-status", "success", timeout=30_000)
    picture = page.locator("#image-result")
    expect(picture).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.getElementById('image-result');"
        " return i.complete && i.naturalWidth > 0; }"
    )
    assert picture.evaluate("i => i.naturalWidth") == 256
    expect(page.locator("#image-cost")).to_contain_text("Cost: $")
    row = usage_of(gw, me["key"])[0]
    assert (row["kind"], row["model"], row["status"]) == ("image", "dreamshaper", "settled")
    assert page.locator("#image-cost").get_attribute("data-cost") == row["cost"]


def test_speech_plays_in_an_audio_player(page: Page, gw: Gateway) -> None:
    me = signed_up_with_credit(page, gw)
    page.goto(gw.url + "/playground")
    page.get_by_label("Speech model").select_option("tts-1")
    page.get_by_label("Voice").select_option("echo")
    page.get_by_label("Format").select_option("mp3")
    page.get_by_label("Text", exact=True).fill("Hello from the playground.")
    page.get_by_role("button", name="Speak").click()
    player = page.locator("audio#speech-audio")
    expect(player).to_be_visible()
    assert player.get_attribute("controls") is not None
    src = player.get_attribute("src") or ""
    prefix = "data:audio/mpeg;base64,"
    assert src.startswith(prefix)
    assert base64.b64decode(src[len(prefix) :]) == b"audio-part-0;audio-part-1;audio-part-2;"
    expect(page.locator("#speech-cost")).to_contain_text("Cost: $")
    row = usage_of(gw, me["key"])[0]
    assert (row["kind"], row["units"]) == ("speech", len("Hello from the playground."))
    assert page.locator("#speech-cost").get_attribute("data-cost") == row["cost"]


def test_the_three_panels_with_their_results(page: Page, gw: Gateway) -> None:
    """All three runs at once (the screenshot), each ending with its cost."""
    signed_up_with_credit(page, gw)
    page.goto(gw.url + "/playground")
    page.get_by_label("Message").fill("Say twelve words.")
    page.get_by_label("Width").fill("384")
    page.get_by_label("Height").fill("256")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    page.get_by_label("Text", exact=True).fill("Hello from the playground.")
    for button in ("Send", "Generate", "Speak"):
        page.get_by_role("button", name=button).click()
    for cost in ("#chat-cost", "#image-cost", "#speech-cost"):
        expect(page.locator(cost)).to_contain_text("Cost: $", timeout=30_000)
    expect(page.locator("#speech-audio")).to_be_visible()
    shot(page, "playground")


def test_a_refused_run_shows_its_message(page: Page, gw: Gateway) -> None:
    signed_up_with_credit(page, gw)
    page.goto(gw.url + "/playground")
    page.get_by_label("Width").fill("4096")
    page.get_by_label("Prompt", exact=True).fill("too wide")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#image-error")).to_contain_text("width")
    errors_before = page.locator("#chat-error").is_hidden()
    assert errors_before


def test_the_docs_page_shows_this_server(page: Page, gw: Gateway) -> None:
    page.goto(gw.url + "/docs")
    expect(page.get_by_role("heading", name="API reference")).to_be_visible()
    expect(page.locator("#base-url")).to_have_text(gw.url)
    examples = page.locator("code.example").all_text_contents()  # closed <details> too
    assert any(f"{gw.url}/api/texttoimage/" in e for e in examples)
    assert any(f'base_url="{gw.url}/v1"' in e for e in examples)
    shot(page, "docs")
    signed_up_with_credit(page, gw)
    page.goto(gw.url + "/docs")
    expect(page.get_by_role("link", name="Keys").first).to_be_visible()
    assert "mtai-" not in page.content()


def test_both_pages_fit_a_phone(browser: Browser, gw: Gateway) -> None:
    context, phone, errors = _watched(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    try:
        signed_up_with_credit(phone, gw)
        for path, name in (("/playground", "playground"), ("/docs", "docs")):
            phone.goto(gw.url + path)
            wide = phone.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, f"{path} scrolls sideways on a phone ({wide}px)"
            shot(phone, f"phone-{name}")
    finally:
        context.close()
    assert errors == [], errors
