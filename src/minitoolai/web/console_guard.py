"""Who may use the operator's console: signed-in admins. A visitor is sent to log in, a
customer gets a 403 page, and every form is CSRF-checked (``web.guard``) before its role is.

``unsuspended`` wraps a customer page (keys, playground): a suspended account's people get a
403 page there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.errors import NotFound
from minitoolai.http.deps import services
from minitoolai.people.service import WebSession
from minitoolai.web.forms import Form
from minitoolai.web.guard import PageHandler, SignedInFormHandler, refused, signed_in_post
from minitoolai.web.session import current
from minitoolai.web.templating import redirect

Endpoint = Callable[[Request], Awaitable[Response]]


async def _not_admin(request: Request) -> Response:
    return await refused(
        request, 403, "Operators only", "The console is for the service's operators."
    )


def admin_page(handler: PageHandler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        session = await current(request)
        if session is None:
            return redirect("/login?next=" + quote(request.url.path, safe="/"))
        if not session.person.is_admin:
            return await _not_admin(request)
        try:
            return await handler(request, session)
        except NotFound as exc:
            return await refused(request, 404, "Not found", exc.message)

    return endpoint


def admin_post(handler: SignedInFormHandler) -> Endpoint:
    async def checked(request: Request, form: Form, session: WebSession) -> Response:
        if not session.person.is_admin:
            return await _not_admin(request)
        try:
            return await handler(request, form, session)
        except NotFound as exc:
            return await refused(request, 404, "Not found", exc.message)

    return signed_in_post(checked)


def unsuspended(endpoint: Endpoint) -> Endpoint:
    """The page, unless the signed-in person's account is suspended (then a 403 page)."""

    async def wrapped(request: Request) -> Response:
        session = await current(request)
        if session is not None and await services(request).account_admin.is_suspended(
            session.person.account_id
        ):
            return await refused(
                request,
                403,
                "Account suspended",
                "This account is suspended: its keys and the playground are off. "
                "Contact the operator.",
            )
        return await endpoint(request)

    return wrapped
