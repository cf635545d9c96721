"""Where water cannot be mapped, or cannot be: terrain masks from a DEM, and permanent water.

What Copernicus GFM calls the exclusion mask and the reference water mask:

* :func:`hand`: height above nearest drainage (Nobre et al. 2016) from a DEM with pyflwdir
  (D8 flow directions on the depression-filled DEM, drains where the upstream area exceeds
  ``drain_km2``); water more than ``hand_max_m`` above its drain is implausible;
* :func:`shadow_layover`: radar shadow and layover from the DEM's slope along the look
  direction (right-looking Sentinel-1: east on ascending passes, west on descending ones) and
  the incidence angle; shadow is as dark as water, layover hides the ground;
* :func:`exclusion`: both together, ``True`` where a water map says nothing; ``mask.flood.
  exclude(excluded)`` turns those pixels into nodata (255);
* :func:`split_water`: water that is always there (a reference water mask, or a surface-water
  occurrence layer such as JRC GSW above a threshold) apart from flood;
* :func:`flags`: the reasons of GFM's exclusion mask as bits (:data:`floodxr.product.FLAGS`),
  lazily and block by block from a DEM and an ESA WorldCover-coded land cover, so that a basin's
  DEM is never in memory at once: what ``floodxr map`` and basin runs apply.

:func:`floodxr.data.load.load_layer` loads a DEM (Copernicus DEM GLO-30) or an occurrence layer
from a STAC API onto a scene's grid.
"""

from __future__ import annotations

import functools

import numpy as np
import xarray as xr

from floodxr._valid import layer, number, require_spatial
from floodxr.bands import NODATA
from floodxr.errors import InvalidOptionError, MissingDimensionError
from floodxr.grid import align, oriented, transform
from floodxr.metrics import checked_mask

__all__ = [
    "FLOOD",
    "LOW_BACKSCATTER_CLASSES",
    "NO_SENSITIVITY_CLASSES",
    "PERMANENT",
    "exclude",
    "exclusion",
    "flags",
    "hand_flags",
    "hand",
    "look_azimuth",
    "shadow_layover",
    "split_water",
]

#: Classes of :func:`split_water` (0 is not water, 255 nodata).
FLOOD, PERMANENT = 1, 2
#: Sentinel-1 flies about 10 degrees west of north ascending and 10 degrees west of south
#: descending, and looks right: its look azimuth (degrees clockwise from north).
_LOOK = {"ascending": 80.0, "descending": 260.0}


#: Elevations on Earth's land in metres (the Dead Sea shore is at -430, Everest at 8849).
ELEVATION_RANGE = (-500.0, 9000.0)

#: ESA WorldCover classes where C-band radar cannot see water (GFM's "no sensitivity"): tree
#: cover (10; the canopy hides the ground) and built-up (50; walls and roofs scatter brightly).
NO_SENSITIVITY_CLASSES = (10, 50)
#: ESA WorldCover classes as dark as water whatever the flood (GFM's "low backscatter"): bare
#: or sparse vegetation (60; sand, rock, tarmac) and snow and ice (70; wet snow absorbs).
LOW_BACKSCATTER_CLASSES = (60, 70)
#: ESA WorldCover's classes (its legend, 2020 and 2021 maps).
WORLDCOVER_CLASSES = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
#: Pixels of DEM read beyond each block for :func:`flags`' HAND: a drain's upstream area and
#: a cell's path to its drain are seen within this margin (7.7 km at 30 m).
HAND_OVERLAP = 256


def _plane(dem: xr.DataArray) -> tuple[xr.DataArray, np.ndarray, float, dict[str, slice]]:
    """The DEM north-up with invalid pixels NaN, its values, its pixel size and the flips made
    (``result.isel(flips)`` is back on the DEM's own orientation)."""
    up, flips, res = _lazy_plane(dem)
    values = np.asarray(up.values, dtype="float64")
    return up, values, res, flips


