"""The operator's console: its paths, all under ``/console`` (docs/web.md, "Console")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from minitoolai.people.service import WebSession
from minitoolai.web import console_accounts, console_codes, console_ops
from minitoolai.web.console_guard import admin_page
from minitoolai.web.templating import redirect


async def _home(request: Request, session: WebSession) -> Response:
    return redirect("/console/accounts")


routes: list[BaseRoute] = [
    Route("/console", admin_page(_home), methods=["GET"]),
    Route("/console/accounts", console_accounts.accounts, methods=["GET"]),
    Route("/console/accounts/{name}", console_accounts.account, methods=["GET"]),
    Route("/console/accounts/{name}/adjust", console_accounts.adjust, methods=["POST"]),
    Route("/console/accounts/{name}/suspend", console_accounts.suspend, methods=["POST"]),
    Route("/console/codes", console_codes.codes, methods=["GET"]),
    Route("/console/codes", console_codes.create, methods=["POST"]),
    Route("/console/codes/{batch_id}", console_codes.batch, methods=["GET"]),
    Route("/console/prices", console_ops.prices, methods=["GET"]),
    Route("/console/prices", console_ops.set_prices, methods=["POST"]),
    Route("/console/deployments", console_ops.deployments, methods=["GET"]),
    Route("/console/jobs", console_ops.jobs, methods=["GET"]),
    Route("/console/revenue", console_ops.revenue, methods=["GET"]),
    Route("/console/audit", console_ops.audit, methods=["GET"]),
]

#: every console page a GET reaches (the tests walk them)
PAGES = [
    "/console",
    "/console/accounts",
    "/console/codes",
    "/console/prices",
    "/console/deployments",
    "/console/jobs",
    "/console/revenue",
    "/console/audit",
]
#: every console form (the tests post to each)
FORMS = [
    "/console/accounts/{name}/adjust",
    "/console/accounts/{name}/suspend",
    "/console/codes",
    "/console/prices",
]
