"""The checks every entry point runs on its input: which pixels are valid, what is dB
backscatter, which bands and dimensions an array has.

A pixel is invalid when it is NaN, +-inf (``to_db`` of zero power gives -inf) or equal to the
nodata value its array declares: rioxarray's ``rio.nodata``, which reads ``_FillValue``,
``missing_value``, ``fill_value`` and ``nodata`` from the attributes (data opened with
``masked=True`` / ``mask_and_scale`` are NaN already). :func:`masked` turns every invalid pixel into
NaN, so that downstream code has one test, ``np.isfinite``.

Sentinel-1 must be in dB. :func:`require_db` checks the ``units`` attribute first (at call time)
and the values second (for numpy input at call time, for dask input inside each block when it
is computed): after nodata is masked, a block of at least :data:`MIN_EVIDENCE` finite pixels none
of which is negative is linear power or amplitude, never dB; values below :data:`DB_FLOOR` or above
:data:`DB_CEILING` are not backscatter at all (an undeclared nodata value such as -9999, say).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr.bands import S1_BANDS, XarrayObj
from floodxr.errors import (
    InvalidLayerError,
    InvalidOptionError,
    MissingBandError,
    MissingDimensionError,
    NotANumberError,
    UnitsError,
    WrongTypeError,
)

__all__ = [
    "Rule",
    "boolean",
    "choice",
    "integer",
    "multiple",
    "real",
    "unknown_keys",
    "violations",
    "as_band_array",
    "require_spatial",
    "select_band",
    "select_bands",
    "DB_UNITS",
    "LINEAR_UNITS",
    "declared_nodata",
    "masked",
    "layer",
    "require_db",
    "check_db_values",
    "check_db_summary",
    "check_not_linear_attrs",
    "number",
]

DB_UNITS = frozenset({"db", "decibel", "decibels"})
LINEAR_UNITS = frozenset(
    {
        "linear",
        "power",
        "1",
        "intensity",
        "amplitude^2",
        "amplitude",
        "natural",
        "linear power",
        "dn",
    }
)
#: Finite pixels a block needs before its values say anything about units.
MIN_EVIDENCE = 256
#: Physically possible Sentinel-1 backscatter in dB (the noise floor is near -30 dB, the
#: brightest corner reflectors reach about +40 dB); anything beyond is not backscatter.
DB_FLOOR, DB_CEILING = -100.0, 60.0
_NODATA_ATTRS = ("_FillValue", "missing_value", "fill_value", "nodata")


def declared_nodata(da: xr.DataArray) -> float | None:
    """The nodata value ``da`` declares that is still in its values (None for none or NaN).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr._valid import declared_nodata
    >>> declared_nodata(xr.DataArray(np.zeros(2), dims="x", attrs={"_FillValue": -9999}))
    -9999.0
    >>> declared_nodata(xr.DataArray(np.zeros(2), dims="x")) is None
    True
    """
    try:
        value = da.rio.nodata
    except (ValueError, TypeError):
        value = next((da.attrs[k] for k in _NODATA_ATTRS if k in da.attrs), None)
    if value is None:
        return None
    try:
        number_value = float(np.asarray(value).item())
    except (TypeError, ValueError) as err:
        raise InvalidOptionError(
            f"the declared nodata value {value!r} is not a number; fix it with "
            "da.rio.write_nodata(<number>)"
        ) from err
    return None if np.isnan(number_value) else number_value


def masked(da: xr.DataArray, *, nonfinite: bool = True) -> xr.DataArray:
    """``da`` as floats with every invalid pixel (declared nodata, NaN, +-inf) set to NaN; lazy.

    ``nonfinite=False`` leaves +-inf alone, for kernels that treat non-finite values as invalid
    themselves: float data without a declared nodata value is then returned without a pass
    over its pixels.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr._valid import masked
    >>> da = xr.DataArray(np.array([-9999.0, -12.0, -np.inf]), dims="x", attrs={"nodata": -9999})
    >>> masked(da).values
    array([ nan, -12.,  nan])
    """
    nodata = declared_nodata(da)
    values = da if da.dtype.kind == "f" and da.dtype.itemsize >= 4 else da.astype("float32")
    if nonfinite:
        keep = np.isfinite(values)
        if nodata is not None:
            keep = keep & (values != nodata)
        out = values.where(keep)
    else:
        out = values.where(values != nodata) if nodata is not None else values.copy(deep=False)
    out.attrs = {k: v for k, v in da.attrs.items() if k not in _NODATA_ATTRS}
    out.encoding = {k: v for k, v in da.encoding.items() if k not in _NODATA_ATTRS}
    return out


def _check_layer(
    block: np.ndarray, what: str, low: float, high: float, integral: bool, fix: str
) -> np.ndarray:
    valid = block[np.isfinite(block)]
    if valid.size == 0:
        return block
    outside = valid[(valid < low) | (valid > high)]
    if outside.size:
        values, counts = np.unique(outside, return_counts=True)
        common = float(values[np.argmax(counts)])
        raise InvalidLayerError(
            f"{what} has values from {float(valid.min()):g} to {float(valid.max()):g}, outside "
            f"{low:g}..{high:g} ({outside.size} pixels, most often {common:g}); if {common:g} "
            f"marks missing pixels, declare it: layer.rio.write_nodata({common:g}); {fix}"
        )
    if integral and np.any(valid != np.round(valid)):
        raise InvalidLayerError(
            f"{what} has fractional values (e.g. {float(valid[valid != np.round(valid)][0]):g}) "
            f"where whole classes belong; {fix}"
        )
    return block


def layer(
    da: Any, what: str, *, low: float, high: float, fix: str, integral: bool = False
) -> xr.DataArray:
    """An ancillary layer (DEM, surface-water occurrence, reference water mask, land cover) held
    to the rules radar is held to: float32 with every invalid pixel NaN (the nodata value it
    declares, NaN, +-inf), and its valid values within ``low..high`` (and whole numbers with
    ``integral``), checked now for numpy and in each block for dask. A value outside is
    refused with :class:`~floodxr.errors.InvalidLayerError` naming it (most often an undeclared
    nodata value such as -32768 or 255) and ``fix``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr._valid import layer
    >>> dem = xr.DataArray(np.array([12.0, -32768.0]), dims="x", attrs={"_FillValue": -32768})
    >>> layer(dem, "the DEM", low=-500, high=9000, fix="give elevations in metres").values
    array([12., nan], dtype=float32)
    >>> layer(dem.drop_attrs(), "the DEM", low=-500, high=9000, fix="...")
    Traceback (most recent call last):
    ...
    floodxr.errors.InvalidLayerError: the DEM has values from -32768 to 12, outside -500..9000 (1 \
pixels, most often -32768); if -32768 marks missing pixels, declare it: ...
    """
    if not isinstance(da, xr.DataArray):
        raise WrongTypeError(f"{what} must be an xarray DataArray, got {type(da).__name__}")
    if da.dtype.kind not in "biuf":
        raise WrongTypeError(
            f"{what} has dtype {da.dtype}; give numbers (e.g. layer.astype('float32'))"
        )
    values = masked(da if da.dtype.kind != "b" else da.astype("uint8"))
    values = values.astype("float32") if values.dtype != np.float32 else values
    check = functools.partial(
        _check_layer, what=what, low=low, high=high, integral=integral, fix=fix
    )
    if isinstance(values.data, dsa.Array):
        data = dsa.map_blocks(check, values.data, dtype="float32", meta=np.array((), "float32"))
        return values.copy(data=data)
    check(np.asarray(values.data))
    return values


def check_not_linear_attrs(obj: Any, who: str) -> None:
    """Refuse Sentinel-1 data whose ``units`` attribute says linear power or amplitude, and a
    boolean array (a mask, not backscatter)."""
    dtypes = (
        [v.dtype for v in obj.data_vars.values()]
        if isinstance(obj, xr.Dataset)
        else [getattr(obj, "dtype", None)]
    )
    if any(d is not None and np.dtype(d) == bool for d in dtypes):
        raise WrongTypeError(
            f"{who} expects Sentinel-1 backscatter in dB, got a boolean array (a water mask?); "
            "give the backscatter (e.g. scene.s1), not a mask made from it"
        )
    units = str(getattr(obj, "attrs", {}).get("units", "")).strip().lower()
    if units in LINEAR_UNITS:
        raise UnitsError(
            f"{who} expects Sentinel-1 backscatter in dB, got attrs['units'] = "
            f"{obj.attrs['units']!r}; convert with floodxr.preprocess.to_db (da.flood.to_db())"
        )


def check_db_values(values: np.ndarray, who: str) -> None:
    """Refuse an array of (nodata-masked) Sentinel-1 values that cannot be dB backscatter."""
    if values.size:  # the common case in two passes without a copy: NaN skipped, all in range
        low, high = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
        if DB_FLOOR <= low < 0 and high <= DB_CEILING:  # False for NaN and inf too
            return
    finite = values[np.isfinite(values)]
    if finite.size:
        check_db_summary(float(finite.min()), float(finite.max()), finite.size, who)


def check_db_summary(low: float, high: float, count: int, who: str) -> None:
    """:func:`check_db_values` from the minimum, maximum and count of the valid values."""
    if not count:
        return
    if count >= MIN_EVIDENCE and low >= 0:
        raise UnitsError(
            f"{who} expects Sentinel-1 backscatter in dB, but {count} valid values are all "
            f">= 0 (min {low:.3g}, max {high:.3g}): this is linear power or amplitude; convert "
            "it with floodxr.preprocess.to_db (da.flood.to_db()), after declaring its nodata "
            "value if it has one (da.rio.write_nodata(value))"
        )
    if low < DB_FLOOR or high > DB_CEILING:
        raise UnitsError(
            f"{who} got values from {low:.6g} to {high:.6g}, outside any Sentinel-1 backscatter "
            f"in dB ({DB_FLOOR:g} to {DB_CEILING:g}); if {low if low < DB_FLOOR else high:.6g} "
            "marks missing pixels, declare it: da.rio.write_nodata(value)"
        )


def _check_block(
    block: np.ndarray,
    who: str,
    band_axis: int | None,
    s1: np.ndarray | None,
    block_info: Any = None,
) -> np.ndarray:
    values = block
    if band_axis is not None and s1 is not None:
        start, stop = (
            block_info[0]["array-location"][band_axis]
            if block_info
            else (0, block.shape[band_axis])
        )
        keep = np.flatnonzero(s1[start:stop])
        values = np.take(block, keep, axis=band_axis)
    check_db_values(values, who)
    return block


def require_db(da: xr.DataArray, who: str, *, bands: Sequence[str] | None = None) -> xr.DataArray:
    """``da`` unchanged, with the dB checks attached: attrs now, values now (numpy) or per block.

    With a ``band`` dimension only the Sentinel-1 bands (``vv``, ``vh``) are checked (``bands``
    overrides which), and nothing when there is none. Give it data passed through :func:`masked`.
    """
    band_axis, s1 = None, None
    if "band" in da.dims:
        names = [str(b) for b in da["band"].values] if "band" in da.coords else []
        chosen = S1_BANDS if bands is None else tuple(bands)
        s1 = np.array([n in chosen for n in names], dtype=bool)
        if not s1.any():
            return da
        band_axis = da.dims.index("band")
    check_not_linear_attrs(da, who)
    if isinstance(da.data, dsa.Array):
        data = dsa.map_blocks(
            _check_block,
            da.data,
            who=who,
            band_axis=band_axis,
            s1=s1,
            dtype=da.dtype,
            meta=np.array((), da.dtype),
        )
        return da.copy(data=data)
    _check_block(np.asarray(da.data), who, band_axis, s1)
    return da


def number(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    above: float | None = None,
    integer: bool = False,
) -> Any:
    """``value`` if it is a real number (not a bool or a string) within the bounds, else raise.

    Examples
    --------
    >>> from floodxr._valid import number
    >>> number(10, "resolution", above=0)
    10
    >>> number("10", "resolution", above=0)
    Traceback (most recent call last):
    ...
    floodxr.errors.NotANumberError: resolution must be a number, got '10' (str); ...
    """
    kind = numbers.Integral if integer else numbers.Real
    what = "an integer" if integer else "a number"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, kind):
        raise NotANumberError(
            f"{name} must be {what}, got {value!r} ({type(value).__name__}); pass e.g. "
            f"{name}={int(above + 1) if above is not None else (minimum or 1)}"
        )
    if not np.isfinite(float(value)):
        raise InvalidOptionError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and float(value) < minimum:
        raise InvalidOptionError(f"{name} must be {what} >= {minimum}, got {value!r}")
    if above is not None and not float(value) > above:
        raise InvalidOptionError(f"{name} must be {what} > {above}, got {value!r}")
    return value


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


# --------------------------------------------------------------------------------------------
# rules: the one way options, configurations and checkpoints check their fields
#
# A rule returns None for a good value and a phrase ("must be ..., got ...") for a bad one;
# :func:`violations` applies a table of rules and names each field in its phrase, so every
# message reads "<field> must be <what>, got <value>".

Rule = Callable[[Any], "str | None"]


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(float(value))
    )


def integer(minimum: int = 1, *, optional: bool = False) -> Rule:
    """An integer >= ``minimum`` ("a positive integer" for 1); ``optional``: or None."""
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    what += " or None" if optional else ""

    def rule(value: Any) -> str | None:
        if value is None and optional:
            return None
        return None if _is_int(value) and value >= minimum else f"must be {what}, got {value!r}"

    return rule


def real(*, above: float | None = None, below: float | None = None) -> Rule:
    """A finite real number (not a bool), optionally strictly between ``above`` and ``below``."""
    what = "a number"
    if above is not None and below is not None:
        what = f"a number strictly between {above:g} and {below:g}"
    elif above is not None:
        what = f"a number > {above:g}"

    def rule(value: Any) -> str | None:
        good = _is_real(value)
        good = good and (above is None or value > above) and (below is None or value < below)
        return None if good else f"must be {what}, got {value!r}"

    return rule


def boolean() -> Rule:
    """True or False."""
    return lambda value: (
        None if isinstance(value, bool) else f"must be True or False, got {value!r}"
    )


def choice(options: Sequence[Any]) -> Rule:
    """One of ``options``."""
    shown = tuple(options)
    return lambda value: None if value in shown else f"must be one of {shown}, got {value!r}"


def multiple(of: int, minimum: int, why: str, *, optional: bool = False) -> Rule:
    """An integer >= ``minimum`` that is a multiple of ``of`` (``why``: the reason, e.g. "the
    encoder's stride"); the phrase suggests the nearest good value."""
    base = integer(minimum, optional=optional)

    def rule(value: Any) -> str | None:
        if value is None and optional:
            return None
        problem = base(value)
        if problem is None and value % of:
            problem = (
                f"must be a multiple of {of} ({why}), got {value!r}; "
                f"use {max(minimum, value - value % of)}"
            )
        return problem

    return rule


def violations(
    values: Mapping[str, Any], rules: Mapping[str, Rule], label: str = "{name}"
) -> list[str]:
    """``"<label> <phrase>"`` for every field whose value breaks its rule; ``label`` formats the
    field's name (``"option {name!r}"``, ``"{name}"``)."""
    problems = []
    for name, rule in rules.items():
        if name in values:
            problem = rule(values[name])
            if problem is not None:
                problems.append(f"{label.format(name=name)} {problem}")
    return problems


def unknown_keys(given: Iterable[str], known: Iterable[str]) -> list[str]:
    """The keys of ``given`` that are not in ``known``, sorted."""
    return sorted(set(given) - set(known))
