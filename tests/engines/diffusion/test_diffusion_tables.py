"""The name tables, sampler recipes, checkpoint defaults and operator overrides (no model runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from minitoolai.catalog import IMAGE_MODELS, IMAGE_SCHEDULERS
from minitoolai.engines.diffusion import (
    DEFAULT_CHECKPOINTS,
    SCHEDULERS,
    CheckpointConfig,
    build_scheduler,
    resolve_checkpoints,
)
from minitoolai.engines.diffusion.checkpoints import SDXL_FP16_VAE, source_kind
from minitoolai.engines.diffusion.schedulers import scheduler_options
from minitoolai.engines.diffusion.sizing import crop_to, generation_size
from minitoolai.settings import UNAPPLIED_IMAGE_KEYS

from .diffusion_tiny import resolve

# SD's training schedule as SD/SDXL checkpoints ship it in scheduler_config.json
SD_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 1,
}


def test_importing_the_package_loads_no_torch() -> None:
    code = (
        "import sys, minitoolai.engines.diffusion as d; "
        "assert len(d.DEFAULT_CHECKPOINTS) == 15 and len(d.SCHEDULERS) == 18; "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_tables_cover_the_api_names() -> None:
    assert len(IMAGE_MODELS) == 15 and len(set(IMAGE_MODELS)) == 15
    assert list(SCHEDULERS) == list(IMAGE_SCHEDULERS) and len(IMAGE_SCHEDULERS) == 18
    assert set(DEFAULT_CHECKPOINTS) == set(IMAGE_MODELS)


@pytest.mark.parametrize(
    ("name", "cls", "expect"),
    [
        ("Euler a", "EulerAncestralDiscreteScheduler", {}),
        ("DPM2 a", "KDPM2AncestralDiscreteScheduler", {}),
        ("DPM++ SDE", "DPMSolverSDEScheduler", {"use_karras_sigmas": False}),
        ("DPM++ SDE Karras", "DPMSolverSDEScheduler", {"use_karras_sigmas": True}),
        ("DPM++ 2M", "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
        (
            "DPM++ 2M SDE Karras",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
        ),
        (
            "DPM++ 2S a",
            "DPMSolverSinglestepScheduler",
            {"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
        ),
        ("DPM fast", "DPMSolverSinglestepScheduler", {"solver_order": 3}),
        ("LMS Karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}),
    ],
)
def test_each_name_builds_its_scheduler(name: str, cls: str, expect: dict[str, object]) -> None:
    scheduler = build_scheduler(name, SD_SCHEDULE)
    assert type(scheduler).__name__ == cls
    for key, value in expect.items():
        assert scheduler.config[key] == value, key
    # the model's own training schedule survives the swap
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_end == 0.012


def test_every_name_builds_and_only_approximations_are_marked() -> None:
    for name, recipe in SCHEDULERS.items():
        assert type(build_scheduler(name, SD_SCHEDULE)).__name__ == recipe.class_name
    approximate = {n for n, r in SCHEDULERS.items() if r.fidelity == "approximate"}
    assert approximate == {"DPM++ 2S a", "DPM++ 2S a Karras", "DPM fast"}
    assert {n for n, r in SCHEDULERS.items() if r.brownian} == {"DPM++ SDE", "DPM++ SDE Karras"}


def test_algorithm_options_in_a_checkpoint_config_do_not_leak() -> None:
    """A checkpoint that ships an SDE/Karras scheduler config still gets plain DPM++ 2M."""
    shipped = {**SD_SCHEDULE, "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True}
    scheduler = build_scheduler("DPM++ 2M", shipped)
    assert scheduler.config.algorithm_type == "dpmsolver++"
    assert scheduler.config.use_karras_sigmas is False


def test_spacing_follows_the_checkpoint_except_for_karras() -> None:
    euler = build_scheduler("Euler", SD_SCHEDULE, timestep_spacing="trailing")
    assert euler.config.timestep_spacing == "trailing"
    euler.set_timesteps(4)
    assert euler.timesteps.tolist() == [999, 749, 499, 249]  # Lightning's 4-step schedule
    karras = build_scheduler("DPM++ 2M Karras", SD_SCHEDULE, timestep_spacing="trailing")
    assert karras.config.timestep_spacing == "linspace"  # A1111: Karras spans the full range


def test_sde_scheduler_is_seeded_from_the_request_seed() -> None:
    assert build_scheduler("DPM++ SDE", SD_SCHEDULE, seed=42).config.noise_sampler_seed == 42
    # options a class does not take are dropped, not passed
    assert "noise_sampler_seed" not in scheduler_options("Euler a", {"timestep_spacing"}, seed=4)


# --------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_every_default_mapping_is_complete(name: str) -> None:
    cfg = resolve_checkpoints()[name]
    assert cfg.name == name and cfg.enabled
    assert cfg.source_kind in ("hub_repo", "hub_file")  # public weights, nothing local assumed
    assert cfg.architecture in ("sdxl", "sd15")
    assert cfg.licence
    if cfg.architecture == "sdxl":
        assert cfg.fp16_vae == SDXL_FP16_VAE
        assert cfg.vae_for(half_precision=True) == SDXL_FP16_VAE
        assert cfg.vae_for(half_precision=False) is None
        assert cfg.timestep_spacing == "trailing"  # every SDXL default is a Lightning merge
    if cfg.single_file:
        assert cfg.base_config


def test_stand_ins_are_marked() -> None:
    stand_ins = {n for n, c in DEFAULT_CHECKPOINTS.items() if c.stand_in}
    assert stand_ins == {
        "reality",
        "extrarealistic",
        "realgirls",
        "realityreborn",
        "valhalla",
        "campursari",
        "amigo",
        "simplemix",
    }


def test_override_merges_over_the_default() -> None:
    resolved = resolve(
        {
            "realvision": {"checkpoint": "/models/realvis", "prompt_prefix": "photo, "},
            "amigo": {"enabled": False},
        }
    )
    cfg = resolved["realvision"]
    assert cfg.checkpoint == "/models/realvis" and cfg.source_kind == "local_dir"
    assert cfg.prompt_prefix == "photo, "
    assert cfg.architecture == "sdxl" and cfg.timestep_spacing == "trailing"  # kept
    assert resolved["amigo"].enabled is False
    assert resolved["juggernaut"] == DEFAULT_CHECKPOINTS["juggernaut"]  # untouched


def test_replacing_the_checkpoint_drops_the_old_source_details() -> None:
    cfg = resolve(
        {"reality": {"checkpoint": "/models/reality.safetensors", "architecture": "sd15"}}
    )["reality"]
    assert cfg.single_file and cfg.architecture == "sd15"
    assert cfg.revision is None and cfg.variant is None
    assert cfg.stand_in is False  # the operator chose these weights
    assert cfg.base_config == "stable-diffusion-v1-5/stable-diffusion-v1-5"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"realvison": {"checkpoint": "/x"}}, "realvison"),
        ({"realvision": {"checkpoin": "/x"}}, "checkpoin"),
        ({"realvision": {"scheduler": "DPM++ 3M"}}, "unknown scheduler"),
        ({"realvision": {"steps": 20}}, "steps"),
        ({"realvision": {"architecture": "sd3"}}, "architecture"),
        ({"realvision": {"checkpoint": "/models/x.ckpt"}}, "pickle"),
        ({"realvision": {"checkpoint": "not a repo"}}, "neither"),
        ({"realvision": {"name": "other"}}, "cannot be changed"),
    ],
)
def test_bad_overrides_fail_naming_the_table(
    overrides: dict[str, dict[str, object]], needle: str
) -> None:
    """Refused at start: by the file's schema (names, keys, types) or when merged (the forms)."""
    with pytest.raises(ValueError) as err:
        resolve(overrides)
    assert needle in str(err.value)
    assert "image_models" in str(err.value)


