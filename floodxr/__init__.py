"""floodxr: flood extent from Sentinel-1 radar on xarray and Dask.

Importing floodxr registers the ``.flood`` accessor on ``xarray.DataArray`` and
``xarray.Dataset`` (and rioxarray's ``.rio``).
"""

import rioxarray  # noqa: F401  registers .rio, which every floodxr result carries

from floodxr import (
    accessor,
    bands,
    data,
    grid,
    metrics,
    preprocess,
    segment,
    threshold,
    writers,
)
from floodxr.accessor import FloodAccessor
from floodxr.bands import VERSION
from floodxr.errors import FloodxrError, FloodxrWarning
from floodxr.options import get_options, set_options


def __getattr__(name: str) -> object:
    # loaded on first use: floodxr.models pulls in torch (~0.5 GiB, seconds), which thresholding
    # users never pay for; floodxr.testing holds test helpers that no floodxr module imports
    if name in ("models", "testing"):
        import importlib

        return importlib.import_module(f"floodxr.{name}")
    raise AttributeError(f"module 'floodxr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"models", "testing"})


__version__ = VERSION

__all__ = [
    "FloodAccessor",
    "FloodxrError",
    "FloodxrWarning",
    "__version__",
    "accessor",
    "bands",
    "data",
    "get_options",
    "grid",
    "metrics",
    "models",
    "preprocess",
    "segment",
    "set_options",
    "testing",
    "threshold",
    "writers",
]
