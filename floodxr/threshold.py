"""Thresholding baselines on Sentinel-1 backscatter (dB): global Otsu, tiled (bimodal-tile) Otsu,
and fixed thresholds.

Water is dark in SAR, so a pixel is water when its backscatter is *below* the threshold.
Every method returns a water mask: uint8, 1 water, 0 not water, 255 nodata (non-finite input),
with the CRS, transform and coordinates of the input, lazy when the input is dask-backed.

When no threshold can be found for a scene (all pixels NaN / ±inf, or a constant image, so the
histogram is empty or has one value), the threshold is NaN and the mask is **all nodata (255)**:
no pixel is called water or dry without evidence. This is decided per scene inside the graph, so
it needs no compute up front.

The threshold is computed per scene: over ``y, x`` for every index of the leading dims
(``time`` of a ``(time, band, y, x)`` cube, say). On dask input the histogram is built chunk by
chunk (only per-chunk min/max and a 256-bin histogram travel), so no scene is ever held whole.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
from skimage.filters import threshold_otsu

from floodxr._valid import (
    check_db_summary,
    check_db_values,
    check_not_linear_attrs,
    masked,
    number,
    require_db,
    require_spatial,
    select_band,
)
from floodxr.bands import NODATA, S1_BANDS, Polarisation, XarrayObj
from floodxr.errors import FloodxrWarning, InvalidOptionError
from floodxr.options import OPTIONS

__all__ = [
    "otsu_threshold",
    "otsu",
    "otsu_tiled_threshold",
    "otsu_tiled",
    "fixed",
    "NODATA",
    "METHODS",
]


Range = tuple[Any, Any]


def _finite_range(block: np.ndarray) -> Range:
    finite = block[np.isfinite(block)]
    if not finite.size:
        return (None, None)
    return (finite.min(), finite.max())


def _finite_count(block: np.ndarray) -> int:
    return int(np.isfinite(block).sum())


def _merge_ranges(ranges: Sequence[Range], counts: Sequence[int] = (), who: str = "otsu") -> Range:
    lows = [lo for lo, _ in ranges if lo is not None]
    highs = [hi for _, hi in ranges if hi is not None]
    if lows:
        # the dB check over the whole scene: small chunks are no evidence one by one
        check_db_summary(float(min(lows)), float(max(highs)), sum(counts), who)
    return (min(lows), max(highs)) if lows else (None, None)


def _histogram(block: np.ndarray, value_range: Range, nbins: int) -> np.ndarray:
    lo, hi = value_range
    if lo is None or not lo < hi:
        return np.zeros(nbins, dtype=np.int64)
    # the same bins as skimage.filters.threshold_otsu on the scene's finite pixels
    counts, _ = np.histogram(block[np.isfinite(block)], bins=nbins, range=(lo, hi))
    return counts


def _otsu_from_counts(counts: np.ndarray, value_range: Range) -> float:
    lo, hi = value_range
    if lo is None or not lo < hi or counts.sum() == 0:
        return float("nan")
    edges = np.histogram_bin_edges(np.array([], dtype=np.asarray(lo).dtype), counts.size, (lo, hi))
    centers = edges[:-1] + (edges[1:] - edges[:-1]) / 2.0
    return float(threshold_otsu(hist=(counts, centers)))


def _bimodality(counts: np.ndarray, centers: np.ndarray) -> float:
    """Maximum between-class variance over total variance, in [0, 1] (Cao et al. 2019)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts / total
    mean = (p * centers).sum()
    variance = (p * (centers - mean) ** 2).sum()
    if variance <= 0:
        return 0.0
    w1 = np.cumsum(p)[:-1]
    m1 = np.cumsum(p * centers)[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean * w1 - m1) ** 2 / (w1 * (1.0 - w1))
    return float(np.nanmax(between) / variance) if np.isfinite(between).any() else 0.0


