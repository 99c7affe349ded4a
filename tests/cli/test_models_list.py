"""``minitoolai models list``: what serves each image name, and the defaults a request gets."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from rich.console import Console
from typer.testing import CliRunner

from minitoolai import cli
from minitoolai.catalog import IMAGE_MODELS

CONFIG = """
[image_models.realvision]
checkpoint = "/models/realvis"
scheduler = "Euler a"   # an older file's per-model default: loads, never applied
steps = 6

[image_models.amigo]
enabled = false
"""


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "minitoolai.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("MINITOOLAI_CONFIG", str(config))
    monkeypatch.setenv("MINITOOLAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("minitoolai.cli.output.console", Console(width=250))


def test_json_shows_what_is_really_used(configured: None) -> None:
    result = CliRunner().invoke(cli.app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["model"]: row for row in orjson.loads(result.stdout)}
    assert list(rows) == list(IMAGE_MODELS)
    for row in rows.values():  # the seed's defaults, whatever the model or the file says
        assert (row["scheduler"], row["steps"], row["cfg_scale"]) == ("DPM++ SDE", 4, 2.0)
    realvision = rows["realvision"]
    assert realvision["checkpoint"] == "/models/realvis" and realvision["stand_in"] is False
    assert realvision["architecture"] == "sdxl" and realvision["timestep_spacing"] == "trailing"
    assert rows["mixrealistic"]["timestep_spacing"] == "linspace"
    assert rows["reality"]["stand_in"] is True
    assert rows["amigo"]["enabled"] is False and rows["juggernaut"]["enabled"] is True
    assert all(isinstance(row["weights_present"], bool) for row in rows.values())


def test_table(configured: None) -> None:
    result = CliRunner().invoke(cli.app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "/models/realvis" in result.stdout and "(stand-in)" in result.stdout
    assert "disabled" in result.stdout
    assert "gets DPM++ SDE, 4 steps, cfg 2, whatever the model" in result.stdout


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('checkpont = "/models/x"', "image_models.realvision.checkpont"),  # a typo'd key
        ('checkpoint = "/models/x.ckpt"', "pickle"),  # a value only the engine can judge
    ],
)
def test_a_bad_table_is_a_clear_error(
    configured: None, tmp_path: Path, table: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[image_models.realvision]\n{table}\n")
    monkeypatch.setenv("MINITOOLAI_CONFIG", str(config))
    result = CliRunner().invoke(cli.app, ["models", "list"])
    assert result.exit_code == 2
    assert "error:" in result.stdout and needle in result.stdout
