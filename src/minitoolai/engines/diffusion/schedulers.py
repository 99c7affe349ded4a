"""AUTOMATIC1111 sampler names -> diffusers schedulers.

Clients name samplers the way A1111 does; diffusers spells them as a scheduler class plus options.
The table below is the translation, checked against A1111's ``modules/sd_samplers_kdiffusion.py``
(k-diffusion function per name) and diffusers' "A1111/k-diffusion" scheduler table.

=====================  ================================================  ============  =========
A1111 name             diffusers class + options                          fidelity      UNet/step
=====================  ================================================  ============  =========
Euler a                EulerAncestralDiscreteScheduler                    exact         1
Euler                  EulerDiscreteScheduler                             exact         1
LMS                    LMSDiscreteScheduler                               exact         1
Heun                   HeunDiscreteScheduler                              exact         2
DPM2                   KDPM2DiscreteScheduler                             close [1]     2
DPM2 a                 KDPM2AncestralDiscreteScheduler                    close [1]     2
DPM++ 2S a             DPMSolverSinglestepScheduler(order 2, SDE++)       approx [2]    1
DPM++ 2M               DPMSolverMultistepScheduler(dpmsolver++, order 2)  exact         1
DPM++ SDE              DPMSolverSDEScheduler (torchsde Brownian tree)     exact [3]     2
DPM++ 2M SDE           DPMSolverMultistepScheduler(sde-dpmsolver++)       close [4]     1
DPM fast               DPMSolverSinglestepScheduler(order 3)              approx [5]    1
<name> Karras          the same + ``use_karras_sigmas=True``              as above
=====================  ================================================  ============  =========

[1] A1111 asks for one sigma more and drops the next-to-last one for DPM2
    (``discard_next_to_last_sigma``); diffusers' KDPM2 runs the plain schedule. Same method and
    midpoints, slightly different step placement.
[2] No twin exists. k-diffusion's ``sample_dpmpp_2s_ancestral`` is a second-order *singlestep*
    DPM-Solver++ step followed by ancestral noise. The nearest diffusers offers is the singlestep
    solver at order 2 in its stochastic ``sde-dpmsolver++`` form: same order and step structure,
    fresh noise every step, but SDE noise rather than an ancestral split. Singlestep spends its
    order over consecutive steps, so at the same step count it makes half the UNet calls per step
    that k-diffusion's 2S a makes.
[3] Same algorithm as k-diffusion's ``sample_dpmpp_sde`` (midpoint r=1/2, Brownian-tree noise).
    The tree draws from its own ``noise_sampler_seed``, *not* the pipeline's generator, so
    ``build_scheduler`` seeds it from the request seed (as A1111 seeds its tree from the image
    seed). Without that the same seed gives a different image every time.
[4] Same update rule; A1111 draws the noise from a Brownian tree, diffusers from the generator.
    Images differ in detail from A1111's for a given seed, not in character.
[5] No twin exists. k-diffusion's ``sample_dpm_fast`` is DPM-Solver with a mixed order plan
    (3,3,...,2/1) over uniform log-SNR steps. diffusers' singlestep solver at ``solver_order=3``
    follows the same order plan; we use its ``dpmsolver++`` form (the original ``dpmsolver`` form
    is deprecated in diffusers and worse under classifier-free guidance).

Both singlestep recipes set ``lower_order_final``: diffusers forces it anyway at the API's step
counts (final sigma zero, steps not a multiple of the order), and warns each time it does.

Timestep spacing: A1111's default ("Automatic") spreads steps like diffusers' ``linspace``, and
its Karras schedules span the model's whole sigma range. So Karras names always use ``linspace``
(which gives exactly that range), and the other names take the checkpoint's own spacing:
``linspace`` normally, ``trailing`` (A1111's "SGM Uniform") for Lightning-distilled checkpoints.
Only the model-describing part of a pipeline's scheduler config (betas, prediction type, ...) is
kept: algorithm options left in a checkpoint's config (an SDE type, Karras sigmas) would otherwise
leak into a request that asked for another sampler.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from minitoolai.catalog import IMAGE_SCHEDULERS, TimestepSpacing

Fidelity = Literal["exact", "close", "approximate"]

#: Scheduler config keys that describe the *model* (its training noise schedule), kept from the
#: checkpoint's own scheduler config; everything else is the sampler's business.
MODEL_SCHEDULE_KEYS: Final = frozenset(
    {
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "trained_betas",
        "prediction_type",
        "rescale_betas_zero_snr",
        "timestep_spacing",
        "steps_offset",
    }
)


@dataclass(frozen=True, slots=True)
class SamplerRecipe:
    """How one A1111 sampler name is built in diffusers."""

    name: str
    class_name: str
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    fidelity: Fidelity = "exact"
    #: UNet evaluations per requested step (diffusers' second-order schedulers run 2N-1 for N).
    unet_calls_per_step: int = 1
    #: draws Brownian-tree noise from torchsde, seeded apart from the torch generator
    brownian: bool = False

    @property
    def karras(self) -> bool:
        return bool(self.options.get("use_karras_sigmas", False))


def _recipe(
    name: str,
    class_name: str,
    fidelity: Fidelity = "exact",
    *,
    calls: int = 1,
    brownian: bool = False,
    **options: object,
) -> SamplerRecipe:
    return SamplerRecipe(name, class_name, MappingProxyType(options), fidelity, calls, brownian)


_BASE: Final[tuple[SamplerRecipe, ...]] = (
    _recipe("Euler a", "EulerAncestralDiscreteScheduler"),
    _recipe("Euler", "EulerDiscreteScheduler"),
    _recipe("LMS", "LMSDiscreteScheduler"),
    _recipe("Heun", "HeunDiscreteScheduler", calls=2),
    _recipe("DPM2", "KDPM2DiscreteScheduler", "close", calls=2),
    _recipe("DPM2 a", "KDPM2AncestralDiscreteScheduler", "close", calls=2),
    _recipe(
        "DPM++ 2S a",
        "DPMSolverSinglestepScheduler",
        "approximate",
        solver_order=2,
        algorithm_type="sde-dpmsolver++",
        lower_order_final=True,
    ),
    _recipe(
        "DPM++ 2M",
        "DPMSolverMultistepScheduler",
        solver_order=2,
        algorithm_type="dpmsolver++",
    ),
    _recipe("DPM++ SDE", "DPMSolverSDEScheduler", calls=2, brownian=True),
    _recipe(
        "DPM++ 2M SDE",
        "DPMSolverMultistepScheduler",
        "close",
        solver_order=2,
        algorithm_type="sde-dpmsolver++",
    ),
    _recipe(
        "DPM fast",
        "DPMSolverSinglestepScheduler",
        "approximate",
        solver_order=3,
        algorithm_type="dpmsolver++",
        lower_order_final=True,
    ),
)


def _with_karras(recipe: SamplerRecipe) -> SamplerRecipe:
    return SamplerRecipe(
        f"{recipe.name} Karras",
        recipe.class_name,
        MappingProxyType({**recipe.options, "use_karras_sigmas": True}),
        recipe.fidelity,
        recipe.unet_calls_per_step,
        recipe.brownian,
    )


def _build_table() -> dict[str, SamplerRecipe]:
    table = {r.name: r for r in _BASE}
    for base in ("LMS", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE"):
        karras = _with_karras(table[base])
        table[karras.name] = karras
    # keep the API's order, and fail at import if the two tables ever drift apart
    return {name: table[name] for name in IMAGE_SCHEDULERS}


#: Every API sampler name -> its recipe, in the API's order.
SCHEDULERS: Final[Mapping[str, SamplerRecipe]] = MappingProxyType(_build_table())


def scheduler_options(
    name: str,
    accepted: frozenset[str] | set[str],
    *,
    timestep_spacing: TimestepSpacing = "linspace",
    seed: int | None = None,
) -> dict[str, object]:
    """The constructor options for ``name``, limited to those its class ``accepted``.

    Pure (no diffusers import), so the mapping is testable on its own. Options a class does not
    take are dropped rather than passed: diffusers would only warn and ignore them.
    """
    recipe = SCHEDULERS[name]
    options: dict[str, object] = dict(recipe.options)
    # Explicitly off unless the recipe turns them on: a checkpoint config may carry them.
    for flag in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"):
        options.setdefault(flag, False)
    options["timestep_spacing"] = "linspace" if recipe.karras else timestep_spacing
    if recipe.brownian and seed is not None:
        options["noise_sampler_seed"] = seed
    return {key: value for key, value in options.items() if key in accepted}


def build_scheduler(
    name: str,
    base_config: Mapping[str, Any],
    *,
    timestep_spacing: TimestepSpacing = "linspace",
    seed: int | None = None,
) -> Any:
    """A fresh scheduler for sampler ``name`` on a model whose scheduler config is ``base_config``.

    ``base_config`` is normally ``pipe.scheduler.config``: its model-describing keys (beta
    schedule, prediction type) are kept so each checkpoint's training schedule is honoured.
    ``seed`` seeds the Brownian noise of the SDE samplers; a new scheduler per request means no
    noise state is carried from one image to the next. Typed ``Any``: diffusers' scheduler
    classes get their attributes (``config``, ``timesteps``) dynamically.
    """
    import diffusers

    recipe = SCHEDULERS[name]
    cls = getattr(diffusers, recipe.class_name)
    accepted = frozenset(inspect.signature(cls.__init__).parameters) - {"self"}
    model_schedule = {k: v for k, v in base_config.items() if k in MODEL_SCHEDULE_KEYS}
    options = scheduler_options(name, accepted, timestep_spacing=timestep_spacing, seed=seed)
    return cls.from_config(model_schedule, **options)
