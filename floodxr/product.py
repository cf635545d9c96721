"""One pass, one product: every layer of a Sentinel-1 pass, computed by one set of rules.

``floodxr map`` (:mod:`floodxr.mapping`) and basin runs (:mod:`floodxr.basin`) both turn a
pass's water probability, its exclusion flags and the reference water into the layers below
through the block functions of this module, so a layer cannot differ between a map and a basin
run. The layers follow Copernicus Global Flood Monitoring's (GFM) per-scene product:

``probability``
    the calibrated water probability (float32, NaN where the radar has no data);
``likelihood``
    the same as a percentage, 0-100 (uint8, 255 nodata): GFM's likelihood values;
``exclusion``
    why a pixel says nothing, one bit per reason (uint8, 0 = mapped): :data:`FLAGS`;
``water``
    observed water: 1 water, 0 not water, 255 nodata (no radar, or excluded);
``flood``
    observed flood: water outside the reference water; 255 also where the reference is unknown.

Excluded pixels keep their probability (what the network saw) and are nodata in ``water`` and
``flood``. Areas (:func:`block_areas`) are measured on the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from floodxr.bands import NODATA

__all__ = [
    "ADVISORIES",
    "AREAS",
    "FLAGS",
    "advisories",
    "advisory_codes",
    "areas",
    "block_areas",
    "block_layers",
    "composite",
    "composite_block",
    "water_frequency_block",
    "describe_flags",
    "exclusion_codes",
    "flood_codes",
    "likelihood_codes",
    "pass_layers",
    "water_codes",
]

#: Bits of the ``exclusion`` layer: the reasons a pixel of a pass says nothing (GFM's exclusion
#: mask). ``no_data``: the pass has no radar there.
FLAGS: Mapping[str, int] = {
    "shadow": 1,
    "layover": 2,
    "hand": 4,
    "no_sensitivity": 8,
    "low_backscatter": 16,
    "no_data": 32,
}

#: Warnings about a whole pass (GFM's advisory flags): the water and the land differ by less
#: than :data:`WEAK_CONTRAST_DB` in VH; most of the reference water is not seen as water (wind
#: or rain roughens its surface, or it has dried up); the radar saw less than
#: :data:`COVERAGE_MIN` of the area.
ADVISORIES = ("weak_contrast", "rough_water", "partial_coverage")
#: VH contrast (dB) between land and water below which a pass's water is hard to tell apart.
#: Sentinel-1 flood water is usually 5-15 dB darker than land in VH (Twele et al. 2016).
WEAK_CONTRAST_DB = 3.0
#: Share of an area the radar must see for full coverage.
COVERAGE_MIN = 0.95
#: Fewest pixels a median or share of :func:`advisories` is taken over.
_FEWEST = 100

#: The areas measured per pass, in km²: the columns of the area tables. ``observed_km2`` is what
#: the radar saw, ``excluded_km2`` the part of it excluded; water and flood lie in the rest.
AREAS = ("water_km2", "flood_km2", "observed_km2", "excluded_km2")


def describe_flags() -> str:
    """The exclusion bits as one line, for file metadata.

    Examples
    --------
    >>> from floodxr.product import describe_flags
    >>> describe_flags()
    '1 shadow, 2 layover, 4 hand, 8 no_sensitivity, 16 low_backscatter, 32 no_data'
    """
    return ", ".join(f"{bit} {name}" for name, bit in FLAGS.items())


def exclusion_codes(probability: np.ndarray, terrain: np.ndarray | None = None) -> np.ndarray:
    """The ``exclusion`` layer: ``terrain``'s bits (shadow ... low backscatter; 0 or None for
    none) and ``no_data`` where the probability is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import exclusion_codes
    >>> exclusion_codes(np.array([0.9, np.nan, 0.1]), np.array([0, 0, 1], "uint8")).tolist()
    [0, 32, 1]
    """
    codes = np.zeros(probability.shape, "uint8") if terrain is None else terrain.astype("uint8")
    return np.where(np.isfinite(probability), codes, codes | FLAGS["no_data"]).astype("uint8")


def likelihood_codes(probability: np.ndarray) -> np.ndarray:
    """The probability as a whole percentage, 0-100; 255 where it is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import likelihood_codes
    >>> likelihood_codes(np.array([0.0, 0.504, 1.0, np.nan])).tolist()
    [0, 50, 100, 255]
    """
    valid = np.isfinite(probability)
    percent = np.rint(np.clip(np.where(valid, probability, 0.0), 0.0, 1.0) * 100)
    return np.where(valid, percent, NODATA).astype("uint8")


def water_codes(probability: np.ndarray, exclusion: np.ndarray, cut: float) -> np.ndarray:
    """Observed water: 1 where the probability reaches ``cut``, 0 below, 255 where ``exclusion``
    has any bit (no radar included).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import water_codes
    >>> water_codes(np.array([0.9, 0.2, 0.9]), np.array([0, 0, 4], "uint8"), 0.5).tolist()
    [1, 0, 255]
    """
    water = np.where(np.isfinite(probability), probability, 0.0) >= cut
    return np.where(exclusion == 0, water, NODATA).astype("uint8")


def flood_codes(water: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Observed flood: water where the reference water (1 water, 0 dry, 255 unknown) is dry;
    255 where either is nodata.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import flood_codes
    >>> water = np.array([1, 1, 0, 255, 1], "uint8")
    >>> flood_codes(water, np.array([0, 1, 0, 0, 255], "uint8")).tolist()
    [1, 0, 0, 255, 255]
    """
    known = (water != NODATA) & (reference != NODATA)
    return np.where(known, (water == 1) & (reference == 0), NODATA).astype("uint8")


