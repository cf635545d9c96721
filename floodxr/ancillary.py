"""The layers a pass is mapped with besides its radar: a DEM, a land cover, a water occurrence.

``floodxr map`` and basin runs read them from the same STAC API as the radar when it offers
them (:data:`DEFAULTS`: the Planetary Computer's ids), from another collection id, or from a
local raster file, and turn them into a pass's exclusion flags (:func:`exclusion`, via
:func:`floodxr.terrain.flags`) and reference water (:func:`occurrence_reference`), both lazy
on the pass's grid. Terrain is computed at the DEM's own resolution
(:data:`TERRAIN_RESOLUTION`, 30 m for Copernicus GLO-30; a 10 m pass reads a third of the
pixels a side) in tiles of :data:`TERRAIN_TILE` pixels on one lattice of the CRS, each with
:data:`floodxr.terrain.HAND_OVERLAP` pixels of DEM around it, then laid on the pass's pixels:
a pixel's flags depend on the DEM around it only, never on the area asked for, so a map and
a basin run flag the same pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr.bands import NODATA
from floodxr.errors import InvalidOptionError
from floodxr.grid import north_up, template, transform

__all__ = [
    "DEFAULTS",
    "TERRAIN_RESOLUTION",
    "Source",
    "exclusion",
    "occurrence_reference",
    "read",
    "resolve",
]

Kind = Literal["dem", "occurrence", "landcover", "hand"]

#: Per layer: the collection id looked for by default, the asset read, the resampling.
DEFAULTS: dict[str, tuple[str, str | None, str]] = {
    "dem": ("cop-dem-glo-30", None, "bilinear"),
    "occurrence": ("jrc-gsw", "occurrence", "nearest"),
    "landcover": ("esa-worldcover", "map", "nearest"),
    # a precomputed height above nearest drainage: no well-known collection, by option only
    "hand": ("", None, "bilinear"),
}

#: Pixel size (m) terrain is computed at: Copernicus DEM GLO-30's; finer passes get each
#: terrain pixel's flags on the pass pixels inside it.
TERRAIN_RESOLUTION = 30.0
#: Side (terrain pixels) of the tiles terrain is computed in, on a lattice from the CRS's
#: origin (30.72 km at 30 m).
TERRAIN_TILE = 1024


@dataclass(frozen=True)
class Source:
    """Where one ancillary layer comes from: a collection of the catalogue, or a file."""

    kind: str
    collection: str | None = None
    path: str | None = None
    asset: str | None = None

    def record(self) -> str:
        """How the outputs' metadata names it."""
        if self.path is not None:
            return f"file {self.path}"
        return f"collection {self.collection}" + (f" (asset {self.asset})" if self.asset else "")


@functools.lru_cache(maxsize=16)
def _offered(url: str, sign: str | None) -> frozenset[str]:
    from floodxr.data.catalogs import Catalog
    from floodxr.data.client import api_errors, open_client

    client = open_client(Catalog(name=url, url=url, sign=sign))  # type: ignore[arg-type]
    with api_errors(url, "list its collections"):
        return frozenset(c.id for c in client.get_collections())


