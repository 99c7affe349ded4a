"""Finding weights offline, failing clearly without them, and what a pull would fetch."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from minitoolai.engines.diffusion import (
    DiffusionEngine,
    WeightsUnavailable,
    locate,
    pull,
    resolve_checkpoints,
    weights_present,
)
from minitoolai.engines.diffusion.checkpoints import SDXL_FP16_VAE
from minitoolai.engines.diffusion.loading import load_pipeline, module_bytes
from minitoolai.engines.diffusion.weights import _diffusers_files, estimate_bytes

from .diffusion_tiny import (
    SD15_MODEL,
    SDXL_MODEL,
    fake_hub_cache,
    resolve,
    spec,
    tiny_checkpoints,
)

SPEC = spec("realvision", steps=1)


@pytest.fixture
def empty_cache(tmp_path: Path) -> Path:
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    return cache


def test_missing_local_path_says_what_to_put_where(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "realvis"
    eng = DiffusionEngine(resolve({"realvision": {"checkpoint": str(missing)}}), device="cpu")
    with pytest.raises(WeightsUnavailable) as err:
        eng.generate(SPEC)
    message = str(err.value)
    assert str(missing) in message and "nothing is there" in message
    assert "[image_models.realvision]" in message and "model_index.json" in message
    assert err.value.fetch == str(missing) and err.value.model == "realvision"
    assert err.value.retryable  # another worker may hold the weights


def test_a_folder_that_is_not_a_pipeline_is_named_as_such(tmp_path: Path) -> None:
    cfg = resolve({"realvision": {"checkpoint": str(tmp_path)}})["realvision"]
    with pytest.raises(WeightsUnavailable, match="it is not a diffusers folder"):
        locate(cfg, half_precision=False)


def test_uncached_hub_repo_fails_fast_naming_the_download(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*_args: object) -> None:
        raise AssertionError("a job tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    eng = DiffusionEngine(resolve_checkpoints(), device="cpu", cache_dir=empty_cache)
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        eng.generate(SPEC)
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert "SG161222/RealVisXL_V5.0_Lightning" in message
    assert "`hf download SG161222/RealVisXL_V5.0_Lightning`" in message
    assert str(empty_cache) in message and "[image_models.realvision]" in message
    assert err.value.fetch == "SG161222/RealVisXL_V5.0_Lightning"
    assert not weights_present(eng.checkpoints["realvision"], cache_dir=empty_cache)
    assert eng.available_models() == []


def test_allow_download_in_offline_mode_refuses_at_once(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    eng = DiffusionEngine(
        resolve_checkpoints(), device="cpu", cache_dir=empty_cache, allow_download=True
    )
    with pytest.raises(WeightsUnavailable, match="HF_HUB_OFFLINE"):
        eng.generate(SPEC)


def test_pull_without_a_network_fails_within_seconds(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs offline; try anyway
    with socket.socket() as sock:  # a loopback port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = resolve_checkpoints()["dreamshaper"]
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        pull(cfg, progress=False, cache_dir=empty_cache, endpoint=f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5  # one unretried metadata request, not a backoff loop
    assert "Lykon/dreamshaper-xl-lightning" in str(err.value)


def test_uncached_hub_file_names_the_file(empty_cache: Path) -> None:
    cfg = resolve_checkpoints()["realism"]
    with pytest.raises(WeightsUnavailable) as err:
        locate(cfg, half_precision=False, cache_dir=empty_cache)
    assert "realismByStableYogi_v5XLLightning.safetensors" in str(err.value)
    assert "hf download Stableyogi/Realism-SDXL-Checkpoints " in str(err.value)


def test_single_file_needs_its_config_repo(tmp_path: Path, empty_cache: Path) -> None:
    checkpoint = tmp_path / "merge.safetensors"
    checkpoint.write_bytes(b"")
    cfg = resolve({"amigo": {"checkpoint": str(checkpoint)}})["amigo"]
    with pytest.raises(WeightsUnavailable) as err:
        locate(cfg, half_precision=False, cache_dir=empty_cache)
    assert "hf download stabilityai/stable-diffusion-xl-base-1.0" in str(err.value)
    assert '--include "*.json" "*.txt"' in str(err.value)  # configs only, not 7 GB of weights
    fake_hub_cache(empty_cache, "stabilityai/stable-diffusion-xl-base-1.0")
    located = locate(cfg, half_precision=False, cache_dir=empty_cache)
    assert located.kind == "file" and located.path == checkpoint
    assert located.config_dir is not None and located.config_dir.is_dir()


def test_fp16_vae_is_needed_only_in_half_precision(tiny_sdxl: Path, empty_cache: Path) -> None:
    cfg = resolve({"amigo": {"checkpoint": str(tiny_sdxl)}})["amigo"]
    assert locate(cfg, half_precision=False, cache_dir=empty_cache).vae_dir is None
    with pytest.raises(WeightsUnavailable) as err:
        locate(cfg, half_precision=True, cache_dir=empty_cache)
    assert SDXL_FP16_VAE in str(err.value)
    assert weights_present(cfg, cache_dir=empty_cache)
    assert not weights_present(cfg, half_precision=True, cache_dir=empty_cache)


def test_a_cached_hub_repo_loads_and_generates_offline(
    tiny_sd15: Path, tiny_sdxl: Path, empty_cache: Path
) -> None:
    fake_hub_cache(empty_cache, "tiny-org/tiny-sd15", files_from=tiny_sd15)
    hub: dict[str, object] = {"checkpoint": "tiny-org/tiny-sd15", "architecture": "sdxl"}
    hub["timestep_spacing"] = "linspace"  # mixrealistic's; realvision's default is "trailing"
    checkpoints = tiny_checkpoints(tiny_sd15, tiny_sdxl, realvision=hub)
    assert weights_present(checkpoints["realvision"], cache_dir=empty_cache)
    eng = DiffusionEngine(checkpoints, device="cpu", cache_dir=empty_cache)
    assert sorted(eng.available_models()) == sorted(["realvision", SD15_MODEL, SDXL_MODEL])
    # the folder says it is SD 1.5, and wins over the configured architecture; same weights,
    # same settings as mixrealistic's local folder, so the same pixels
    from_hub = eng.generate(spec("realvision", seed=4))
    from_dir = eng.generate(spec(SD15_MODEL, seed=4))
    assert np.array_equal(np.asarray(from_hub.image), np.asarray(from_dir.image))


def test_an_interrupted_cache_copy_is_reported(tiny_sd15: Path, empty_cache: Path) -> None:
    snapshot = fake_hub_cache(empty_cache, "tiny-org/partial", files_from=tiny_sd15)
    shutil.rmtree(snapshot / "unet")
    cfg = resolve({"amigo": {"checkpoint": "tiny-org/partial"}})["amigo"]
    with pytest.raises(WeightsUnavailable, match="lacks weights for unet"):
        locate(cfg, half_precision=False, cache_dir=empty_cache)


def test_a_single_file_repo_is_recognised(empty_cache: Path) -> None:
    snapshot = fake_hub_cache(empty_cache, "coffee0412/BeautifulRealisticAsiansV5")
    (snapshot / "BRAV5.safetensors").write_bytes(b"")
    (snapshot / "README.md").write_text("card")
    fake_hub_cache(empty_cache, "stable-diffusion-v1-5/stable-diffusion-v1-5")
    cfg = resolve_checkpoints()["beautifulrealistic"]
    located = locate(cfg, half_precision=False, cache_dir=empty_cache)
    assert located.kind == "file" and located.path.name == "BRAV5.safetensors"
    (snapshot / "BRAV4.safetensors").write_bytes(b"")
    with pytest.raises(WeightsUnavailable, match="name the one to use"):
        locate(cfg, half_precision=False, cache_dir=empty_cache)


def test_size_estimate_matches_the_loaded_pipeline(
    tiny_engine: DiffusionEngine, tiny_sd15: Path, tiny_sdxl: Path
) -> None:
    for model in (SD15_MODEL, "dreamshaper"):
        located = locate(tiny_engine.checkpoints[model], half_precision=False)
        estimate = estimate_bytes(located, 4)
        actual = module_bytes(tiny_engine.pipeline(model))
        assert abs(estimate - actual) / actual < 0.01, model


def test_pull_fetches_one_weight_set_and_skips_the_all_in_one_file() -> None:
    """A RealVisXL-like repo: an all-in-one file at the top, fp32 + fp16 + .bin per component."""
    listing = [
        "README.md",
        "RealVisXL_V5.0_Lightning.safetensors",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder/model.fp16.safetensors",
        "text_encoder/pytorch_model.bin",
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    plain = _diffusers_files(listing, None, "repo")
    assert "RealVisXL_V5.0_Lightning.safetensors" not in plain
    assert not any(f.endswith(".bin") or ".fp16." in f for f in plain)
    assert "unet/diffusion_pytorch_model-00002-of-00002.safetensors" in plain
    assert "tokenizer/merges.txt" in plain and "model_index.json" in plain
    fp16 = _diffusers_files(listing, "fp16", "repo")
    weights = sorted(f for f in fp16 if f.endswith(".safetensors"))
    assert weights == [
        "text_encoder/model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",
    ]
    with pytest.raises(ValueError, match="bf16"):
        _diffusers_files(listing, "bf16", "repo")


# --------------------------------------------------------------------------- loading paths


def test_the_fp16_vae_replaces_the_checkpoints_own(
    tiny_sd15: Path, tiny_sdxl: Path, empty_cache: Path
) -> None:
    """The half-precision VAE path, run on the CPU: a cached stand-in for the fp16-fix repo."""
    import torch

    vae_snapshot = fake_hub_cache(empty_cache, SDXL_FP16_VAE, files_from=tiny_sd15 / "vae")
    cfg = resolve({"amigo": {"checkpoint": str(tiny_sdxl)}})["amigo"]
    located = locate(cfg, half_precision=True, cache_dir=empty_cache)
    assert located.vae_dir == vae_snapshot
    pipe = load_pipeline(cfg, located, device="cpu", dtype=torch.float32)
    replacement = load_file(vae_snapshot / "diffusion_pytorch_model.safetensors")
    own = load_file(tiny_sdxl / "vae" / "diffusion_pytorch_model.safetensors")
    key = "decoder.conv_out.weight"
    assert torch.equal(pipe.vae.state_dict()[key], replacement[key])
    assert not torch.equal(replacement[key], own[key])


def test_a_single_file_goes_through_from_single_file_offline(
    tmp_path: Path, tiny_sd15: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our glue only: the call diffusers gets for an A1111-style file. (Converting a real
    original-layout checkpoint is diffusers' own code; no tiny one exists to run it on.)"""
    import torch
    from diffusers import StableDiffusionPipeline

    checkpoint = tmp_path / "merge.safetensors"
    checkpoint.write_bytes(b"")
    calls: list[tuple[str, dict[str, object]]] = []

    def record(path: str, **kwargs: object) -> object:
        calls.append((path, kwargs))
        return StableDiffusionPipeline.from_pretrained(  # type: ignore[no-untyped-call]
            tiny_sd15, safety_checker=None, requires_safety_checker=False
        )

    monkeypatch.setattr(StableDiffusionPipeline, "from_single_file", record)
    cfg = resolve({"mixrealistic": {"checkpoint": str(checkpoint), "config_repo": str(tiny_sd15)}})[
        "mixrealistic"
    ]
    located = locate(cfg, half_precision=False)
    load_pipeline(cfg, located, device="cpu", dtype=torch.float32)
    assert calls == [
        (
            str(checkpoint),
            {
                "config": str(tiny_sd15),
                "dtype": torch.float32,
                "local_files_only": True,
                "safety_checker": None,
                "requires_safety_checker": False,
            },
        )
    ]
