"""What a key asks about its own account: the balance, recent usage, and redeeming a code."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    INT,
    SLASH_NOTE,
    STR,
    TIME,
    USD,
    Schema,
    answers,
    nullable,
    obj,
    operation,
    query_param,
)

SCHEMAS: dict[str, Schema] = {
    "Balance": obj(
        {
            "object": {"const": "balance"},
            "currency": {"const": "USD"},
            "balance": USD,
            "held": USD,
            "available": USD,
        }
    ),
    "UsageList": obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": obj(
                    {
                        "id": STR,
                        "object": {"const": "usage"},
                        "kind": {"enum": ["chat", "image", "speech"]},
                        "model": STR,
                        "served_by": nullable(STR),
                        "status": STR,
                        "prompt_tokens": nullable(INT),
                        "completion_tokens": nullable(INT),
                        "units": nullable(INT),
                        "estimated": {"type": "boolean"},
                        "cost": USD,
                        "created_at": TIME,
                        "request_id": nullable(STR),
                    }
                ),
            },
        }
    ),
}

REDEEM_SCHEMAS: dict[str, Schema] = {
    "Redemption": obj(
        {
            "object": {"const": "redemption"},
            "amount": USD,
            "batch": {**STR, "description": "the code's batch (the ledger entry names it)"},
            "balance": {**USD, "description": "the account's balance after the credit"},
        }
    ),
}


def paths() -> dict[str, Schema]:
    return {
        "/api/balance/": {
            "get": operation(
                "getBalance",
                "The account's balance, what is held by requests in flight, and what is left",
                "account",
                answers("Balance", "the balance", (401,)),
                description=SLASH_NOTE,
            )
        },
        "/api/usage/": {
            "get": operation(
                "listUsage",
                "Recent charged requests, newest first",
                "account",
                answers("UsageList", "the requests", (401,)),
                parameters=[
                    query_param(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                        description="how many (clamped to 1-500; a non-number means 50)",
                    )
                ],
                description=SLASH_NOTE,
            )
        },
    }


def redeem_paths() -> dict[str, Schema]:
    responses = answers("Redemption", "credited", (400, 401, 413, 429))
    responses["400"]["description"] = (
        "`invalid_code` for a code that is unknown, already redeemed or expired (one message "
        "for all three), or a malformed body."
    )
    responses["429"]["description"] = "Too many failed redemptions by this account lately."
    return {
        "/api/redeem/": {
            "post": operation(
                "redeemCode",
                "Redeem a code: its amount is credited to the key's account, once per code",
                "account",
                responses,
                body="RedeemRequest",
                description=SLASH_NOTE,
            )
        },
    }
