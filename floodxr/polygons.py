"""Water and flood masks as polygons: a GeoDataFrame in the mask's CRS, one row per water body.

:func:`to_polygons` reads a mask chunk group by chunk group (any size, dask or numpy), traces
the water pixels (1) of each group with :func:`rasterio.features.shapes` (4-connected, pixel
edges exact), keeps the polygons that lie inside their group and merges those that touch a
group's inner edge with their neighbours across it, so a lake crossing chunk borders is one
polygon. Nodata (255, NaN, the declared nodata) is never water. Each polygon's ``area_km2``
follows :func:`floodxr.grid.geometry_area_km2`, the rule of ``.flood.area_km2()``, so the
polygons' total equals the mask's area. :func:`floodxr.writers.to_vector` writes them.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from affine import Affine

from floodxr._valid import number, require_spatial
from floodxr.errors import MissingDimensionError
from floodxr.grid import geometry_area_km2
from floodxr.grid import transform as grid_of
from floodxr.metrics import checked_mask
from floodxr.writers import block_regions, progress_over

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["to_polygons"]


def to_polygons(
    mask: xr.DataArray, *, min_area_m2: float = 0.0, simplify: float | None = None
) -> gpd.GeoDataFrame:
    """The water (1) of a floodxr mask as polygons with their area (computes the mask).

    Parameters
    ----------
    mask : ``(..., y, x)`` water mask: 1 water, 0 not water, nodata (255, NaN or declared);
        one set of polygons per index of the leading dims (a ``time`` column, say)
    min_area_m2 : drop polygons smaller than this (m², after merging across chunks)
    simplify : Douglas-Peucker tolerance in the CRS's units (topology kept); None keeps the
        pixel edges exactly

    Returns
    -------
    geopandas.GeoDataFrame
        ``geometry`` (Polygon) and ``area_km2`` (float), plus one column per leading dim; the
        mask's CRS; sorted by area, largest first.

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene((200, 200), seed=0, chunks=64)
    >>> polygons = scene.water.flood.to_polygons(min_area_m2=1000)
    >>> len(polygons), polygons.crs.to_epsg()
    (1, 32633)
    >>> round(float(polygons.area_km2.sum() / scene.water.flood.area_km2()), 4)
    1.0
    """
    import geopandas as gpd

    require_spatial(mask)
    if mask.rio.crs is None:
        raise MissingDimensionError(
            "polygons need a CRS; set one with mask.rio.write_crs('EPSG:32633')"
        )
    number(min_area_m2, "min_area_m2", minimum=0)
    if simplify is not None:
        number(simplify, "simplify", minimum=0)
    checked = checked_mask(mask)
    crs = mask.rio.crs
    transform = grid_of(mask)  # from the coordinates, never a stale GeoTransform
    leading = [d for d in mask.dims if d not in ("y", "x")]
    frames = []
    for index in itertools.product(*(range(mask.sizes[d]) for d in leading)):
        plane = checked.isel(dict(zip(leading, index, strict=True)))
        shapes = _trace(plane, transform)
        if simplify:
            shapes = [s.simplify(simplify, preserve_topology=True) for s in shapes]
        area = geometry_area_km2(shapes, crs)
        keep = area * 1e6 >= min_area_m2
        columns: dict[str, Any] = {
            str(d): [mask[d].values[i] if d in mask.coords else i] * int(keep.sum())
            for d, i in zip(leading, index, strict=True)
        }
        frames.append(
            gpd.GeoDataFrame(
                {**columns, "area_km2": area[keep]},
                geometry=[s for s, k in zip(shapes, keep, strict=True) if k],
                crs=crs.to_wkt(),
            )
        )
    frame = gpd.GeoDataFrame(
        frames[0] if len(frames) == 1 else gpd.pd.concat(frames, ignore_index=True),
        crs=crs.to_wkt(),
    )
    return frame.sort_values("area_km2", ascending=False, ignore_index=True)


def _trace(plane: xr.DataArray, transform: Affine) -> list[Any]:
    """Water polygons of a ``(y, x)`` mask, traced region by region and merged across the
    regions' inner edges."""
    import shapely
    from rasterio.features import shapes
    from shapely.geometry import shape

    ny, nx = plane.sizes["y"], plane.sizes["x"]
    inside: list[Any] = []
    crossing: list[Any] = []
    regions = list(block_regions(plane))
    for region in progress_over(regions, "polygons"):
        rows, cols = region.get("y", slice(0, ny)), region.get("x", slice(0, nx))
        values = np.asarray(plane.isel(y=rows, x=cols).values)
        water = (values == 1).astype("uint8")
        if not water.any():
            continue
        start = transform * Affine.translation(cols.start or 0, rows.start or 0)
        edges = (rows.start or 0) > 0, (cols.stop or nx) < nx, (rows.stop or ny) < ny
        west_edge = (cols.start or 0) > 0
        height, width = water.shape
        for geometry, _ in shapes(water, mask=water.astype(bool), transform=start):
            polygon = shape(geometry)
            # pixel bounds of the polygon within the region: does it reach an inner edge?
            cells = _pixel_bounds(polygon, start)
            touches = (
                (edges[0] and cells[1] <= 0)
                or (edges[1] and cells[2] >= width)
                or (edges[2] and cells[3] >= height)
                or (west_edge and cells[0] <= 0)
            )
            (crossing if touches else inside).append(polygon)
    if crossing:
        merged = shapely.union_all(crossing)
        inside.extend(shapely.get_parts(merged).tolist())
    return inside


def _pixel_bounds(polygon: Any, transform: Affine) -> tuple[int, int, int, int]:
    """(first column, first row, column after the last, row after the last) of ``polygon``."""
    west, south, east, north = polygon.bounds
    inverse = ~transform
    c0, r0 = inverse * (west, north)
    c1, r1 = inverse * (east, south)
    return (
        round(min(c0, c1)),
        round(min(r0, r1)),
        round(max(c0, c1)),
        round(max(r0, r1)),
    )
