"""Band names, shared type aliases and the checks every module runs on its xarray input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import xarray as xr

from floodxr.errors import MissingBandError, MissingDimensionError

XarrayObj: TypeAlias = xr.DataArray | xr.Dataset
Polarisation: TypeAlias = Literal["vv", "vh"]

#: Value of nodata pixels in floodxr water masks (uint8: 0 not water, 1 water).
NODATA = 255

S1_BANDS: tuple[str, ...] = ("vv", "vh")
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: The Sentinel-2 bands the paper's teacher reads, in order.
S2_PAPER_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")


def as_band_array(obj: XarrayObj) -> xr.DataArray:
    """Return ``obj`` as a DataArray with a ``band`` dimension.

    A Dataset with one variable per band becomes a DataArray stacked along ``band`` (lazily).
    """
    if isinstance(obj, xr.Dataset):
        return obj.to_dataarray(dim="band")
    if "band" not in obj.dims:
        raise MissingDimensionError(
            f"expected a 'band' dimension, got dims {tuple(obj.dims)}; add one with "
            "da.expand_dims(band=['vh']) or pass a Dataset with one variable per band"
        )
    return obj


def require_spatial(da: xr.DataArray) -> None:
    """Raise unless ``da`` has ``y`` and ``x`` as its last two dimensions."""
    if tuple(da.dims[-2:]) != ("y", "x"):
        raise MissingDimensionError(
            f"expected the last two dimensions to be ('y', 'x'), got {tuple(da.dims)}; "
            "rename them with da.rename(lat='y', lon='x') and order them with "
            "da.transpose(..., 'y', 'x')"
        )


def select_bands(obj: XarrayObj, bands: Sequence[str]) -> xr.DataArray:
    """Select ``bands`` (in that order) from ``obj`` along ``band``, with a fixing message."""
    da = as_band_array(obj)
    found = tuple(str(b) for b in da["band"].values)
    repeated = sorted({b for b in found if found.count(b) > 1})
    if repeated:
        raise MissingBandError(
            f"bands {repeated} appear more than once on dim 'band' ({found}); keep one of each, "
            "e.g. da.drop_duplicates('band')"
        )
    missing = [b for b in bands if b not in found]
    if missing:
        hint = ""
        lowered = {b.lower(): b for b in found}
        renames = {lowered[b.lower()]: b for b in missing if b.lower() in lowered}
        if renames:
            hint = f"; rename them with da.assign_coords(band=...) mapping {renames}"
        raise MissingBandError(
            f"expected bands {tuple(bands)} on dim 'band', got {found}; missing {tuple(missing)}"
            + (hint or "; select or load the missing bands first")
        )
    return da.sel(band=list(bands))


def select_band(obj: XarrayObj, band: str) -> xr.DataArray:
    """One band of ``obj`` as a DataArray without the ``band`` dimension."""
    return select_bands(obj, [band]).squeeze("band", drop=True)
