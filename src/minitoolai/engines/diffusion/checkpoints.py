"""Which weights answer each image model name, and how the operator changes that.

The 15 API names are nicknames: most match no single public checkpoint (see
``shared/notes/image-models.md``). Each gets a default that names a real public checkpoint where
one matches, or a public Lightning SDXL merge as a clearly marked stand-in. The gateway ships no
weights (licences differ per checkpoint), so the operator may point any name at their own files:

.. code-block:: toml

    [image_models.realvision]
    checkpoint = "/models/realvis"          # a diffusers folder, a .safetensors file, or a repo id
    architecture = "sdxl"                   # needed for a single .safetensors file
    timestep_spacing = "trailing"           # what the checkpoint was trained with

``checkpoint`` accepts four forms:

* ``owner/name``                     a Hugging Face repo (diffusers layout, or one top-level
                                     .safetensors file)
* ``owner/name/path/file.safetensors`` one single-file checkpoint inside a Hugging Face repo
* ``/path/to/folder``                a local diffusers folder (has ``model_index.json``)
* ``/path/to/file.safetensors``      a local single-file (A1111/Civitai-style) checkpoint

A value that names an existing path (relative to the working directory) is taken as local even if
it also looks like ``owner/name``. Only ``.safetensors`` single files are accepted: ``.ckpt``
files are pickles that run code on load.

A request that names no sampler, steps or CFG scale gets the seed's defaults whatever the model
(``minitoolai.catalog``): a checkpoint has no defaults of its own. The model cards' recommended
settings, quoted next to each default below, are what a client may send for better images.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from minitoolai.catalog import IMAGE_MODELS, ImageArchitecture, TimestepSpacing
from minitoolai.engines.diffusion.errors import CheckpointConfigError
from minitoolai.settings import UNAPPLIED_IMAGE_KEYS, ImageModelConfig

SourceKind = Literal["hub_repo", "hub_file", "local_dir", "local_file"]

#: The VAE that decodes SDXL latents in fp16 without NaNs (SDXL's own VAE overflows in fp16).
SDXL_FP16_VAE: Final = "madebyollin/sdxl-vae-fp16-fix"
#: Where a single-file checkpoint's component configs and tokenizers come from (small files only:
#: ``pull`` fetches ``*.json``/``*.txt``, never these repos' weights).
BASE_CONFIG_REPOS: Final[Mapping[str, str]] = {
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
}

_REPO_ID = r"[A-Za-z0-9][\w.-]*/[\w.-]+"
_HUB_REPO = re.compile(rf"^{_REPO_ID}$")
_HUB_FILE = re.compile(rf"^{_REPO_ID}/(?:[\w. -]+/)*[\w. -]+\.safetensors$")


def source_kind(checkpoint: str) -> SourceKind:
    """Classify a ``checkpoint`` string; raises ``ValueError`` for a form we do not load."""
    value = checkpoint.strip()
    if value.startswith(("/", "./", "../", "~")) or Path(value).expanduser().exists():
        if value.endswith(".ckpt"):
            raise ValueError("pickle .ckpt checkpoints are refused: convert to .safetensors")
        return "local_file" if value.endswith(".safetensors") else "local_dir"
    if _HUB_REPO.match(value):
        return "hub_repo"
    if _HUB_FILE.match(value):
        return "hub_file"
    raise ValueError(
        f"checkpoint {checkpoint!r} is neither a Hugging Face repo id ('owner/name'), a file in "
        "one ('owner/name/file.safetensors'), nor a local path (start it with '/' or './')"
    )


class CheckpointConfig(BaseModel):
    """Everything needed to load and drive one model name. Immutable once resolved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    #: see the module docstring for the four accepted forms
    checkpoint: str
    architecture: ImageArchitecture
    #: a Hub revision (branch, tag or commit) for the hub forms
    revision: str | None = None
    #: diffusers weight variant, e.g. "fp16" for ``*.fp16.safetensors`` files
    variant: str | None = None
    #: a VAE (repo id or local diffusers folder) used in place of the checkpoint's own, always
    vae: str | None = None
    #: a VAE used in place of the checkpoint's own only in half precision (CUDA). Unset, the SDXL
    #: pipeline decodes in fp32 instead (its VAE config says ``force_upcast``): correct, slower.
    fp16_vae: str | None = None
    #: component configs + tokenizers for a single-file checkpoint (repo id or local folder)
    config_repo: str | None = None
    #: spacing for the non-Karras samplers; "trailing" for Lightning checkpoints
    timestep_spacing: TimestepSpacing = "linspace"
    #: prepended to every prompt (e.g. Pony's score tags)
    prompt_prefix: str = ""
    enabled: bool = True
    #: a default that only stands in for the name: point it at the real weights
    stand_in: bool = False
    licence: str = ""

    @field_validator("checkpoint")
    @classmethod
    def _known_form(cls, value: str) -> str:
        source_kind(value)
        return value.strip()

    @property
    def source_kind(self) -> SourceKind:
        return source_kind(self.checkpoint)

    @property
    def single_file(self) -> bool:
        return self.source_kind in ("hub_file", "local_file")

    @property
    def base_config(self) -> str:
        """Where a single file's component configs come from."""
        return self.config_repo or BASE_CONFIG_REPOS[self.architecture]

    def vae_for(self, *, half_precision: bool) -> str | None:
        """The VAE override that applies at this precision, if any."""
        if self.vae:
            return self.vae
        return self.fp16_vae if half_precision else None


