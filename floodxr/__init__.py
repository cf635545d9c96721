"""floodxr: flood extent from Sentinel-1 radar on xarray and Dask.

Importing floodxr registers the ``.flood`` accessor on ``xarray.DataArray`` and
``xarray.Dataset`` (and rioxarray's ``.rio``).
"""

from importlib.metadata import PackageNotFoundError, version

import rioxarray  # noqa: F401  registers .rio, which every floodxr result carries

from floodxr import accessor, data, metrics, preprocess, segment, testing, threshold, writers
from floodxr.accessor import FloodAccessor
from floodxr.errors import FloodxrError, FloodxrWarning
from floodxr.options import get_options, set_options


def __getattr__(name: str) -> object:
    # floodxr.models pulls in torch (~0.5 GiB, seconds); thresholding users never pay for it
    if name == "models":
        import floodxr.models

        return floodxr.models
    raise AttributeError(f"module 'floodxr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"models"})


try:
    __version__ = version("floodxr")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "FloodAccessor",
    "FloodxrError",
    "FloodxrWarning",
    "__version__",
    "accessor",
    "data",
    "get_options",
    "metrics",
    "models",
    "preprocess",
    "segment",
    "set_options",
    "testing",
    "threshold",
    "writers",
]