def resolve(kind: Kind, choice: Any, catalog: Any) -> Source | None:
    """The source of ``kind``: ``choice`` None takes :data:`DEFAULTS`' collection when the
    catalogue offers it (else nothing); False: nothing; a path of an existing file: that file;
    any other text: that collection, which the catalogue must offer.

    Examples
    --------
    >>> from floodxr.ancillary import resolve
    >>> resolve("dem", False, "planetary-computer") is None
    True
    """
    from floodxr.data.catalogs import get_catalog

    if kind not in DEFAULTS:
        raise InvalidOptionError(f"kind must be one of {sorted(DEFAULTS)}, got {kind!r}")
    if choice is False:
        return None
    default, asset, _ = DEFAULTS[kind]
    if choice is None and not default:
        return None
    if isinstance(choice, (str, Path)) and Path(choice).is_file():
        return Source(kind, path=str(Path(choice).resolve()))
    if isinstance(choice, Path):
        raise InvalidOptionError(f"no file {str(choice)!r} for the {kind}; give an existing raster")
    if choice is not None and not isinstance(choice, str):
        raise InvalidOptionError(
            f"the {kind} must be a collection id or a file path, got {type(choice).__name__}"
        )
    cat = get_catalog(catalog)
    offered = _offered(cat.url, cat.sign)
    wanted = default if choice is None else choice
    if wanted not in offered:
        if choice is None:
            return None  # the catalogue has none: mapped without it, and the outputs say so
        looks_like_a_file = "/" in choice or Path(choice).suffix != ""
        raise InvalidOptionError(
            f"{cat.url!r} offers no collection {choice!r} for the {kind} (it offers "
            f"{sorted(offered)})"
            + (", and there is no file of that name" if looks_like_a_file else "")
            + "; give one of them, a local raster file, or leave the option out"
        )
    return Source(kind, collection=wanted, asset=asset if wanted == default else None)


def read(source: Source, like: xr.DataArray, catalog: Any) -> xr.DataArray:
    """``source`` on ``like``'s grid (lazy; NaN where it has no valid pixel)."""
    from floodxr.data.load import load_layer

    resampling = DEFAULTS[source.kind][2]
    if source.path is None:
        assert source.collection is not None  # resolve() gives one or the other
        return load_layer(
            source.collection,
            like=like,
            catalog=catalog,
            asset=source.asset,
            resampling=resampling,  # type: ignore[arg-type]
        )
    import rioxarray
    from odc.geo.xr import xr_reproject

    from floodxr._valid import masked

    opened = rioxarray.open_rasterio(source.path, chunks=2048)
    if not isinstance(opened, xr.DataArray) or opened.sizes.get("band", 1) != 1:
        raise InvalidOptionError(f"{source.path!r} must hold one raster band for the {source.kind}")
    if opened.rio.crs is None:
        raise InvalidOptionError(f"{source.path!r} has no CRS; give a georeferenced raster")
    values = masked(opened.squeeze("band", drop=True)).astype("float32")
    geobox = _geobox(like)
    laid = xr_reproject(values, geobox, resampling=resampling, dst_nodata=np.nan)
    laid = laid.assign_coords(y=like["y"].values, x=like["x"].values)
    laid = laid.drop_vars([c for c in laid.coords if c not in ("y", "x")])
    return laid.rio.write_crs(like.rio.crs).rename(source.kind)


def _geobox(like: xr.DataArray) -> Any:
    from odc.geo.geobox import GeoBox

    return GeoBox((like.sizes["y"], like.sizes["x"]), transform(like), like.rio.crs)


