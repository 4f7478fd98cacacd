"""Types shared by the layers: the arrays that embeddings and scores travel in."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# L2-normalized float32 embeddings, one row a text.
Vectors = npt.NDArray[np.float32]
