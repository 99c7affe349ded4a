"""The public vocabulary of the image API: model names, sampler names and the request ranges.

Plain data, no torch: the API layer validates requests against these tables without loading the
image stack. The ranges are the seed contract's (``/api/texttoimage/``); the engine itself accepts
wider values (tests run at 64 px) and leaves these limits to the API layer.
"""

from __future__ import annotations

from typing import Final, Literal

#: The 15 model names the API accepts, in the order the seed contract lists them.
MODEL_NAMES: Final[tuple[str, ...]] = (
    "realvision",
    "juggernaut",
    "autismmix",
    "dreamshaper",
    "valhalla",
    "mixrealistic",
    "campursari",
    "reality",
    "extrarealistic",
    "realism",
    "realgirls",
    "realityreborn",
    "amigo",
    "simplemix",
    "beautifulrealistic",
)

#: The 18 AUTOMATIC1111 sampler names the API accepts ("DPM adaptive" is not among them).
SCHEDULER_NAMES: Final[tuple[str, ...]] = (
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM++ 2M SDE",
    "DPM fast",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DPM++ 2M SDE Karras",
)

Architecture = Literal["sdxl", "sd15"]
#: How inference timesteps are spread over the 1000 training steps (diffusers' names):
#: ``linspace`` is A1111's default ("Automatic") schedule, ``trailing`` is "SGM Uniform", which
#: Lightning-distilled checkpoints were trained with; ``leading`` is diffusers' SD default and
#: never reaches full noise at few steps (washed-out images).
TimestepSpacing = Literal["linspace", "leading", "trailing"]

DEFAULT_SCHEDULER: Final = "DPM++ SDE"
DEFAULT_STEPS: Final = 4
DEFAULT_CFG_SCALE: Final = 2.0
DEFAULT_SIZE: Final = 1024

STEPS_RANGE: Final = (1, 8)
CFG_SCALE_RANGE: Final = (1.0, 7.0)
SIZE_RANGE: Final = (256, 1344)