def hand(dem: xr.DataArray, *, drain_km2: float = 1.0) -> xr.DataArray:
    """Height above nearest drainage in metres (computes the DEM; NaN where the DEM is).

    Parameters
    ----------
    dem : ``(y, x)`` elevation in metres on a projected, north-up grid
    drain_km2 : upstream area from which a cell is a drain (a stream)

    Examples
    --------
    A V-shaped valley whose sides rise 1 m every 20 m:

    >>> import numpy as np
    >>> from floodxr.grid import coords, north_up
    >>> from floodxr.terrain import hand
    >>> box = north_up((100, 81), (500_000.0, 5_000_000.0), 20.0, "EPSG:32631")
    >>> rows, cols = np.mgrid[0:100, 0:81]
    >>> z = np.abs(cols - 40) + 0.05 * (100 - rows) + 50.0
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords=coords(box)).rio.write_crs(box.crs.to_wkt())
    >>> float(hand(dem, drain_km2=0.2)[50, 60].round(1))  # 20 m up the side, 1 m to its drain
    21.0
    """
    number(drain_km2, "drain_km2", above=0)
    up, values, res, flips = _plane(dem)
    out = up.copy(data=_hand_block(values, res, drain_km2)).isel(flips).rename("hand")
    out.attrs = {"units": "m", "long_name": "height above nearest drainage"}
    return out


def _hand_block(values: np.ndarray, res: float, drain_km2: float) -> np.ndarray:
    """HAND (m, float32) of a north-up block of elevations (NaN invalid) with ``res`` m pixels."""
    import pyflwdir
    from affine import Affine

    values = np.asarray(values, "float64")
    valid = np.isfinite(values)
    height = np.full(values.shape, np.nan, "float32")
    if valid.any():  # a DEM without a valid pixel has no drainage: all NaN
        nodata = -9999.0
        dem = np.where(valid, values, nodata)
        flw = pyflwdir.from_dem(dem, nodata=nodata, transform=Affine(res, 0, 0, 0, -res, 0))
        drains = flw.upstream_area(unit="km2") >= drain_km2
        height = flw.hand(drains, dem).astype("float32")
        height[~valid] = np.nan
    return height


def _shadow_layover_block(
    values: np.ndarray, res: float, azimuth_deg: float, incidence_deg: float
) -> np.ndarray:
    """Shadow (1) and layover (2) of a north-up block of elevations; 0 elsewhere and where the
    slope is unknown."""
    if min(values.shape) < 2:  # no slope can be measured along a line
        return np.zeros(values.shape, "uint8")
    rising_south, rising_east = np.gradient(np.asarray(values, "float64"), res)
    azimuth = np.deg2rad(azimuth_deg)
    # the slope along the look direction: > 0 where the ground rises away from the radar
    along = rising_east * np.sin(azimuth) - rising_south * np.cos(azimuth)
    angle = np.rad2deg(np.arctan(along))
    codes = np.zeros(values.shape, "uint8")
    codes[angle > incidence_deg] = 2
    codes[-angle > 90.0 - incidence_deg] = 1
    codes[~np.isfinite(angle)] = 0  # no slope where the DEM is invalid: see exclusion
    return codes


def _flag_block(
    values: np.ndarray,
    *,
    res: float,
    azimuth_deg: float | None,
    incidence_deg: float,
    hand_max_m: float | None,
    drain_km2: float,
) -> np.ndarray:
    """The DEM's bits of :data:`floodxr.product.FLAGS` for one (overlapped) block; no shadow
    or layover without an ``azimuth_deg``."""
    from floodxr.product import FLAGS

    codes = np.zeros(values.shape, "int64")
    if azimuth_deg is not None:
        layover_shadow = _shadow_layover_block(values, res, azimuth_deg, incidence_deg)
        codes |= np.where(layover_shadow == 1, FLAGS["shadow"], 0)
        codes |= np.where(layover_shadow == 2, FLAGS["layover"], 0)
    if hand_max_m is not None:
        codes |= np.where(_hand_block(values, res, drain_km2) > hand_max_m, FLAGS["hand"], 0)
    codes |= np.where(np.isfinite(values), 0, FLAGS["no_data"])  # terrain unknown
    return codes.astype("uint8")


def _landcover_block(classes: np.ndarray) -> np.ndarray:
    from floodxr.product import FLAGS

    codes = np.where(np.isin(classes, NO_SENSITIVITY_CLASSES), FLAGS["no_sensitivity"], 0)
    codes |= np.where(np.isin(classes, LOW_BACKSCATTER_CLASSES), FLAGS["low_backscatter"], 0)
    codes |= np.where(np.isfinite(classes), 0, FLAGS["no_data"])
    return codes.astype("uint8")


def look_azimuth(orbit_state: str) -> float:
    """Sentinel-1's look azimuth (degrees clockwise from north) on an ``orbit_state`` pass."""
    if orbit_state not in _LOOK:
        raise InvalidOptionError(
            f"orbit_state must be 'ascending' or 'descending' (the item's sat:orbit_state), "
            f"got {orbit_state!r}"
        )
    return _LOOK[orbit_state]