def _lattice(
    like: xr.DataArray, pixel: float, margin: int, anchor: tuple[float, float] = (0.0, 0.0)
) -> tuple[xr.DataArray, float, float]:
    """A lazy template of ``pixel`` m on the lattice of :data:`TERRAIN_TILE` tiles from
    ``anchor`` (x, y) that covers ``like`` in whole tiles plus ``margin`` pixels around,
    chunked one tile each (the margins their own chunks); and where ``like``'s top-left corner
    lies in it, in ``like``'s pixels (row, column)."""
    grid = transform(like)
    step = abs(grid.a)
    west, north = grid.c - anchor[0], grid.f - anchor[1]
    east, south = west + like.sizes["x"] * step, north - like.sizes["y"] * step
    side = TERRAIN_TILE * pixel
    x0 = math.floor(west / side + 1e-9) * side - margin * pixel
    y0 = math.ceil(north / side - 1e-9) * side + margin * pixel
    nx = round((math.ceil(east / side - 1e-9) * side + margin * pixel - x0) / pixel)
    ny = round((y0 - (math.floor(south / side + 1e-9) * side - margin * pixel)) / pixel)
    box = north_up((ny, nx), (x0 + anchor[0], y0 + anchor[1]), pixel, like.rio.crs)

    def cut(n: int) -> tuple[int, ...]:
        inner = [TERRAIN_TILE] * ((n - 2 * margin) // TERRAIN_TILE)
        return tuple(c for c in (margin, *inner, margin) if c)

    out = template(box, TERRAIN_TILE).chunk({"y": cut(ny), "x": cut(nx)})
    return out, (y0 - north) / step, (west - x0) / step


def _whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-6


def _finer(
    coarse: xr.DataArray, like: xr.DataArray, factor: int, at: tuple[int, int]
) -> xr.DataArray:
    """Each pixel of ``coarse`` repeated on the ``factor`` x ``factor`` pixels of ``like``
    inside it, ``like``'s top-left pixel at fine offset ``at`` (row, column) (lazy)."""
    data = coarse.data if isinstance(coarse.data, dsa.Array) else dsa.from_array(coarse.data)
    data = dsa.repeat(dsa.repeat(data, factor, axis=0), factor, axis=1)
    data = data[at[0] : at[0] + like.sizes["y"], at[1] : at[1] + like.sizes["x"]]
    return xr.DataArray(
        data, dims=("y", "x"), coords={"y": like["y"].values, "x": like["x"].values}
    ).rio.write_crs(like.rio.crs)


def exclusion(
    like: xr.DataArray,
    *,
    dem: Source | None,
    landcover: Source | None,
    orbit_state: str | None,
    catalog: Any,
    hand_max_m: float = 15.0,
    hand: Source | None = None,
) -> xr.DataArray | None:
    """The exclusion flags (:func:`floodxr.terrain.flags`) of a pass on ``like``'s north-up grid
    from the sources given (None: none given); no shadow or layover without an
    ``orbit_state``. With a precomputed ``hand`` layer the DEM gives shadow and layover only
    (:func:`floodxr.terrain.hand_flags`). Lazy."""
    from floodxr import terrain

    parts = []
    if hand is not None:
        parts.append(terrain.hand_flags(read(hand, like, catalog), hand_max_m=hand_max_m))
    if dem is not None:
        grid = transform(like)
        step = abs(grid.a)
        factor = max(1, math.floor(TERRAIN_RESOLUTION / step + 1e-9))
        margin = terrain.HAND_OVERLAP
        lattice, row, col = _lattice(like, step * factor, margin)
        if not _whole(row) or not _whole(col):
            # the pass's pixels straddle the CRS's lattice: terrain on the pass's own pixels
            factor = 1
            lattice, row, col = _lattice(like, step, margin, anchor=(grid.c, grid.f))
        height = read(dem, lattice, catalog).chunk(lattice.chunksizes)
        bits = terrain.flags(
            height,
            orbit_state=orbit_state,
            hand_max_m=None if hand is not None else hand_max_m,
            overlap=margin if hand is None else 1,
        )
        parts.append(_finer(bits, like, factor, (round(row), round(col))))
    if landcover is not None:
        parts.append(terrain.flags(landcover=read(landcover, like, catalog)))
    if not parts:
        return None
    bits = parts[0]
    for part in parts[1:]:
        bits = bits | part
    return bits.astype("uint8").rename("exclusion").rio.write_crs(like.rio.crs)


def occurrence_reference(
    like: xr.DataArray, *, occurrence: Source, catalog: Any, minimum: float = 50.0
) -> xr.DataArray:
    """Reference water from a surface-water occurrence (percent of observations, JRC GSW):
    1 where it reaches ``minimum``, 0 below, 255 where it is invalid. Lazy, on ``like``'s grid."""
    from floodxr._valid import layer, number

    number(minimum, "occurrence minimum (percent)", above=0)
    percent = layer(
        read(occurrence, like, catalog),
        "the water occurrence",
        low=0,
        high=100,
        fix="give the occurrence in percent (JRC GSW's occurrence band)",
    )
    codes = xr.where(percent.notnull(), percent >= minimum, NODATA).astype("uint8")
    return codes.rio.write_nodata(NODATA).rio.write_crs(like.rio.crs).rename("reference_water")
