"""The paid surfaces' exact paths, answered without Starlette's routing and middleware layers.

A chat request went through Starlette's error middleware, its exception middleware, the router
(matching its path against the routes before it) and two exception wrappers, each a coroutine
and a wrapped ``send``: about a tenth of the gateway's CPU per request in the profile. This ASGI
app sits where those layers start and answers the routes it is given directly, as they would:

- a route is taken only for the method and path for which Starlette's router would have picked
  it (checked against the routes in order when the lane is built), and only without a
  ``root_path``; everything else goes to Starlette unchanged;
- the scope gets what the router gives an endpoint (``router``, ``route``, ``endpoint``,
  ``path_params``);
- an error from the endpoint, before anything is sent, is rendered by the app's own handlers
  (``APIError``, Starlette's ``HTTPException``, anything else as the 500 of ``on_unexpected``,
  which is then raised on to the server as ``ServerErrorMiddleware`` does); an error once the
  response has begun is raised on.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from minitoolai.errors import APIError

Handler = Callable[[Request, Exception], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Any]]


def _first_match(routes: Sequence[BaseRoute], method: str, path: str) -> BaseRoute | None:
    """The route Starlette's router would run for ``method`` and ``path``."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "path_params": {}}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


class FastLane:
    def __init__(
        self,
        app: ASGIApp,
        fast: Sequence[Route],
        router: Router,
        *,
        on_api_error: Handler,
        on_http_error: Handler,
        on_unexpected: Handler,
    ) -> None:
        self.app = app
        self._router = router
        self._on_api_error = on_api_error
        self._on_http_error = on_http_error
        self._on_unexpected = on_unexpected
        self._routes: dict[tuple[str, str], Route] = {}
        for route in fast:
            if route.param_convertors or not inspect.iscoroutinefunction(route.endpoint):
                continue  # only plain paths answered by a coroutine, as ``request_response``
            for method in route.methods or ():
                if _first_match(router.routes, method, route.path) is route:
                    self._routes[method, route.path] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._routes.get((scope["method"], scope["path"]))
            if route is not None:
                await self._answer(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("router", self._router)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        endpoint: Endpoint = route.endpoint
        try:
            response = await endpoint(request)
        except Exception as exc:  # nothing has been sent: the app's handlers answer
            if isinstance(exc, APIError):
                error = await self._on_api_error(request, exc)
            elif isinstance(exc, HTTPException):
                error = await self._on_http_error(request, exc)
            else:
                await (await self._on_unexpected(request, exc))(scope, receive, send)
                raise  # as ServerErrorMiddleware: the server logs it too
            await error(scope, receive, send)
            return
        await response(scope, receive, send)
