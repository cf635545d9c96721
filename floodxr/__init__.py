"""floodxr: flood extent from Sentinel-1 radar on xarray and Dask.

Importing floodxr registers the ``.flood`` accessor on ``xarray.DataArray`` and
``xarray.Dataset`` (and rioxarray's ``.rio``).
"""

from importlib.metadata import PackageNotFoundError, version

import rioxarray  # noqa: F401  registers .rio, which every floodxr result carries

from floodxr import accessor, data, metrics, models, preprocess, segment, testing, threshold
from floodxr.accessor import FloodAccessor
from floodxr.errors import FloodxrError, FloodxrWarning
from floodxr.options import get_options, set_options

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
]