def test_per_model_sampler_settings_load_but_are_not_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Older files set scheduler/steps/cfg_scale per model: they still load, with a warning,
    and a request without those fields gets the seed's defaults whatever the model."""
    tables: dict[str, dict[str, object]] = {
        "juggernaut": {"scheduler": "Euler a", "steps": 6, "cfg_scale": 1.5}
    }
    with caplog.at_level("WARNING", logger="minitoolai.settings"):
        resolved = resolve(tables)
    assert resolved["juggernaut"] == DEFAULT_CHECKPOINTS["juggernaut"]
    assert "[image_models.juggernaut] scheduler, steps, cfg_scale: not applied" in caplog.text
    assert not set(UNAPPLIED_IMAGE_KEYS) & set(CheckpointConfig.model_fields)


def test_source_kinds(tmp_path: Path) -> None:
    assert source_kind("Lykon/dreamshaper-xl-lightning") == "hub_repo"
    assert source_kind("Stableyogi/Realism-SDXL-Checkpoints/v5/x.safetensors") == "hub_file"
    assert source_kind("/models/folder") == "local_dir"
    assert source_kind("./model.safetensors") == "local_file"
    assert source_kind(str(tmp_path)) == "local_dir"


# --------------------------------------------------------------------------- sizing


@pytest.mark.parametrize(
    ("asked", "generated"),
    [((1024, 1024), (1024, 1024)), ((1001, 257), (1008, 264)), ((256, 1344), (256, 1344))],
)
def test_generation_size_rounds_up_to_multiples_of_8(
    asked: tuple[int, int], generated: tuple[int, int]
) -> None:
    assert generation_size(*asked) == generated


def test_crop_is_centred_and_exact() -> None:
    from PIL import Image

    image = Image.new("RGB", (72, 64))
    image.putpixel((3, 1), (255, 0, 0))  # inside the crop window, which starts at (1, 1)
    cropped = crop_to(image, 70, 61)
    assert cropped.size == (70, 61)
    assert cropped.getpixel((2, 0)) == (255, 0, 0)
