"""A customer redeems a code: its amount is credited to the key's account, once per code."""

from __future__ import annotations

from starlette.requests import Request

from minitoolai.codes.schemas import RedeemRequest
from minitoolai.http.deps import principal, services, slashed
from minitoolai.http.responses import JSON, parse, read_json


async def redeem(request: Request) -> JSON:
    who = await principal(request)
    body = parse(RedeemRequest, await read_json(request))
    done = await services(request).codes.redeem(who.account_id, body.code)
    return JSON(done.to_dict())


routes = slashed("/api/redeem/", redeem, ["POST"])
