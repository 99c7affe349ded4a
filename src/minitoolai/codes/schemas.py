"""What a customer sends to redeem a code."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RedeemRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=100,
        description="A redeem code as it was given (`MTAI-XXXX-XXXX-XXXX-XXXX`); case, spaces "
        "and dashes do not matter.",
    )