def _tile_histograms(
    block: np.ndarray, value_range: Range, nbins: int, tile: int, min_score: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Histograms summed over the bimodal tiles of a block, over all its tiles, and a count."""
    selected = np.zeros(nbins, dtype=np.int64)
    everything = np.zeros(nbins, dtype=np.int64)
    n_selected = 0
    lo, hi = value_range
    if lo is None or not lo < hi:
        return selected, everything, n_selected
    edges = np.histogram_bin_edges(np.array([], dtype=np.asarray(lo).dtype), nbins, (lo, hi))
    centers = edges[:-1] + (edges[1:] - edges[:-1]) / 2.0
    rows, cols = block.shape
    for y0, x0 in itertools.product(range(0, rows, tile), range(0, cols, tile)):
        window = block[y0 : y0 + tile, x0 : x0 + tile]
        counts = _histogram(window, value_range, nbins)
        everything += counts
        # a tile needs most of its pixels valid to say anything about bimodality
        if counts.sum() >= 0.5 * window.size and _bimodality(counts, centers) >= min_score:
            selected += counts
            n_selected += 1
    return selected, everything, n_selected


def _otsu_from_tiles(
    parts: Sequence[tuple[np.ndarray, np.ndarray, int]], value_range: Range
) -> float:
    selected = sum((p[0] for p in parts), np.zeros_like(parts[0][0]))
    if sum(p[2] for p in parts):
        return _otsu_from_counts(selected, value_range)
    everything = sum((p[1] for p in parts), np.zeros_like(parts[0][1]))
    if everything.sum():
        warnings.warn(
            "otsu_tiled found no bimodal tile; it used the whole scene's histogram (global "
            "Otsu). Lower floodxr.set_options(otsu_bimodality=...) or otsu_tile_size to "
            "find bimodal tiles",
            FloodxrWarning,
            stacklevel=2,
        )
    return _otsu_from_counts(everything, value_range)


def _global_kernel(nbins: int) -> tuple[Callable[..., Any], Callable[..., float]]:
    return (lambda block, rng: _histogram(block, rng, nbins)), (
        lambda parts, rng: _otsu_from_counts(sum(parts, np.zeros(nbins, np.int64)), rng)
    )


def _tiled_kernel(
    nbins: int, tile: int, min_score: float
) -> tuple[Callable[..., Any], Callable[..., float]]:
    return (lambda block, rng: _tile_histograms(block, rng, nbins, tile, min_score)), (
        _otsu_from_tiles
    )


def _scene_threshold(
    scene: Any, per_block: Callable[..., Any], combine: Callable[..., float], who: str
) -> Any:
    """Threshold of one 2-D scene: a float for numpy, a 0-d dask array for dask."""
    if not isinstance(scene, dsa.Array):
        rng = _finite_range(scene)
        return combine([per_block(scene, rng)], rng)
    blocks = scene.to_delayed().ravel()
    rng = dask.delayed(_merge_ranges)(
        [dask.delayed(_finite_range)(b) for b in blocks],
        [dask.delayed(_finite_count)(b) for b in blocks],
        who,
    )
    parts = [dask.delayed(per_block)(b, rng) for b in blocks]
    threshold = dask.delayed(lambda p, r: np.asarray(combine(p, r), dtype=np.float64))(parts, rng)
    return dsa.from_delayed(threshold, shape=(), dtype=np.float64)


def _scene_thresholds(
    values: xr.DataArray, per_block: Callable[..., Any], combine: Callable[..., float], who: str
) -> xr.DataArray:
    require_spatial(values)
    lead_shape = values.shape[:-2]
    data = values.data
    scenes = [
        _scene_threshold(data[index], per_block, combine, who) for index in np.ndindex(lead_shape)
    ]
    if isinstance(data, dsa.Array):
        stacked = dsa.stack(scenes).reshape(lead_shape) if scenes else dsa.zeros(lead_shape)
    else:
        stacked = np.array(scenes, dtype=np.float64).reshape(lead_shape)
    coords = values.isel(y=0, x=0, drop=True).coords
    return xr.DataArray(
        stacked,
        dims=values.dims[:-2],
        coords=coords,
        name="threshold",
        attrs={"units": values.attrs.get("units", "dB")},
    )


def _mask_block(values: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    threshold = np.asarray(threshold)
    mask = (values < threshold).astype(np.uint8)
    mask[~(np.isfinite(values) & np.isfinite(threshold))] = NODATA
    return mask


def _apply(values: xr.DataArray, threshold: xr.DataArray | float, method: str) -> xr.DataArray:
    mask = xr.apply_ufunc(
        _mask_block, values, threshold, dask="parallelized", output_dtypes=[np.uint8]
    )
    mask.attrs = {
        "long_name": "water mask",
        "flag_values": [0, 1],
        "flag_meanings": "not_water water",
        "floodxr_method": method,
    }
    return mask.rio.write_nodata(NODATA, encoded=False).rename("water")


def _band_values(obj: XarrayObj, band: str, who: str) -> xr.DataArray:
    """One polarisation in dB with its invalid pixels as NaN, the dB checks attached."""
    if band not in S1_BANDS:
        raise InvalidOptionError(f"band must be 'vv' or 'vh', got {band!r}")
    if isinstance(obj, xr.Dataset) and band in obj.data_vars:
        values = obj[band]
        check_not_linear_attrs(values, who)
    else:
        check_not_linear_attrs(obj, who)
        values = select_band(obj, band)
    require_spatial(values)
    return require_db(masked(values), who)


def otsu_threshold(
    obj: XarrayObj, *, band: Polarisation = "vh", nbins: int | None = None
) -> xr.DataArray:
    """Otsu's threshold of one polarisation, per scene (per index of the leading dims).

    Equal to ``skimage.filters.threshold_otsu`` on the scene's finite pixels; NaN for a scene
    without two distinct finite values.

    Parameters
    ----------
    obj : DataArray ``(..., band, y, x)`` in dB, or Dataset with one variable per band
    band : polarisation to threshold
    nbins : histogram bins; default ``floodxr.get_options()["otsu_bins"]`` (256)

    Returns
    -------
    DataArray
        float64 with the leading dims of ``obj`` (0-d for a single scene); lazy on dask input.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> round(float(floodxr.threshold.otsu_threshold(scene.s1, band="vh")), 1)
    -23.0
    """
    values = _band_values(obj, band, "otsu_threshold")
    return _scene_thresholds(values, *_global_kernel(_check_bins(nbins)), "otsu_threshold")


def otsu(obj: XarrayObj, *, band: Polarisation = "vh", nbins: int | None = None) -> xr.DataArray:
    """Water mask from global Otsu thresholding of one polarisation, per scene.

    Returns
    -------
    DataArray
        uint8 ``(..., y, x)``: 1 water (below the threshold), 0 not water, 255 nodata.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> mask = scene.s1.flood.otsu(band="vh")
    >>> mask.dims, str(mask.dtype), mask.rio.crs == scene.s1.rio.crs
    (('y', 'x'), 'uint8', True)
    >>> float((mask == scene.water).mean()) > 0.95
    True
    """
    values = _band_values(obj, band, "otsu")
    threshold = _scene_thresholds(values, *_global_kernel(_check_bins(nbins)), "otsu")
    return _apply(values, threshold, f"otsu(band={band!r})")


def _tiled_thresholds(
    values: xr.DataArray,
    tile_size: int | None,
    min_score: float | None,
    nbins: int | None,
    who: str,
) -> xr.DataArray:
    tile = OPTIONS["otsu_tile_size"] if tile_size is None else tile_size
    score = OPTIONS["otsu_bimodality"] if min_score is None else min_score
    number(tile, "tile_size", minimum=8, integer=True)
    number(score, "min_score")
    if not 0 < score < 1:
        raise InvalidOptionError(f"min_score must be strictly between 0 and 1, got {score!r}")
    if isinstance(values.data, dsa.Array):
        # tiles follow one grid anchored at the scene's origin, whatever the chunking
        values = values.chunk(
            {dim: _tile_chunks(values.chunksizes[dim], tile) for dim in ("y", "x")}
        )
    return _scene_thresholds(values, *_tiled_kernel(_check_bins(nbins), tile, score), who)


def _tile_chunks(chunks: tuple[int, ...], tile: int) -> tuple[int, ...] | int:
    if all(c % tile == 0 for c in chunks[:-1]):
        return chunks
    return max(tile, round(max(chunks) / tile) * tile)


def otsu_tiled_threshold(
    obj: XarrayObj,
    *,
    band: Polarisation = "vh",
    tile_size: int | None = None,
    min_score: float | None = None,
    nbins: int | None = None,
) -> xr.DataArray:
    """Split-window Otsu threshold: Otsu on the pixels of the scene's bimodal tiles only.

    The scene is cut into ``tile_size`` squares; a tile whose bimodality (maximum between-class
    variance over total variance, Cao et al. 2019, as in hydrafloods' ``bmax_otsu``) is at least
    ``min_score`` and which is at least half valid is kept, and Otsu runs on the summed
    histogram of the kept tiles. This finds a land/water threshold even when water covers a
    small part of a large scene. If no tile is bimodal it falls back to the global histogram with
    a :class:`~floodxr.errors.FloodxrWarning`.

    On dask input the tiles follow a grid anchored at the scene's origin: chunks are rechunked
    (lazily) to multiples of ``tile_size`` so results do not depend on the chunking. Only
    per-chunk histograms travel, so scenes larger than memory work.

    Parameters
    ----------
    obj : DataArray ``(..., band, y, x)`` in dB, or Dataset with one variable per band
    band : polarisation to threshold
    tile_size : default ``floodxr.get_options()["otsu_tile_size"]`` (128)
    min_score : default ``floodxr.get_options()["otsu_bimodality"]`` (0.7)
    nbins : default ``floodxr.get_options()["otsu_bins"]`` (256)

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0, chunks=64)
    >>> threshold = floodxr.threshold.otsu_tiled_threshold(scene.s1, tile_size=64)
    >>> type(threshold.data).__name__, round(float(threshold), 1)
    ('Array', -23.0)
    """
    return _tiled_thresholds(
        _band_values(obj, band, "otsu_tiled_threshold"),
        tile_size,
        min_score,
        nbins,
        "otsu_tiled_threshold",
    )


def otsu_tiled(
    obj: XarrayObj,
    *,
    band: Polarisation = "vh",
    tile_size: int | None = None,
    min_score: float | None = None,
    nbins: int | None = None,
) -> xr.DataArray:
    """Water mask from :func:`otsu_tiled_threshold` (bimodal-tile Otsu), per scene.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> mask = scene.s1.flood.otsu_tiled(band="vh", tile_size=64)
    >>> float((mask == scene.water).mean()) > 0.95
    True
    """
    values = _band_values(obj, band, "otsu_tiled")
    threshold = _tiled_thresholds(values, tile_size, min_score, nbins, "otsu_tiled")
    return _apply(values, threshold, f"otsu_tiled(band={band!r})")


def fixed(
    obj: XarrayObj, threshold: float | xr.DataArray, *, band: Polarisation = "vh"
) -> xr.DataArray:
    """Water mask from a fixed threshold in dB (a scalar, or one value per scene).

    Sen1Floods11 ships one Otsu-derived VH threshold per flood event
    (``Sen1Floods11_Metadata.geojson``, property ``VH_thresh``);
    :func:`floodxr.data.sen1floods11.event_of` finds a chip's.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> mask = floodxr.threshold.fixed(scene.s1, -22.0, band="vh")
    >>> mask.attrs["floodxr_method"]
    "fixed(band='vh', threshold=-22.0)"
    """
    if not isinstance(threshold, xr.DataArray):
        number(threshold, "threshold (dB)")
        check_db_values(np.array([threshold], "float64"), "threshold")
    label = threshold if not isinstance(threshold, xr.DataArray) else "per-scene"
    values = _band_values(obj, band, "threshold")
    return _apply(values, threshold, f"fixed(band={band!r}, threshold={label})")


def _check_bins(nbins: int | None) -> int:
    bins = OPTIONS["otsu_bins"] if nbins is None else nbins
    return int(number(bins, "nbins", minimum=2, integer=True))


#: The thresholding baselines by the name ``segment(model=...)`` and ``floodxr evaluate`` use.
METHODS: dict[str, Callable[..., xr.DataArray]] = {"otsu": otsu, "otsu-tiled": otsu_tiled}
