"""What every page handler shares: who is signed in, and the checks before a form is acted on.

``form_post`` wraps a POST handler: the form is read (bounded), its CSRF token checked, and
only then the handler runs; a POST without a valid token is a 403 that changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.people.service import WebSession
from minitoolai.web.forms import Form, FormTooLarge, read_form
from minitoolai.web.session import CSRF_FIELD, csrf_ok, current
from minitoolai.web.templating import page, redirect

PageHandler = Callable[[Request, WebSession], Awaitable[Response]]
FormHandler = Callable[[Request, Form, WebSession | None], Awaitable[Response]]
SignedInFormHandler = Callable[[Request, Form, WebSession], Awaitable[Response]]


async def refused(request: Request, status: int, heading: str, message: str) -> Response:
    return await page(
        request, "refused.html", status, heading=heading, message=message, back=request.url.path
    )


def signed_in(handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    """A page for signed-in people; anyone else is sent to log in, and back here after."""

    async def endpoint(request: Request) -> Response:
        session = await current(request)
        if session is None:
            return redirect("/login?next=" + quote(request.url.path, safe="/"))
        return await handler(request, session)

    return endpoint


def _form_post(
    handler: FormHandler, *, need_session: bool
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        session = await current(request)
        try:
            form = await read_form(request)
        except FormTooLarge:
            return await refused(
                request, 413, "Too large", "That form was larger than any of ours."
            )
        if not csrf_ok(request, session, form.get(CSRF_FIELD)):
            return await refused(
                request,
                403,
                "This form has expired",
                "The page was open too long, or the form did not come from this site. "
                "Reload the page and try again.",
            )
        if need_session and session is None:
            return redirect("/login")
        return await handler(request, form, session)

    return endpoint


def form_post(handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
    """A POST anyone may send (sign-up, log-in, reset), CSRF-checked."""
    return _form_post(handler, need_session=False)


def signed_in_post(handler: SignedInFormHandler) -> Callable[[Request], Awaitable[Response]]:
    """A POST of a signed-in person, CSRF-checked against their session's token."""

    async def with_session(request: Request, form: Form, session: WebSession | None) -> Response:
        assert session is not None
        return await handler(request, form, session)

    return _form_post(with_session, need_session=True)