def block_layers(
    probability: np.ndarray,
    *,
    cut: float,
    terrain: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every layer of one block of a pass (``flood`` only with a ``reference``).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import block_layers
    >>> layers = block_layers(np.array([0.9, 0.8, np.nan]), cut=0.5,
    ...                       reference=np.array([0, 1, 0], "uint8"))
    >>> {k: v.tolist() for k, v in layers.items() if k != "probability"}
    {'likelihood': [90, 80, 255], 'exclusion': [0, 0, 32], 'water': [1, 1, 255],
     'flood': [1, 0, 255]}
    """
    probability = np.asarray(probability, "float32")
    exclusion = exclusion_codes(probability, terrain)
    layers = {
        "probability": np.where(np.isfinite(probability), probability, np.nan).astype("float32"),
        "likelihood": likelihood_codes(probability),
        "exclusion": exclusion,
        "water": water_codes(probability, exclusion, cut),
    }
    if reference is not None:
        layers["flood"] = flood_codes(layers["water"], reference)
    return layers


def block_areas(layers: Mapping[str, np.ndarray], area_km2: np.ndarray) -> np.ndarray:
    """:data:`AREAS` of one block's ``layers`` (km²; ``flood_km2`` NaN without a flood layer),
    each pixel weighing ``area_km2`` (broadcast to the block).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import block_areas, block_layers
    >>> layers = block_layers(np.array([0.9, 0.8, 0.1, np.nan]), cut=0.5,
    ...                       terrain=np.array([0, 4, 0, 0], "uint8"))
    >>> block_areas(layers, np.full(4, 0.5)).tolist()
    [0.5, nan, 1.5, 0.5]
    """
    area = np.broadcast_to(area_km2, layers["water"].shape)
    exclusion = layers["exclusion"]
    seen = np.isfinite(layers["probability"])  # what the radar saw (no_data also means no DEM)
    flood = area[layers["flood"] == 1].sum() if "flood" in layers else np.nan
    return np.array(
        [
            area[layers["water"] == 1].sum(),
            flood,
            area[seen].sum(),
            area[seen & (exclusion != 0)].sum(),
        ],
        "float64",
    )


def _codes(values: np.ndarray | None, nodata_code: int) -> np.ndarray | None:
    """An aligned layer (float, NaN uncovered) back to uint8 codes, NaN as ``nodata_code``."""
    if values is None:
        return None
    return np.where(np.isfinite(values), values, nodata_code).astype("uint8")


def _layer_block(
    probability: np.ndarray,
    exclusion: np.ndarray | None,
    reference: np.ndarray | None,
    *,
    name: str,
    cut: float,
) -> np.ndarray:
    return block_layers(
        probability,
        cut=cut,
        terrain=_codes(exclusion, FLAGS["no_data"]),
        reference=_codes(reference, NODATA),
    )[name]


def pass_layers(
    probability: xr.DataArray,
    *,
    cut: float,
    exclusion: xr.DataArray | None = None,
    reference: xr.DataArray | None = None,
) -> xr.Dataset:
    """The layers of one pass (module docstring) as a lazy Dataset on ``probability``'s grid.

    ``exclusion`` holds :data:`FLAGS` bits (:func:`floodxr.terrain.flags`), ``reference`` the
    reference water (1 water, 0 dry, 255 unknown); each is laid on the grid by coordinates
    (:func:`floodxr.grid.align`): a pixel it does not cover is ``no_data`` / unknown.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.product import pass_layers
    >>> p = xr.DataArray(np.array([[0.9, 0.7, 0.2, np.nan]]), dims=("y", "x"),
    ...                  coords={"y": [5.0], "x": [0.5, 1.5, 2.5, 3.5]})
    >>> layers = pass_layers(p, cut=0.5, exclusion=xr.zeros_like(p, "uint8") + (p.x > 1) * 4,
    ...                      reference=xr.zeros_like(p, "uint8"))
    >>> {k: v.values.ravel().tolist() for k, v in layers.items() if k != "probability"}
    {'likelihood': [90, 70, 20, 255], 'exclusion': [0, 4, 4, 36], 'water': [1, 255, 255, 255], \
'flood': [1, 255, 255, 255]}
    """
    from floodxr.grid import align

    laid = {
        "exclusion": None if exclusion is None else align(exclusion, probability, "the exclusion"),
        "reference": None
        if reference is None
        else align(reference, probability, "the reference water"),
    }
    inputs = [probability] + [v for v in laid.values() if v is not None]
    given = [k for k, v in laid.items() if v is not None]

    def kernel(name: str, *arrays: np.ndarray) -> np.ndarray:
        extra = dict(zip(given, arrays[1:], strict=True))
        return _layer_block(
            arrays[0], extra.get("exclusion"), extra.get("reference"), name=name, cut=cut
        )

    names = ["probability", "likelihood", "exclusion", "water"]
    names += ["flood"] if reference is not None else []
    layers = {}
    for name in names:
        dtype = "float32" if name == "probability" else "uint8"
        out = xr.apply_ufunc(
            lambda *a, name=name: kernel(name, *a),
            *inputs,
            dask="parallelized",
            output_dtypes=[dtype],
        )
        if name not in ("probability", "exclusion"):  # every exclusion code is a value
            out = out.rio.write_nodata(NODATA, encoded=False)
        layers[name] = out
    ds = xr.Dataset(layers)
    ds["exclusion"].attrs |= {"flag_masks": list(FLAGS.values()), "flag_meanings": " ".join(FLAGS)}
    return ds.rio.write_crs(probability.rio.crs) if probability.rio.crs is not None else ds


def _block_sums(names: list[str], area: np.ndarray, *blocks: np.ndarray) -> np.ndarray:
    return block_areas(dict(zip(names, blocks, strict=True)), area)


def areas(layers: xr.Dataset) -> dict[str, float]:
    """:data:`AREAS` of a pass's ``layers`` (:func:`pass_layers`) in km², measured block by
    block with :func:`block_areas`, as basin runs measure theirs (computes).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.grid import coords, north_up
    >>> from floodxr.product import areas, pass_layers
    >>> box = north_up((2, 2), (500_000.0, 5_000_000.0), 100.0, "EPSG:32631")
    >>> p = xr.DataArray(np.array([[0.9, 0.9], [0.1, np.nan]]), dims=("y", "x"),
    ...                  coords=coords(box)).rio.write_crs("EPSG:32631")
    >>> {k: round(v, 3) for k, v in areas(pass_layers(p, cut=0.5)).items()}
    {'water_km2': 0.02, 'flood_km2': nan, 'observed_km2': 0.03, 'excluded_km2': 0.0}
    """
    import dask
    import dask.array as dsa

    from floodxr.grid import pixel_area_km2

    names = [n for n in ("probability", "exclusion", "water", "flood") if n in layers]
    chunked = layers[names].chunk({"y": 2048, "x": 2048}) if layers.chunks == {} else layers
    area = pixel_area_km2(chunked["water"])
    arrays = [chunked[n].data for n in names]
    pairs = [item for a in [area.data, *arrays] for item in (a, "ij")]
    _, unified = dsa.core.unify_chunks(*pairs)
    blocks = [a.to_delayed().ravel() for a in unified]
    parts = [dask.delayed(_block_sums)(names, *group) for group in zip(*blocks, strict=True)]
    (total,) = dask.compute(dask.delayed(np.sum)(dask.delayed(np.stack)(parts), axis=0))
    return {k: float(v) for k, v in zip(AREAS, total, strict=True)}


def advisories(
    vh_db: np.ndarray, water: np.ndarray, *, reference: np.ndarray | None = None
) -> dict[str, bool]:
    """:data:`ADVISORIES` of a pass from its VH backscatter (dB), its ``water`` layer and the
    reference water (1 water, 0 dry, 255 unknown), all on one grid (a subsample will do).

    The contrast is the VH median of the not-water pixels minus that of the water pixels; with
    fewer than 100 water pixels the reference water stands in for the water.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import advisories
    >>> vh = np.where(np.arange(1000) < 300, -17.0, -15.0)  # water only 2 dB darker
    >>> water = (np.arange(1000) < 300).astype("uint8")
    >>> advisories(vh, water)
    {'weak_contrast': True, 'rough_water': False, 'partial_coverage': False}
    """
    vh = np.asarray(vh_db, "float64").ravel()
    water = np.asarray(water).ravel()
    reference = None if reference is None else np.asarray(reference).ravel()
    seen = np.isfinite(vh) & (water != NODATA)
    wet, dry = seen & (water == 1), seen & (water == 0)
    if wet.sum() < _FEWEST and reference is not None:
        wet, dry = seen & (reference == 1), seen & (reference == 0)
    weak = bool(
        wet.sum() >= _FEWEST
        and dry.sum() >= _FEWEST
        and np.median(vh[dry]) - np.median(vh[wet]) < WEAK_CONTRAST_DB
    )
    rough = False
    if reference is not None:
        known = seen & (reference == 1)
        rough = bool(known.sum() >= _FEWEST and (water[known] == 1).mean() < 0.5)
    coverage = np.isfinite(vh).mean() if vh.size else 0.0
    return {
        "weak_contrast": weak,
        "rough_water": rough,
        "partial_coverage": bool(coverage < COVERAGE_MIN),
    }


#: The layers of an event composite (:func:`composite`): GFM's maximum flood extent, with how
#: often each pixel was flooded and seen, and when it was first and last flooded.
COMPOSITE = ("max_flood", "flooded_passes", "observed_passes", "first_flooded", "last_flooded")


def composite_block(flood: np.ndarray, dates: np.ndarray) -> dict[str, np.ndarray]:
    """The event composite of a ``(pass, y, x)`` stack of flood (or water) codes (1, 0, 255
    nodata) of passes on ``dates`` (``YYYYMMDD`` integers, one per pass, ascending):
    ``max_flood`` 1 where any pass saw flood, 0 where passes saw it and none flood, 255 where
    none saw it; ``flooded_passes`` and ``observed_passes`` counts (uint8); ``first_flooded`` and
    ``last_flooded`` dates (int32 ``YYYYMMDD``, 0 where never flooded).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import composite_block
    >>> flood = np.array([[[1, 0, 255]], [[1, 255, 255]], [[0, 0, 255]]], "uint8")
    >>> out = composite_block(flood, np.array([20190913, 20190925, 20191007]))
    >>> {k: v.ravel().tolist() for k, v in out.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'max_flood': [1, 0, 255], 'flooded_passes': [2, 0, 0], 'observed_passes': [3, 2, 0],
     'first_flooded': [20190913, 0, 0], 'last_flooded': [20190925, 0, 0]}
    """
    flood = np.asarray(flood)
    dates = np.asarray(dates, "int32").reshape(-1, *([1] * (flood.ndim - 1)))
    flooded, seen = flood == 1, flood != NODATA
    count = flooded.sum(axis=0)
    never = np.iinfo("int32").max
    first = np.where(flooded, dates, never).min(axis=0)
    last = np.where(flooded, dates, 0).max(axis=0)
    return {
        "max_flood": np.where(seen.any(axis=0), count > 0, NODATA).astype("uint8"),
        "flooded_passes": count.astype("uint8"),
        "observed_passes": seen.sum(axis=0).astype("uint8"),
        "first_flooded": np.where(count > 0, first, 0).astype("int32"),
        "last_flooded": last.astype("int32"),
    }


def composite(flood: xr.DataArray, dim: str = "time") -> xr.Dataset:
    """:func:`composite_block` of a lazy ``(dim, y, x)`` stack of per-pass flood (or water)
    layers whose ``dim`` coordinate holds the passes' times (lazy; one pass over the stack).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> from floodxr.product import composite
    >>> times = pd.to_datetime(["2019-09-13T06:00", "2019-09-25T06:00"])
    >>> flood = xr.DataArray(np.array([[[0, 1]], [[1, 1]]], "uint8"), dims=("time", "y", "x"),
    ...                      coords={"time": times})
    >>> composite(flood)["first_flooded"].values.tolist()
    [[20190925, 20190913]]
    """
    import pandas as pd

    from floodxr.errors import InvalidOptionError

    if flood.sizes.get(dim, 0) > 255:
        raise InvalidOptionError(
            f"a composite counts up to 255 passes, got {flood.sizes[dim]}; composite shorter "
            "periods (GFM's are up to two months)"
        )
    order = np.argsort(flood[dim].values)
    flood = flood.isel({dim: order})
    dates = np.array([int(pd.Timestamp(t).strftime("%Y%m%d")) for t in flood[dim].values], "int32")
    stacked = flood.chunk({dim: -1}) if flood.chunks is not None else flood
    layers = {}
    for name in COMPOSITE:
        dtype = "int32" if name in ("first_flooded", "last_flooded") else "uint8"
        out = xr.apply_ufunc(
            lambda block, name=name: composite_block(np.moveaxis(block, -1, 0), dates)[name],
            stacked,
            input_core_dims=[[dim]],
            dask="parallelized",
            output_dtypes=[dtype],
        )
        layers[name] = out
    ds = xr.Dataset(layers)
    ds["max_flood"] = ds["max_flood"].rio.write_nodata(NODATA, encoded=False)
    for name in ("first_flooded", "last_flooded"):
        ds[name] = ds[name].rio.write_nodata(0, encoded=False)
    ds = ds.assign_attrs(passes=len(dates), first_pass=int(dates[0]), last_pass=int(dates[-1]))
    crs = flood.rio.crs
    return ds.rio.write_crs(crs) if crs is not None else ds


#: Bits of the per-pixel advisory layer (:func:`advisory_codes`).
ADVISORY_BITS: Mapping[str, int] = {"weak_contrast": 1, "rough_water": 2, "partial_coverage": 4}


def advisory_codes(
    water: np.ndarray, reference: np.ndarray | None, flags: Mapping[str, bool]
) -> np.ndarray:
    """The advisory layer (uint8 bits of :data:`ADVISORY_BITS`, 255 where the pass has no
    water layer): the pass's ``flags`` (:func:`advisories`) on every mapped pixel, and
    ``rough_water`` where the pass flags it on the reference water it did not see as water.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import advisory_codes
    >>> water = np.array([1, 0, 0, 255], "uint8")
    >>> reference = np.array([1, 1, 0, 1], "uint8")
    >>> flags = {"weak_contrast": True, "rough_water": True, "partial_coverage": False}
    >>> advisory_codes(water, reference, flags).tolist()
    [1, 3, 1, 255]
    """
    water = np.asarray(water)
    codes = np.zeros(water.shape, "uint8")
    for name in ("weak_contrast", "partial_coverage"):
        if flags.get(name):
            codes |= np.uint8(ADVISORY_BITS[name])
    if flags.get("rough_water") and reference is not None:
        missed = (np.asarray(reference) == 1) & (water == 0)
        codes |= np.where(missed, ADVISORY_BITS["rough_water"], 0).astype("uint8")
    return np.where(water == NODATA, NODATA, codes).astype("uint8")


#: Share of a reference period's passes that must see a pixel as water for it to be reference
#: water (GFM builds its reference water mask from a Sentinel-1 time series the same way).
REFERENCE_FREQUENCY = 0.5


def water_frequency_block(stack: np.ndarray, cut: float) -> np.ndarray:
    """Per pixel, the share of the passes of a ``(pass, y, x)`` probability stack that saw
    water (probability >= ``cut``), among those that saw the pixel; NaN where none did. The
    reference water is where it reaches :data:`REFERENCE_FREQUENCY`.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.product import water_frequency_block
    >>> stack = np.array([[0.9, 0.1, np.nan], [0.8, 0.7, np.nan], [0.2, 0.3, np.nan]])
    >>> water_frequency_block(stack[:, None, :], 0.5).round(2).tolist()
    [[0.67, 0.33, nan]]
    """
    stack = np.asarray(stack, "float32")
    seen = np.isfinite(stack)
    count = seen.sum(axis=0)
    wet = (np.where(seen, stack, 0.0) >= cut).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, wet / np.maximum(count, 1), np.nan).astype("float32")
