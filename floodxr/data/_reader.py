"""stackstac's reader, with read failures as floodxr errors that name the asset and the fix.

Its own module so that stac.py can import stackstac lazily while the class stays importable by
name on dask workers (a reader type travels in the graph by reference).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stackstac.rio_reader import AutoParallelRioReader

from floodxr.errors import AssetReadError

__all__ = ["NamedErrorReader"]


class NamedErrorReader(AutoParallelRioReader):
    """Reads like stackstac's default reader; a failed open or read raises AssetReadError."""

    def read(self, window: Any, **kwargs: Any) -> np.ndarray:
        try:
            return super().read(window, **kwargs)
        except Exception as err:
            raise AssetReadError(
                f"reading pixels of {self.url!r} failed ({str(err)[:400]}); check that the asset "
                "exists and is readable from here (a signed URL may have expired: search again), "
                "or drop its item from the items"
            ) from err
