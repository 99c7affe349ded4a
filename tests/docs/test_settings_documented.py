"""Every setting an operator can set is in docs/configuration.md, under the name they type."""

from __future__ import annotations

from pathlib import Path

from minitoolai.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = []
    for name, field in Settings.model_fields.items():
        variable = str(field.validation_alias or f"MINITOOLAI_{name.upper()}")
        if f"`{variable}`" not in text:
            missing.append(variable)
    assert not missing, f"undocumented settings: {missing}"


def test_every_image_model_key_is_documented() -> None:
    from minitoolai.settings import ImageModelConfig

    text = (DOC.parent / "images.md").read_text(encoding="utf-8")
    missing = [key for key in ImageModelConfig.model_fields if f"`{key}`" not in text]
    assert not missing, f"undocumented [image_models.*] keys: {missing}"