def shadow_layover(
    dem: xr.DataArray, *, orbit_state: str, incidence_deg: float = 39.0
) -> xr.DataArray:
    """Radar shadow (1) and layover (2) of a pass, 0 elsewhere (computes the DEM).

    A slope rising away from the radar faster than the incidence angle lies over (its top is
    imaged before its foot); one falling away faster than ``90 - incidence`` is in shadow.
    Sentinel-1 IW sees the ground at 30-46 degrees; 39 is the middle of the swath.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.grid import coords, north_up
    >>> from floodxr.terrain import shadow_layover
    >>> box = north_up((10, 10), (500_000.0, 5_000_000.0), 10.0, "EPSG:32631")
    >>> ramp = np.tile(-20.0 * np.arange(10), (10, 1))  # falls 2 m per metre eastwards
    >>> dem = xr.DataArray(ramp, dims=("y", "x"), coords=coords(box))
    >>> dem = dem.rio.write_crs(box.crs.to_wkt())
    >>> int(shadow_layover(dem, orbit_state="ascending")[5, 5])  # looking east: shadow
    1
    >>> int(shadow_layover(dem, orbit_state="descending")[5, 5])  # looking west: layover
    2
    """
    number(incidence_deg, "incidence_deg", above=0)
    if not incidence_deg < 90:
        raise InvalidOptionError(f"incidence_deg must be below 90, got {incidence_deg}")
    azimuth = look_azimuth(orbit_state)
    up, values, res, flips = _plane(dem)
    codes = _shadow_layover_block(values, res, azimuth, incidence_deg)
    out = up.copy(data=codes).isel(flips).rename("shadow_layover")
    out.attrs = {"flag_values": [0, 1, 2], "flag_meanings": "visible shadow layover"}
    return out


def exclusion(
    dem: xr.DataArray,
    *,
    orbit_state: str,
    incidence_deg: float = 39.0,
    hand_max_m: float | None = 15.0,
    drain_km2: float = 1.0,
) -> xr.DataArray:
    """``True`` where a water map from this pass says nothing: radar shadow, layover, and
    (``hand_max_m``) ground more than that above its drain, where flood water cannot stand.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.grid import coords, north_up
    >>> from floodxr.terrain import exclusion
    >>> box = north_up((100, 81), (500_000.0, 5_000_000.0), 20.0, "EPSG:32631")
    >>> rows, cols = np.mgrid[0:100, 0:81]
    >>> z = np.abs(cols - 40) + 0.05 * (100 - rows) + 50.0
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords=coords(box)).rio.write_crs(box.crs.to_wkt())
    >>> excluded = exclusion(dem, orbit_state="ascending", drain_km2=0.2)
    >>> bool(excluded[50, 40]), bool(excluded[50, 70])  # the valley floor, 30 m up its side
    (False, True)
    """
    dem = dem.compute()  # both masks read it: a DEM loaded lazily from STAC is read once
    excluded = shadow_layover(dem, orbit_state=orbit_state, incidence_deg=incidence_deg) > 0
    if hand_max_m is not None:
        number(hand_max_m, "hand_max_m", above=0)
        height = hand(dem, drain_km2=drain_km2)
        excluded = excluded | (height > hand_max_m)
    # where the DEM is invalid the terrain is unknown: a map says nothing there either
    unknown = layer(
        dem, "the DEM", low=ELEVATION_RANGE[0], high=ELEVATION_RANGE[1], fix="give metres"
    )
    return (excluded | unknown.isnull()).rename("excluded")


