"""Radiometric preprocessing: dB conversion, the paper's normalisation, S2 indices, weak labels.

Every function takes and returns xarray objects, keeps coordinates, attrs and the CRS, and stays
lazy on dask-backed input: checks that need pixel values run inside the blocks, at compute time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import xarray as xr

from floodxr._valid import (
    DB_UNITS,
    LINEAR_UNITS,
    as_band_array,
    check_not_linear_attrs,
    masked,
    number,
    require_db,
    select_band,
)
from floodxr.bands import PAPER_RANGES, S1_BANDS, XarrayObj
from floodxr.errors import InvalidOptionError, MissingBandError, UnitsError

__all__ = [
    "PAPER_RANGES",
    "clip_scale",
    "to_db",
    "from_db",
    "normalize",
    "ndwi",
    "mndwi",
    "ndvi",
    "weak_labels",
]


def _units(obj: XarrayObj) -> str | None:
    units = obj.attrs.get("units")
    return None if units is None else str(units).strip().lower()


def _with_units(result: XarrayObj, source: XarrayObj, units: str) -> XarrayObj:
    result.attrs = {**source.attrs, "units": units}
    return result


def _linear_to_db_block(x: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    if finite.size and finite.min() < 0:
        raise UnitsError(
            f"to_db got negative values (min {finite.min():.3g}): linear power is never "
            "negative, so these data are probably in dB already; use them as they are, "
            "or set attrs['units'] = 'dB'"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return (10.0 * np.log10(x)).astype(x.dtype, copy=False)


def _db_to_linear_block(x: np.ndarray) -> np.ndarray:
    return np.power(x.dtype.type(10.0), x / x.dtype.type(10.0))


def _masked(obj: XarrayObj) -> XarrayObj:
    return masked(obj) if isinstance(obj, xr.DataArray) else obj.map(masked)


def _require_db(obj: XarrayObj, who: str) -> XarrayObj:
    if isinstance(obj, xr.DataArray):
        return require_db(obj, who)
    return obj.map(lambda variable: require_db(variable, who))


def to_db(obj: XarrayObj) -> XarrayObj:
    """Convert linear backscatter power to decibels, ``10 log10(x)``.

    Refuses data whose ``attrs['units']`` says dB, and (checked per block, at compute time for
    dask input) data with negative values, which linear power cannot have. Declared nodata and
    non-finite values become NaN; zero power becomes ``-inf``, which every floodxr method treats
    as invalid. The result has ``units='dB'``.

    Parameters
    ----------
    obj : DataArray or Dataset
        Linear power (sigma0 / gamma0), any dims, numpy- or dask-backed.

    Returns
    -------
    Same type as ``obj``, float, in dB; lazy if ``obj`` is.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> power = xr.DataArray(np.array([1.0, 10.0, 100.0]), dims="x")
    >>> floodxr.preprocess.to_db(power).values
    array([ 0., 10., 20.])
    """
    if _units(obj) in DB_UNITS:
        raise UnitsError(
            f"to_db got data with attrs['units'] = {obj.attrs['units']!r}: already in dB; "
            "use them as they are (floodxr methods expect dB)"
        )
    out = xr.apply_ufunc(_linear_to_db_block, _masked(obj), dask="parallelized", keep_attrs=True)
    return _with_units(out, obj, "dB")


def from_db(obj: XarrayObj) -> XarrayObj:
    """Convert decibels back to linear power, ``10 ** (x / 10)``.

    Refuses data that are not dB: ``attrs['units']`` saying linear power first, then values
    (checked like every Sentinel-1 input, see :func:`floodxr.threshold.otsu`): all non-negative,
    or beyond any backscatter. Invalid pixels (declared nodata, NaN, +-inf) become NaN. The
    result has ``units='linear'``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> db = xr.DataArray(np.array([0.0, -10.0], "float32"), dims="x", attrs={"units": "dB"})
    >>> floodxr.preprocess.from_db(db).values
    array([1. , 0.1], dtype=float32)
    """
    if _units(obj) in LINEAR_UNITS:
        raise UnitsError(
            f"from_db got data with attrs['units'] = {obj.attrs['units']!r}: already linear "
            "power; use them as they are, or convert with floodxr.preprocess.to_db"
        )
    if isinstance(obj, xr.Dataset):
        for variable in obj.data_vars.values():
            check_not_linear_attrs(variable, "from_db")
    values = _require_db(_masked(obj), "from_db")
    out = xr.apply_ufunc(_db_to_linear_block, values, dask="parallelized", keep_attrs=True)
    return _with_units(out, obj, "linear")


def normalize(
    obj: XarrayObj, *, ranges: Mapping[str, tuple[float, float]] | None = None
) -> xr.DataArray:
    """Clip each band to its range and scale it linearly to [0, 1] (the paper's appendix A).

    Defaults are :data:`PAPER_RANGES`: VV [-20, 0] dB, VH [-30, 0] dB, Sentinel-2 [0, 3000].
    NaN stays NaN. Sentinel-1 bands must be in dB.

    Parameters
    ----------
    obj : DataArray with a ``band`` dim, or Dataset with one variable per band
    ranges : mapping of band name to (low, high), optional
        Overrides or extends :data:`PAPER_RANGES`.

    Returns
    -------
    DataArray
        float32 in [0, 1] with the same dims, coordinates and CRS; lazy if ``obj`` is.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> s1 = xr.DataArray(np.array([[-25.0, -10.0, 3.0], [-30.0, -15.0, np.nan]], "float32"),
    ...                   dims=("band", "x"), coords={"band": ["vv", "vh"]}, attrs={"units": "dB"})
    >>> floodxr.preprocess.normalize(s1).values
    array([[0. , 0.5, 1. ],
           [0. , 0.5, nan]], dtype=float32)
    """
    da = as_band_array(obj)
    table = {**PAPER_RANGES, **(ranges or {})}
    for band, bounds in (ranges or {}).items():
        try:
            low, high = (float(number(v, f"ranges[{band!r}]")) for v in bounds)
        except (TypeError, ValueError) as err:
            raise InvalidOptionError(
                f"ranges[{band!r}] must be (low, high), got {bounds!r}"
            ) from err
        if not low < high:
            raise InvalidOptionError(f"ranges[{band!r}] must have low < high, got {bounds!r}")
    bands = [str(b) for b in da["band"].values]
    unknown = [b for b in bands if b not in table]
    if unknown:
        raise MissingBandError(
            f"normalize has no range for bands {tuple(unknown)}; pass "
            f"ranges={{{unknown[0]!r}: (low, high), ...}} or select known bands "
            f"{tuple(table)}"
        )
    if isinstance(obj, xr.Dataset):
        for name in (b for b in bands if b in S1_BANDS):
            check_not_linear_attrs(obj[name], "normalize")
        da = as_band_array(obj.map(masked))
    else:
        check_not_linear_attrs(da, "normalize")
        da = masked(da)
    da = require_db(da, "normalize")  # the Sentinel-1 bands only
    lows = xr.DataArray([table[b][0] for b in bands], dims="band", coords={"band": da["band"]})
    highs = xr.DataArray([table[b][1] for b in bands], dims="band", coords={"band": da["band"]})
    scaled = xr.apply_ufunc(
        clip_scale, da, lows, highs, dask="parallelized", output_dtypes=[np.float32]
    )
    scaled.attrs = {**da.attrs, "units": "1", "normalization": "floodxr.preprocess.normalize"}
    return scaled


def clip_scale(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Numpy kernel of :func:`normalize`: clip to [low, high], scale to [0, 1], NaN kept.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.preprocess import clip_scale
    >>> clip_scale(np.array([-40.0, -15.0, 5.0, np.nan]), np.array(-30.0), np.array(0.0))
    array([0. , 0.5, 1. , nan], dtype=float32)
    """
    low, high = np.asarray(low, "float32"), np.asarray(high, "float32")
    return np.clip((values.astype("float32") - low) / (high - low), 0.0, 1.0)


def _one_band(obj: XarrayObj, band: str) -> xr.DataArray:
    # a Dataset's variable keeps its own declared nodata; stacking would drop it
    if isinstance(obj, xr.Dataset) and band in obj.data_vars:
        return obj[band]
    return select_band(obj, band)


def _normalized_difference(obj: XarrayObj, a: str, b: str, name: str) -> xr.DataArray:
    first = masked(_one_band(obj, a))
    second = masked(_one_band(obj, b))
    total = first + second
    index = ((first - second) / total.where(total != 0)).astype("float32")
    index.attrs = {"long_name": f"{name.upper()} = ({a} - {b}) / ({a} + {b})", "units": "1"}
    return index.rename(name)


def ndwi(s2: XarrayObj) -> xr.DataArray:
    """McFeeters' NDWI, ``(B03 - B08) / (B03 + B08)``; NaN where the sum is 0 or data are NaN.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> s2 = xr.DataArray(np.array([[600.0], [200.0]]), dims=("band", "x"),
    ...                   coords={"band": ["B03", "B08"]})
    >>> floodxr.preprocess.ndwi(s2).values
    array([0.5], dtype=float32)
    """
    return _normalized_difference(s2, "B03", "B08", "ndwi")


def mndwi(s2: XarrayObj) -> xr.DataArray:
    """Xu's modified NDWI, ``(B03 - B11) / (B03 + B11)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> s2 = xr.DataArray(np.array([[300.0], [100.0]]), dims=("band", "x"),
    ...                   coords={"band": ["B03", "B11"]})
    >>> floodxr.preprocess.mndwi(s2).values
    array([0.5], dtype=float32)
    """
    return _normalized_difference(s2, "B03", "B11", "mndwi")


def ndvi(s2: XarrayObj) -> xr.DataArray:
    """NDVI, ``(B08 - B04) / (B08 + B04)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> s2 = xr.DataArray(np.array([[100.0], [300.0]]), dims=("band", "x"),
    ...                   coords={"band": ["B04", "B08"]})
    >>> floodxr.preprocess.ndvi(s2).values
    array([0.5], dtype=float32)
    """
    return _normalized_difference(s2, "B08", "B04", "ndvi")


def weak_labels(
    s2: XarrayObj,
    *,
    method: Literal["sen1floods11", "ndwi"] = "sen1floods11",
    mndwi_min: float = 0.0,
    ndvi_max: float = 0.2,
    ndwi_min: float = 0.0,
) -> xr.DataArray:
    """Weak water labels from Sentinel-2, encoded like Sen1Floods11's labels.

    ``method="sen1floods11"`` thresholds MNDWI and NDVI, the two indices Sen1Floods11's
    ``S2IndexLabelWeak`` is made from: water where ``MNDWI > mndwi_min`` and
    ``NDVI < ndvi_max``. ``method="ndwi"`` is the paper's external-dataset rule: water where
    ``NDWI > ndwi_min``. The thresholds are keywords because neither paper prints its values;
    the defaults are the indices' conventional water/non-vegetation cut-offs.

    Returns
    -------
    DataArray
        int8 named ``weak_label``: 1 water, 0 not water, -1 where an input band is NaN (nodata).

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> s2 = xr.DataArray(np.array([[900.0, 500.0, np.nan],   # B03
    ...                             [300.0, 300.0, 300.0],    # B04
    ...                             [200.0, 2500.0, 300.0],   # B08
    ...                             [100.0, 1800.0, 300.0]]), # B11
    ...                   dims=("band", "x"), coords={"band": ["B03", "B04", "B08", "B11"]})
    >>> floodxr.preprocess.weak_labels(s2).values
    array([ 1,  0, -1], dtype=int8)
    """
    if method == "sen1floods11":
        water_index, vegetation = mndwi(s2), ndvi(s2)
        water = (water_index > mndwi_min) & (vegetation < ndvi_max)
        valid = water_index.notnull() & vegetation.notnull()
        rule = f"MNDWI > {mndwi_min} and NDVI < {ndvi_max}"
    elif method == "ndwi":
        water_index = ndwi(s2)
        water = water_index > ndwi_min
        valid = water_index.notnull()
        rule = f"NDWI > {ndwi_min}"
    else:
        raise InvalidOptionError(
            f"unknown weak-label method {method!r}; choose 'sen1floods11' or 'ndwi'"
        )
    labels = xr.where(valid, water.astype("int8"), np.int8(-1)).astype("int8")
    labels.attrs = {
        "long_name": f"weak water label ({rule})",
        "flag_values": [-1, 0, 1],
        "flag_meanings": "invalid not_water water",
    }
    return labels.rio.write_nodata(-1, encoded=False).rename("weak_label")
