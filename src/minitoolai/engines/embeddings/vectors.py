"""Vector arithmetic every embedding engine shares: unit length and shortening.

Plain numpy on float32 rows. Shortening is OpenAI's ``dimensions``: keep the first ``n``
components, then scale the row back to unit length (text-embedding-3 vectors are trained so
that a prefix is still a good embedding; MiniLM's are not, but the rule is the same).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


def normalised(vectors: Vectors) -> Vectors:
    """Each row scaled to unit L2 length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.zeros_like(vectors)
    np.divide(vectors, norms, out=out, where=norms > 0)
    return out


def shortened(vectors: Vectors, dimensions: int | None) -> Vectors:
    """The first ``dimensions`` components of each row, re-normalised; as is for None."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    return normalised(np.ascontiguousarray(vectors[:, :dimensions]))