def flags(
    dem: xr.DataArray | None = None,
    landcover: xr.DataArray | None = None,
    *,
    orbit_state: str | None = None,
    incidence_deg: float = 39.0,
    hand_max_m: float | None = 15.0,
    drain_km2: float = 1.0,
    overlap: int = HAND_OVERLAP,
) -> xr.DataArray:
    """Why a pass's pixels cannot be mapped, as the bits of :data:`floodxr.product.FLAGS`
    (uint8, 0 = mappable). Lazy, block by block: memory follows the blocks, not the DEM.

    From ``dem`` (metres, projected, square pixels): ``shadow`` and ``layover`` of an
    ``orbit_state`` pass (:func:`shadow_layover`; None: neither), ``hand`` above ``hand_max_m``
    (:func:`hand`, each block computed with ``overlap`` pixels of DEM around it) and
    ``no_data`` where the DEM is invalid. From ``landcover`` (ESA WorldCover classes, on the
    same grid): ``no_sensitivity`` (:data:`NO_SENSITIVITY_CLASSES`), ``low_backscatter``
    (:data:`LOW_BACKSCATTER_CLASSES`) and ``no_data`` where it is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.grid import coords, north_up
    >>> from floodxr.terrain import flags
    >>> box = north_up((100, 81), (500_000.0, 5_000_000.0), 20.0, "EPSG:32631")
    >>> rows, cols = np.mgrid[0:100, 0:81]
    >>> z = np.abs(cols - 40) + 0.05 * (100 - rows) + 50.0
    >>> dem = xr.DataArray(z, dims=("y", "x"), coords=coords(box)).rio.write_crs(box.crs.to_wkt())
    >>> cover = xr.full_like(dem, 40).where(dem.x >= dem.x[5], 50)  # cropland, a town at the west
    >>> bits = flags(dem, cover, orbit_state="ascending", drain_km2=0.2).compute()
    >>> int(bits[50, 40]), int(bits[50, 70]), int(bits[50, 2])  # floor, 30 m up, town 38 m up
    (0, 4, 12)
    """
    import dask.array as dsa

    from floodxr.product import FLAGS

    if dem is None and landcover is None:
        raise InvalidOptionError("give a dem=, a landcover=, or both")
    if overlap != int(overlap) or overlap < 1:
        raise InvalidOptionError(f"overlap must be a whole number of pixels >= 1, got {overlap!r}")
    parts = []
    base = None
    if dem is not None:
        azimuth = None if orbit_state is None else look_azimuth(orbit_state)
        number(incidence_deg, "incidence_deg", above=0)
        if not incidence_deg < 90:
            raise InvalidOptionError(f"incidence_deg must be below 90, got {incidence_deg}")
        number(drain_km2, "drain_km2", above=0)
        if hand_max_m is not None:
            number(hand_max_m, "hand_max_m", above=0)
        up, flips, res = _lazy_plane(dem)
        data = up.data if isinstance(up.data, dsa.Array) else dsa.from_array(up.data)
        want = int(overlap) if hand_max_m is not None else 1
        # no margin along an axis held in one block; never more than the array
        depth = {
            axis: 0 if len(chunks) == 1 else min(want, size)
            for axis, (chunks, size) in enumerate(zip(data.chunks, data.shape, strict=True))
        }
        codes = dsa.map_overlap(
            functools.partial(
                _flag_block,
                res=res,
                azimuth_deg=azimuth,
                incidence_deg=float(incidence_deg),
                hand_max_m=None if hand_max_m is None else float(hand_max_m),
                drain_km2=float(drain_km2),
            ),
            data,
            depth=depth,
            boundary="none",
            dtype="uint8",
            meta=np.array((), "uint8"),
        )
        base = up.copy(data=codes).isel(flips)
        parts.append(base)
    if landcover is not None:
        classes = layer(
            landcover,
            "the land cover",
            low=min(WORLDCOVER_CLASSES),
            high=max(WORLDCOVER_CLASSES),
            integral=True,
            fix="give ESA WorldCover classes (10 tree cover ... 100 moss and lichen)",
        )
        if base is not None:
            classes = align(classes, base, "the land cover")
        data = classes.data if isinstance(classes.data, dsa.Array) else dsa.from_array(classes.data)
        codes = dsa.map_blocks(_landcover_block, data, dtype="uint8", meta=np.array((), "uint8"))
        parts.append(classes.copy(data=codes))
    out = parts[0] if len(parts) == 1 else parts[0] | parts[1]
    out = out.astype("uint8").rename("exclusion")
    out.attrs = {
        "flag_masks": list(FLAGS.values()),
        "flag_meanings": " ".join(FLAGS),
        "long_name": "exclusion reasons",
    }
    crs = (dem if dem is not None else landcover).rio.crs  # type: ignore[union-attr]
    return out.rio.write_crs(crs) if crs is not None else out


def hand_flags(height: xr.DataArray, *, hand_max_m: float = 15.0) -> xr.DataArray:
    """The ``hand`` bit of :data:`floodxr.product.FLAGS` from a precomputed HAND layer (metres
    above the nearest drainage, e.g. MERIT Hydro's): set above ``hand_max_m``; ``no_data`` where
    the layer is invalid. Lazy.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.terrain import hand_flags
    >>> hand_flags(xr.DataArray(np.array([2.0, 40.0, np.nan]), dims="x")).values.tolist()
    [0, 4, 32]
    """
    from floodxr.product import FLAGS

    number(hand_max_m, "hand_max_m", above=0)
    checked = layer(
        height,
        "the HAND layer",
        low=-100.0,
        high=ELEVATION_RANGE[1],
        fix="give heights above the nearest drainage in metres",
    )
    bits = xr.where(checked > hand_max_m, FLAGS["hand"], 0)
    bits = xr.where(checked.isnull(), FLAGS["no_data"], bits).astype("uint8")
    return bits.rename("exclusion")