def _lightning_xl(name: str, checkpoint: str, **fields: object) -> CheckpointConfig:
    """A Lightning-distilled SDXL merge (made for few steps and low CFG, like the seed's
    defaults): trailing spacing, fp16-fix VAE."""
    base: dict[str, object] = {
        "name": name,
        "checkpoint": checkpoint,
        "architecture": "sdxl",
        "fp16_vae": SDXL_FP16_VAE,
        "timestep_spacing": "trailing",
        "licence": "openrail++",
    }
    base.update(fields)
    return CheckpointConfig.model_validate(base)


def _sd15(name: str, checkpoint: str, **fields: object) -> CheckpointConfig:
    """A classic SD 1.5 fine-tune. Not distilled: it does best at the API's 8-step cap with a
    2nd-order SDE sampler ("DPM++ SDE Karras") and CFG about 5, which a client may ask for."""
    base: dict[str, object] = {
        "name": name,
        "checkpoint": checkpoint,
        "architecture": "sd15",
        "timestep_spacing": "linspace",
        "licence": "creativeml-openrail-m",
    }
    base.update(fields)
    return CheckpointConfig.model_validate(base)


# Stand-ins for names that match no public checkpoint: photographic names -> RealVisXL V4.0
# Lightning, the others -> DreamShaper XL Lightning; both openrail++, both diffusers-format.
_STAND_IN_PHOTO: Final = "SG161222/RealVisXL_V4.0_Lightning"
_STAND_IN_GENERAL: Final = "Lykon/dreamshaper-xl-lightning"

#: The shipped defaults, one per API name. Sources: model cards quoted in image-models.md.
DEFAULT_CHECKPOINTS: Final[Mapping[str, CheckpointConfig]] = {
    c.name: c
    for c in (
        # RealVisXL V5.0 Lightning: "DPM++ SDE Karras, 4-6 steps, CFG 1-2" (model card).
        _lightning_xl("realvision", "SG161222/RealVisXL_V5.0_Lightning"),
        # Juggernaut XL Lightning: "DPM++ SDE (Karras), 5-7 steps, CFG 1.5-2". Its licence forbids
        # serving it behind an API without RunDiffusion's permission.
        _lightning_xl(
            "juggernaut",
            "RunDiffusion/Juggernaut-XL-Lightning",
            licence="RunDiffusion licence: no API serving without permission",
        ),
        # AutismMix SDXL (Pony) Lightning, from an unofficial diffusers mirror (exact file
        # unconfirmed). Pony models expect score tags; set prompt_prefix to add them.
        _lightning_xl(
            "autismmix",
            "Niggendar/AustismMixLightining",
            licence="faipl-1.0-sd (Pony derivative)",
        ),
        # DreamShaper XL Lightning: "CFG 2, 3-6 steps, DPM++ SDE Karras" (model card).
        _lightning_xl("dreamshaper", "Lykon/dreamshaper-xl-lightning"),
        # Realism by Stable Yogi, v5 XL Lightning single file (low confidence). Fast variants:
        # "Euler a, 4-8 steps, CFG 1-2".
        _lightning_xl(
            "realism",
            "Stableyogi/Realism-SDXL-Checkpoints/realismByStableYogi_v5XLLightning.safetensors",
            licence="stable-yogi-community",
        ),
        # majicMIX realistic v6 (SD 1.5, diffusers mirror; low confidence for "mixrealistic").
        _sd15("mixrealistic", "emilianJR/majicMIX_realistic_v6"),
        # Beautiful Realistic Asians v5 (SD 1.5), a mirror repo holding one .safetensors file.
        _sd15("beautifulrealistic", "coffee0412/BeautifulRealisticAsiansV5"),
        # Stand-ins: these names matched no public checkpoint.
        _lightning_xl("reality", _STAND_IN_PHOTO, stand_in=True),
        _lightning_xl("extrarealistic", _STAND_IN_PHOTO, stand_in=True),
        _lightning_xl("realgirls", _STAND_IN_PHOTO, stand_in=True),
        _lightning_xl("realityreborn", _STAND_IN_PHOTO, stand_in=True),
        _lightning_xl("valhalla", _STAND_IN_GENERAL, stand_in=True),
        _lightning_xl("campursari", _STAND_IN_GENERAL, stand_in=True),
        _lightning_xl("amigo", _STAND_IN_GENERAL, stand_in=True),
        _lightning_xl("simplemix", _STAND_IN_GENERAL, stand_in=True),
    )
}

# Fields that describe *where the files are*: when the operator replaces ``checkpoint`` these
# defaults belong to the old source and are dropped unless given again.
_SOURCE_FIELDS: Final = ("revision", "variant", "config_repo")


def resolve_checkpoints(
    overrides: Mapping[str, ImageModelConfig] | None = None,
) -> dict[str, CheckpointConfig]:
    """The defaults merged with the operator's ``[image_models.<name>]`` tables, validated.

    The settings already refused unknown names and keys; this checks the merged whole (e.g. the
    ``checkpoint`` form) and raises ``CheckpointConfigError`` naming the offending table, so a
    bad value stops the server at start-up instead of surfacing as a failed job later.
    """
    overrides = overrides or {}
    resolved: dict[str, CheckpointConfig] = {}
    for name in IMAGE_MODELS:
        default = DEFAULT_CHECKPOINTS[name]
        override = overrides.get(name)
        change = (
            {}
            if override is None
            else override.model_dump(exclude_unset=True, exclude=set(UNAPPLIED_IMAGE_KEYS))
        )
        merged = default.model_dump()
        if "checkpoint" in change:
            for key in _SOURCE_FIELDS:
                merged[key] = None
            merged["stand_in"] = False
        merged.update(change)
        try:
            resolved[name] = CheckpointConfig.model_validate(merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}"
                for err in exc.errors()
            )
            raise CheckpointConfigError(f"[image_models.{name}]: {problems}") from exc
    return resolved
