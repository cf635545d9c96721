"""The shared vocabulary: band names, units, the paper's ranges, the nodata value, the version.

The bottom layer of floodxr: it imports nothing from the package, and every module that names a
band, a unit or a range takes it from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, TypeAlias

import xarray as xr

__all__ = [
    "DB",
    "NODATA",
    "PAPER_RANGES",
    "Polarisation",
    "S1_BANDS",
    "S2_BANDS",
    "S2_PAPER_BANDS",
    "S2_SCALE",
    "TEACHER_BANDS",
    "VERSION",
    "XarrayObj",
]

XarrayObj: TypeAlias = xr.DataArray | xr.Dataset
Polarisation: TypeAlias = Literal["vv", "vh"]

#: Value of nodata pixels in floodxr water masks (uint8: 0 not water, 1 water).
NODATA = 255
#: The ``units`` attribute of Sentinel-1 backscatter in floodxr (decibels).
DB = "dB"
#: Sentinel-2 reflectance is stored as reflectance x ``S2_SCALE`` (the L1C/L2A digital numbers).
S2_SCALE = 10_000

#: Sentinel-1 polarisations, in the order floodxr's models read them.
S1_BANDS: tuple[Polarisation, ...] = ("vv", "vh")
#: Sentinel-2 MSI bands, in the order of the Sen1Floods11 chips.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: The Sentinel-2 bands the paper's teacher reads, in order.
S2_PAPER_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
#: What the paper's teacher reads: Sentinel-1 then Sentinel-2.
TEACHER_BANDS: tuple[str, ...] = S1_BANDS + S2_PAPER_BANDS

#: Clip ranges of the paper (appendix A): S1 in dB, S2 in reflectance x 10000, scaled to [0, 1].
PAPER_RANGES: Mapping[str, tuple[float, float]] = {
    "vv": (-20.0, 0.0),
    "vh": (-30.0, 0.0),
    **{b: (0.0, 3000.0) for b in S2_BANDS},
}

try:
    #: The installed floodxr's version (recorded in every checkpoint's provenance).
    VERSION = version("floodxr")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0+unknown"
