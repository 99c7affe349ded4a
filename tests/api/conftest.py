from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: schemathesis over /openapi.json (a few minutes; -m 'not fuzz' skips it)"
    )