def _lazy_plane(dem: xr.DataArray) -> tuple[xr.DataArray, dict[str, slice], float]:
    """:func:`_plane` without computing: the DEM checked (lazily), north-up, its flips, its
    pixel size."""
    require_spatial(dem)
    if dem.ndim != 2:
        raise MissingDimensionError(f"expected a (y, x) DEM, got dims {dem.dims}")
    if dem.rio.crs is None or dem.rio.crs.is_geographic:
        raise InvalidOptionError(
            "terrain needs the DEM on a projected grid in metres (the scene's UTM grid); "
            "reproject it, e.g. dem.rio.reproject_match(scene)"
        )
    checked = layer(
        dem, "the DEM", low=ELEVATION_RANGE[0], high=ELEVATION_RANGE[1], fix="give metres"
    )
    up, flips = oriented(checked)
    grid = transform(up)
    if grid.b or grid.d or abs(grid.a) != abs(grid.e):
        raise InvalidOptionError("terrain needs a DEM grid with square pixels")
    return up, flips, abs(grid.a)


def exclude(mask: xr.DataArray, excluded: xr.DataArray) -> xr.DataArray:
    """``mask`` (or a probability) with the ``excluded`` pixels as nodata (255, or NaN for a
    probability); ``excluded`` is on the mask's grid. Lazy.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene((4, 4), seed=0)
    >>> mask = scene.s1.flood.otsu()
    >>> int((mask.flood.exclude(mask.x > mask.x[1]) == 255).sum())
    8
    """
    checked = layer(
        excluded,
        "the exclusion layer",
        low=0,
        high=1,
        integral=True,
        fix="give True where excluded",
    )
    # a pixel the layer does not cover (or marks invalid) is excluded too: nothing is known
    hide = align(checked, mask, "the exclusion layer").fillna(1) != 0
    if mask.dtype.kind == "f":
        return mask.where(~hide)
    return mask.where(~hide, NODATA).astype(mask.dtype).rio.write_nodata(NODATA)


def split_water(
    water: xr.DataArray,
    *,
    permanent: xr.DataArray | None = None,
    occurrence: xr.DataArray | None = None,
    occurrence_min: float = 90.0,
) -> xr.DataArray:
    """Water as flood (1) or permanent water (2); 0 not water, 255 nodata. Lazy.

    Permanent water is given as ``permanent``, a reference water mask (1 water, 0 dry: basin
    runs and ``floodxr map --reference`` write one), or as ``occurrence``, a surface-water
    occurrence in percent (JRC GSW's ``occurrence``), permanent from ``occurrence_min`` on.
    Either is on the water map's grid.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.terrain import split_water
    >>> water = xr.DataArray(np.array([[1, 1, 0, 255]], "uint8"), dims=("y", "x"))
    >>> before = xr.DataArray(np.array([[0, 1, 1, 0]], "uint8"), dims=("y", "x"))
    >>> split_water(water, permanent=before).values.tolist()
    [[1, 2, 0, 255]]
    """
    if (permanent is None) == (occurrence is None):
        raise InvalidOptionError("give permanent= (a water mask) or occurrence= (in percent)")
    number(occurrence_min, "occurrence_min", above=0)
    checked = checked_mask(water)
    if permanent is not None:
        reference = align(
            layer(
                permanent,
                "the reference water mask",
                low=0,
                high=1,
                integral=True,
                fix="give 1 for water, 0 for dry (threshold a probability first: p >= 0.5)",
            ),
            water,
            "the reference water mask",
        )
        always = reference == 1
    else:
        reference = align(
            layer(
                occurrence,
                "the water occurrence",
                low=0,
                high=100,
                fix="give the occurrence in percent (JRC GSW's occurrence band)",
            ),
            water,
            "the water occurrence",
        )
        always = reference >= occurrence_min
    is_water = checked == 1
    classes = xr.where(is_water & always, PERMANENT, xr.where(is_water, FLOOD, 0))
    # water where the reference saw nothing is neither flood nor permanent: nodata
    seen = (checked == 0) | (is_water & reference.notnull())
    out = xr.where(seen, classes, NODATA).astype("uint8").rename("water_class")
    out.attrs = {"flag_values": [0, 1, 2], "flag_meanings": "not_water flood permanent_water"}
    out = out.rio.write_nodata(NODATA)
    return out.rio.write_crs(water.rio.crs) if water.rio.crs is not None else out
