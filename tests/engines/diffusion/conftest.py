"""Tiny random-weight SD 1.5 and SDXL pipelines, built in code and saved as diffusers folders.

No test downloads anything: the tokenizer comes from a generated 54-token vocabulary, the nets
are a few hundred kB each, and each pipeline is built once per session and saved with
``save_pretrained``. Tests then load them through the same path an operator's local folder takes
(``checkpoint = "/path/to/folder"``). The architectures are real (same classes, same wiring,
8x VAE downscale, SDXL's text_time conditioning and second text encoder), only narrower.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minitoolai.engines.diffusion import DiffusionEngine

from .diffusion_tiny import build_tiny_sd15, build_tiny_sdxl, tiny_checkpoints

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence known third-party noise: numpy 2 deprecations inside diffusers' schedulers
    (thousands a run) and torchsde's float-rounding warning, which the engine filters itself
    but pytest resets filters around every test."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:__array:DeprecationWarning"))
            item.add_marker(pytest.mark.filterwarnings("ignore:Should have t:UserWarning"))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Nets this small gain nothing from threads, and on a shared 2-core machine torch's
    spinning worker threads made the suite 3x slower (58 s vs 19 s measured under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd15(tmp_path_factory.mktemp("sd15"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sdxl(tmp_path_factory.mktemp("sdxl"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_sd15: Path, tiny_sdxl: Path) -> Iterator[DiffusionEngine]:
    """One CPU engine for the whole session, so each tiny pipeline is loaded once."""
    eng = DiffusionEngine(tiny_checkpoints(tiny_sd15, tiny_sdxl), device="cpu")
    yield eng
    eng.unload()
