"""The browser's session cookie and the CSRF token of every form.

- The cookie holds a random token (``people.tokens``); the database keeps its hash. It is
  ``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when the request came over https.
- CSRF: a signed-in form carries its session's own token (made anew at each log-in); a form
  shown before log-in (sign-up, log-in, reset) carries a random token that must equal the one in
  a cookie set with the page (double submit). Every POST is checked before anything else runs.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.http.deps import services
from minitoolai.people.service import WebSession
from minitoolai.people.tokens import new_token, tokens_match

SESSION_COOKIE = "mtai_session"
ANON_CSRF_COOKIE = "mtai_csrf"
CSRF_FIELD = "csrf_token"

_UNSET = object()


async def current(request: Request) -> WebSession | None:
    """The signed-in person's session, read once per request."""
    cached = getattr(request.state, "web_session", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[return-value]
    found = await services(request).people.session(request.cookies.get(SESSION_COOKIE))
    request.state.web_session = found
    return found


def csrf_token(request: Request, session: WebSession | None) -> str:
    """The token this request's forms carry (``remember_anonymous_csrf`` sets its cookie)."""
    if session is not None:
        return session.csrf_token
    token = request.cookies.get(ANON_CSRF_COOKIE)
    if not token or len(token) > 100 or not token.isascii():
        token = getattr(request.state, "new_csrf", None) or new_token()
        request.state.new_csrf = token
    return token


def csrf_ok(request: Request, session: WebSession | None, submitted: str) -> bool:
    if not submitted:
        return False
    if session is not None:
        expected = session.csrf_token
    else:
        expected = request.cookies.get(ANON_CSRF_COOKIE) or ""
    return bool(expected) and tokens_match(expected, submitted)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def remember_anonymous_csrf(request: Request, response: Response) -> None:
    token = getattr(request.state, "new_csrf", None)
    if token:
        response.set_cookie(
            ANON_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )


def set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=_secure(request), path="/"
    )
