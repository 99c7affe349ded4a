"""Sign-up, log-in, log-out and password reset."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.errors import APIError
from minitoolai.http.deps import services
from minitoolai.people.service import WebSession
from minitoolai.web.forms import Form
from minitoolai.web.guard import form_post
from minitoolai.web.security import safe_next
from minitoolai.web.session import (
    SESSION_COOKIE,
    clear_session_cookie,
    current,
    set_session_cookie,
)
from minitoolai.web.templating import base_url, page, redirect

log = logging.getLogger("minitoolai.web")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- sign up ---------------------------------------------------------------------------------


async def signup_form(request: Request) -> Response:
    if await current(request) is not None:
        return redirect("/dashboard")
    return await page(request, "signup.html", email="")


async def _signup(request: Request, form: Form, _session: WebSession | None) -> Response:
    people = services(request).people
    email = form.get("email")
    address = _client(request)
    wait = people.signups.retry_after("", address)
    if wait is not None:  # each sign-up is an account, a key and a password hash
        response = await page(
            request,
            "signup.html",
            429,
            email=email,
            error=f"Too many sign-ups from this address. Try again in {wait} seconds.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        person, key = await people.create(email, form.get("password"))
    except APIError as exc:
        return await page(request, "signup.html", exc.status_code, email=email, error=exc.message)
    people.signups.note("", address)  # one more sign-up from this address
    await people.close_session(request.cookies.get(SESSION_COOKIE))
    token, session = await people.open_session(person)
    request.state.web_session = session  # the welcome page is this person's already
    log.info("signed up %s (account %d)", person.email, person.account_id)
    # The account's first key, shown here once (never stored in the clear, never logged).
    response = await page(request, "welcome.html", 201, new_key=key)
    set_session_cookie(request, response, token, int(people.session_ttl.total_seconds()))
    return response


signup = form_post(_signup)


# -- log in / out ----------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    target = safe_next(request.query_params.get("next"))
    if await current(request) is not None:
        return redirect(target)
    return await page(request, "login.html", email="", next=target)


async def _login(request: Request, form: Form, _session: WebSession | None) -> Response:
    people = services(request).people
    email, password = form.get("email"), form.get("password")
    target = safe_next(form.get("next"))
    address = _client(request)
    wait = people.throttle.retry_after(email, address)
    if wait is not None:
        response = await page(
            request,
            "login.html",
            429,
            email=email,
            next=target,
            error=f"Too many failed attempts. Try again in {wait} seconds.",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    person = await people.login(email, password)
    if person is None:
        people.throttle.failed(email, address)
        return await page(
            request, "login.html", 401, email=email, next=target, error="Wrong email or password."
        )
    people.throttle.succeeded(email, address)
    token, _ = await people.open_session(person)
    await people.close_session(request.cookies.get(SESSION_COOKIE))
    response = redirect(target)
    set_session_cookie(request, response, token, int(people.session_ttl.total_seconds()))
    return response


login = form_post(_login)


async def _logout(request: Request, _form: Form, _session: WebSession | None) -> Response:
    await services(request).people.close_session(request.cookies.get(SESSION_COOKIE))
    response = redirect("/")
    clear_session_cookie(request, response)
    return response


logout = form_post(_logout)


# -- password reset --------------------------------------------------------------------------


async def reset_form(request: Request) -> Response:
    return await page(request, "reset_request.html", sent=False)


async def _reset_request(request: Request, form: Form, _session: WebSession | None) -> Response:
    # the same answer whether or not the email has a login
    await services(request).people.send_reset(form.get("email"), base_url(request))
    return await page(request, "reset_request.html", sent=True)


reset_request = form_post(_reset_request)


async def reset_token_form(request: Request) -> Response:
    token = request.path_params["token"]
    valid = await services(request).people.reset_is_valid(token)
    response = await page(
        request, "reset_finish.html", 200 if valid else 400, valid=valid, token=token
    )
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in this page's URL
    return response


async def _reset_finish(request: Request, form: Form, _session: WebSession | None) -> Response:
    token = request.path_params["token"]
    people = services(request).people
    try:
        person = await people.finish_reset(token, form.get("password"))
    except APIError as exc:
        valid = exc.param != "token"  # a weak password: the link still works
        response = await page(
            request,
            "reset_finish.html",
            exc.status_code,
            valid=valid,
            token=token,
            error=exc.message,
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    log.info("password reset for %s", person.email)
    return await page(
        request,
        "login.html",
        email=person.email,
        next="/dashboard",
        notice="Your password is changed. Log in with it.",
    )


reset_finish = form_post(_reset_finish)
