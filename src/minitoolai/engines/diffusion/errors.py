"""Failures of the image engine, placed under the engine error tree the router already maps.

    EngineError (minitoolai.engines.errors)
    ├── EngineUnavailable
    │   └── WeightsUnavailable      the checkpoint's files are not on this machine (nor fetchable)
    └── EngineRejected
        └── UnknownImageModel       a name with no checkpoint, or one the operator disabled
    ValueError
    └── CheckpointConfigError       the operator's ``[image_models.*]`` config is wrong

``WeightsUnavailable`` is an ``EngineUnavailable`` because another worker may hold the weights: the
queue can hand the job to it. Its message is written for the operator: it names exactly what to
download and where to put it, since that is the only way to fix it.
"""

from __future__ import annotations

from minitoolai.engines.errors import EngineRejected, EngineUnavailable


class WeightsUnavailable(EngineUnavailable):
    """No usable weights for ``model``; ``fetch`` says what to download, ``message`` how."""

    def __init__(self, model: str, message: str, *, fetch: str) -> None:
        super().__init__(message)
        self.model = model
        self.fetch = fetch


class UnknownImageModel(EngineRejected):
    """The request names a model this gateway does not serve (unknown or disabled)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400)


class CheckpointConfigError(ValueError):
    """The ``[image_models]`` part of the config file is invalid; raised at start-up."""
