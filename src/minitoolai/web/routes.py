"""The storefront's paths. Only these are pages; every other path stays the JSON API's (an
unknown one is its JSON 404)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minitoolai.web import (
    account_pages,
    auth_pages,
    docs_page,
    landing,
    playground,
    playground_api,
    usage_pages,
)
from minitoolai.web.console import routes as console_routes
from minitoolai.web.console_guard import unsuspended
from minitoolai.web.security import PAGE_HEADERS
from minitoolai.web.templating import HERE


def _with_page_headers(app: ASGIApp) -> ASGIApp:
    """The static files get the pages' headers too (``nosniff`` matters most for them)."""
    extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped


routes: list[BaseRoute] = [
    Route("/", landing.landing, methods=["GET"]),
    Route("/signup", auth_pages.signup_form, methods=["GET"]),
    Route("/signup", auth_pages.signup, methods=["POST"]),
    Route("/login", auth_pages.login_form, methods=["GET"]),
    Route("/login", auth_pages.login, methods=["POST"]),
    Route("/logout", auth_pages.logout, methods=["POST"]),
    Route("/password-reset", auth_pages.reset_form, methods=["GET"]),
    Route("/password-reset", auth_pages.reset_request, methods=["POST"]),
    Route("/password-reset/{token}", auth_pages.reset_token_form, methods=["GET"]),
    Route("/password-reset/{token}", auth_pages.reset_finish, methods=["POST"]),
    Route("/dashboard", usage_pages.dashboard, methods=["GET"]),
    Route("/dashboard/alert", usage_pages.save_alert, methods=["POST"]),
    Route("/keys", unsuspended(account_pages.keys), methods=["GET"]),
    Route("/keys", unsuspended(account_pages.create_key), methods=["POST"]),
    Route("/keys/revoke", unsuspended(account_pages.revoke_key), methods=["POST"]),
    Route("/usage", usage_pages.usage, methods=["GET"]),
    Route("/usage.csv", usage_pages.usage_csv, methods=["GET"]),
    Route("/topup", account_pages.topup, methods=["GET"]),
    Route("/topup", account_pages.redeem, methods=["POST"]),
    Route("/topup/card", account_pages.pay_by_card, methods=["POST"]),
    *console_routes,  # the operator's console (admins only)
    Route("/playground", unsuspended(playground.playground), methods=["GET"]),
    *playground_api.routes,  # JSON for the playground's script (session + CSRF header)
    Route("/docs", docs_page.docs, methods=["GET"]),
    Mount("/static", _with_page_headers(StaticFiles(directory=HERE / "static")), name="static"),
]
