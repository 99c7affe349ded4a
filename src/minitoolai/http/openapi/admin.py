"""The operator's admin API under ``/admin/``: accounts, keys, their limits and budgets, redeem
code batches, and the audit log."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    ADMIN,
    ADMIN_WRITE,
    BOOL,
    INT,
    STR,
    TIME,
    USD,
    Schema,
    answers,
    list_of,
    nullable,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    usd_in,
)

_SHOWN_ONCE: Schema = {**STR, "description": "shown once"}

SCHEMAS: dict[str, Schema] = {
    "Account": obj(
        {
            "object": {"const": "account"},
            "name": STR,
            "balance": USD,
            "held": USD,
            "available": USD,
            "created_at": TIME,
        }
    ),
    "AccountDetail": {
        "allOf": [
            ref("Account"),
            obj(
                {
                    "open_holds": INT,
                    "recent_entries": {
                        "type": "array",
                        "items": obj(
                            {
                                "kind": STR,
                                "amount": USD,
                                "held": USD,
                                "request": nullable(STR),
                                "note": nullable(STR),
                                "created_at": TIME,
                            }
                        ),
                    },
                }
            ),
        ]
    },
    "AccountList": list_of("Account"),
    "AccountCreated": obj({"account": ref("Account"), "api_key": _SHOWN_ONCE}),
    "ApiKey": obj(
        {
            "object": {"const": "api_key"},
            "account": STR,
            "prefix": STR,
            "name": nullable(STR),
            "allowed_models": nullable({"type": "array", "items": STR}),
            "created_at": TIME,
            "expires_at": nullable(TIME),
            "revoked": {"type": "boolean"},
            "budgets": ref("Budgets"),
        }
    ),
    # spend budgets in USD, null: none (docs/billing.md, "Budgets")
    "Budgets": obj({p: nullable(STR) for p in ("daily", "monthly", "total")}),
    "AccountBudget": {
        "allOf": [
            obj({"object": {"const": "account_budget"}, "account": STR}),
            ref("Budgets"),
        ]
    },
    "ApiKeyCreated": {"allOf": [ref("ApiKey"), obj({"api_key": _SHOWN_ONCE})]},
    "RateLimits": obj(
        {
            "object": {"const": "rate_limits"},
            "account": STR,
            "key": {**nullable(STR), "description": "the key's prefix; null: the account's"},
            **{
                name: {**nullable({"type": "integer", "minimum": 1}), "description": what}
                for name, what in (
                    ("rpm", "requests per minute"),
                    ("tpm", "tokens per minute"),
                    ("ipm", "images per minute"),
                    ("max_concurrent", "requests in flight"),
                )
            },
        }
    ),
    "ApiKeyList": list_of("ApiKey"),
    "BalanceAlert": {
        "oneOf": [
            obj(
                {
                    "object": {"const": "balance_alert"},
                    "account": STR,
                    "below": USD,
                    "email": BOOL,
                    "webhook_url": nullable(STR),
                    "armed": BOOL,
                    "alerted_at": nullable(TIME),
                }
            ),
            obj({"object": {"const": "balance_alert"}, "account": STR, "deleted": BOOL}),
        ]
    },
    "ApiKeyRevoked": obj(
        {"object": {"const": "api_key"}, "prefix": STR, "revoked": {"const": True}}
    ),
}

#: the fields a batch of codes answers with, before and after how many were redeemed
_BATCH_HEAD: dict[str, Schema] = {
    "object": {"const": "code_batch"},
    "id": STR,
    "amount": USD,
    "count": INT,
}
_BATCH_TAIL: dict[str, Schema] = {
    "expires_at": nullable(TIME),
    "note": nullable(STR),
    "created_by": STR,
    "created_at": TIME,
}

CODE_AND_AUDIT_SCHEMAS: dict[str, Schema] = {
    "CodeBatch": obj({**_BATCH_HEAD, "redeemed": INT, **_BATCH_TAIL}),
    "CodeBatchCreated": obj(
        {
            **_BATCH_HEAD,
            **_BATCH_TAIL,
            "codes": {"type": "array", "items": STR, "description": "shown once"},
        }
    ),
    "AuditEntry": obj(
        {
            "object": {"const": "audit_entry"},
            "id": INT,
            "created_at": TIME,
            "actor": {**STR, "description": "`cli`, `admin-api`, or the admin's email"},
            "action": STR,
            "target": nullable(STR),
            "details": {"type": "object"},
        }
    ),
    "AuditList": list_of("AuditEntry"),
    "CodeBatchList": list_of("CodeBatch"),
    "CodeBatchDetail": {
        "allOf": [
            ref("CodeBatch"),
            obj(
                {
                    "redemptions": {
                        "type": "array",
                        "items": obj(
                            {
                                "code": {**STR, "description": "`MTAI-...-` and its last 4"},
                                "last4": STR,
                                "account": STR,
                                "redeemed_at": TIME,
                            }
                        ),
                    }
                }
            ),
        ]
    },
}

#: what the admin bodies' amount validators check in code
VALIDATOR_FACTS: dict[tuple[str, str], Schema] = {
    ("Usd", "amount"): usd_in(
        "A positive amount of US dollars as a decimal string (at most 9 decimals), e.g. `10` "
        "or `0.5`."
    ),
    ("NewCodes", "amount"): usd_in(
        "What each code credits, in US dollars as a positive decimal string (at most 9 decimals)."
    ),
    ("AlertBody", "below"): nullable(
        usd_in(
            "Alert when the available balance goes below this many US dollars (a positive "
            "decimal string, at most 9 decimals); `null` removes the alert."
        )
    ),
    ("NewAccount", "credit"): usd_in(
        "The first top-up in US dollars as a decimal string (at most 9 decimals); `0` for none.",
        default="0",
    ),
}


def _admin(
    op_id: str,
    summary: str,
    responses: dict[str, Schema],
    *,
    body: str | None = None,
    parameters: list[Schema] | None = None,
    description: str | None = None,
) -> Schema:
    return operation(
        op_id,
        summary,
        "admin",
        responses,
        security=ADMIN,
        body=body,
        parameters=parameters,
        description=description,
    )


_NAME = path_param("name", "the account's name")
_KEY_PREFIX = path_param("prefix", "a key's prefix, or the whole key")
_LIMITS_NOTE = (
    "Only the fields given change; 0 or null clears one (the configured default applies "
    "again). docs/limits.md."
)
_BUDGETS_NOTE = (
    "USD per UTC day, per UTC month, in total. Only the fields given change; null clears one"
)


def paths() -> dict[str, Schema]:
    """Accounts and keys."""
    return {
        "/admin/accounts": {
            "get": _admin(
                "adminListAccounts", "List accounts", answers("AccountList", "the accounts", (401,))
            ),
            "post": _admin(
                "adminCreateAccount",
                "Create an account and its first key",
                answers(
                    "AccountCreated", "created; the key is shown once", ADMIN_WRITE, status="201"
                ),
                body="NewAccount",
            ),
        },
        "/admin/accounts/{name}": {
            "get": _admin(
                "adminShowAccount",
                "An account: balance, held, open holds, recent ledger entries",
                answers("AccountDetail", "the account", (401, 404)),
                parameters=[_NAME],
            )
        },
        "/admin/accounts/{name}/credit": {
            "post": _admin(
                "adminAddCredit",
                "Top up an account",
                answers("Account", "the account after", ADMIN_WRITE),
                body="Usd",
                parameters=[_NAME],
            )
        },
        "/admin/accounts/{name}/alert": {
            "put": _admin(
                "adminSetAlert",
                "Set (or remove) the account's low-balance alert",
                answers("BalanceAlert", "the alert now", ADMIN_WRITE),
                body="AlertBody",
                parameters=[_NAME],
                description="One email to the owner and/or one webhook POST when the available "
                "balance goes below `below`; re-armed when it is back above (docs/billing.md).",
            )
        },
        "/admin/accounts/{name}/keys": {
            "get": _admin(
                "adminListKeys",
                "The account's keys (prefixes only)",
                answers("ApiKeyList", "the keys", (401, 404)),
                parameters=[_NAME],
            ),
            "post": _admin(
                "adminCreateKey",
                "A new key for the account, shown once",
                answers("ApiKeyCreated", "created", ADMIN_WRITE, status="201"),
                body="NewKey",
                parameters=[_NAME],
            ),
        },
        "/admin/keys/{prefix}": {
            "delete": _admin(
                "adminRevokeKey",
                "Revoke the one live key starting with `prefix` (at least 8 characters)",
                answers("ApiKeyRevoked", "revoked", (400, 401, 404, 409)),
                parameters=[_KEY_PREFIX],
            )
        },
        "/admin/keys/{prefix}/limits": {
            "put": _admin(
                "adminSetKeyLimits",
                "Set the rate limits of the one live key starting with `prefix`",
                answers("RateLimits", "the key's own limits now", ADMIN_WRITE),
                body="LimitsBody",
                parameters=[_KEY_PREFIX],
                description=_LIMITS_NOTE,
            )
        },
        "/admin/keys/{prefix}/budget": {
            "put": _admin(
                "adminSetKeyBudget",
                "Set the spend budgets of the one live key starting with `prefix`",
                answers("ApiKey", "the key, with its budgets now", ADMIN_WRITE),
                body="BudgetBody",
                parameters=[_KEY_PREFIX],
                description=_BUDGETS_NOTE + ". A request that would pass one is a 402 "
                "`budget_exceeded` (docs/billing.md, Budgets).",
            )
        },
        "/admin/accounts/{name}/budget": {
            "put": _admin(
                "adminSetAccountBudget",
                "Set the account's spend budgets, shared by all its keys",
                answers("AccountBudget", "the account's budgets now", ADMIN_WRITE),
                body="BudgetBody",
                parameters=[_NAME],
                description=_BUDGETS_NOTE + " (docs/billing.md, Budgets).",
            )
        },
        "/admin/accounts/{name}/limits": {
            "put": _admin(
                "adminSetAccountLimits",
                "Set the account's rate limits, shared by all its keys",
                answers("RateLimits", "the account's own limits now", ADMIN_WRITE),
                body="LimitsBody",
                parameters=[_NAME],
                description=_LIMITS_NOTE,
            )
        },
    }


def code_and_audit_paths() -> dict[str, Schema]:
    """Redeem code batches and the audit log."""
    return {
        "/admin/codes": {
            "get": _admin(
                "adminListCodeBatches",
                "Redeem-code batches, newest first, with how many were redeemed",
                answers("CodeBatchList", "the batches", (401,)),
            ),
            "post": _admin(
                "adminCreateCodes",
                "Make a batch of single-use redeem codes (shown once)",
                answers(
                    "CodeBatchCreated", "made; the codes are shown once", ADMIN_WRITE, status="201"
                ),
                body="NewCodes",
            ),
        },
        "/admin/audit": {
            "get": _admin(
                "adminListAudit",
                "The audit log of admin actions (console, CLI, admin API), newest first",
                answers("AuditList", "the entries", (400, 401)),
                parameters=[
                    query_param("action", STR),
                    query_param("actor", STR),
                    query_param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}
                    ),
                ],
            )
        },
        "/admin/codes/{batch_id}": {
            "get": _admin(
                "adminShowCodeBatch",
                "A batch and its redemptions (which code by its last 4, who, when)",
                answers("CodeBatchDetail", "the batch", (401, 404)),
                parameters=[path_param("batch_id", "the batch's id (`batch_...`)")],
            )
        },
    }
