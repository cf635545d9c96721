"""The output grid of a set of STAC items: their projection metadata, the CRS, resolution and
bounds a cube of them gets (a :class:`odc.geo.geobox.GeoBox` from :func:`floodxr.grid.snapped`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from odc.geo.geobox import GeoBox

from floodxr.errors import InvalidOptionError, NoItemsError
from floodxr.grid import Bbox, snapped, utm_epsg
from floodxr.grid import transform as grid_of

__all__ = ["epsg_of", "output_grid", "require_overlap", "stackstac_dict"]


def epsg_of(item: pystac.Item | Mapping[str, Any]) -> int | None:
    props = item.properties if isinstance(item, pystac.Item) else item
    if props.get("proj:epsg") is not None:
        return int(props["proj:epsg"])
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    return None


def stackstac_dict(item: pystac.Item) -> dict[str, Any]:
    """The item as a dict that stackstac 0.5 reads: ``proj:epsg`` restored from ``proj:code``."""
    # a deep copy: to_dict shares the item's own properties dict, which must stay untouched
    data = copy.deepcopy(item.to_dict(transform_hrefs=False))
    for holder in [data["properties"], *data.get("assets", {}).values()]:
        epsg = epsg_of(holder)
        if epsg is not None:
            holder["proj:epsg"] = epsg
    return data


@dataclasses.dataclass(frozen=True)
class _Proj:
    """An item's grid as its projection metadata gives it (asset fields override the item's)."""

    epsg: int | None
    transform: Affine | None
    shape: tuple[int, int] | None

    @classmethod
    def of(cls, item: pystac.Item, key: str) -> _Proj:
        asset = item.assets[key].extra_fields if key in item.assets else {}
        merged = {**item.properties, **{k: v for k, v in asset.items() if k.startswith("proj:")}}
        transform = merged.get("proj:transform")
        shape = merged.get("proj:shape")
        return cls(
            epsg=epsg_of(merged),
            transform=Affine(*transform[:6]) if transform else None,
            shape=(int(shape[0]), int(shape[1])) if shape else None,
        )

    @property
    def bounds(self) -> Bbox | None:
        if self.transform is None or self.shape is None:
            return None
        t, (rows, cols) = self.transform, self.shape
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)


def require_overlap(bbox: Bbox, items: list[pystac.Item]) -> None:
    west, south, east, north = bbox
    boxes = [i.bbox for i in items if i.bbox is not None]
    if boxes and not any(
        b[0] < east and west < b[2] and b[1] < north and south < b[3] for b in boxes
    ):
        raise NoItemsError(
            f"bbox {bbox} does not overlap any of the {len(items)} items (together they cover "
            f"{_union_bbox(items)}); the map would be all nodata: pass the bbox you searched "
            "with, or search this area"
        )


def _union_bbox(items: list[pystac.Item]) -> Bbox:
    boxes = np.array([i.bbox for i in items if i.bbox is not None], dtype="float64")
    return (
        float(boxes[:, 0].min()),
        float(boxes[:, 1].min()),
        float(boxes[:, 2].max()),
        float(boxes[:, 3].max()),
    )


def output_grid(
    items: list[pystac.Item],
    key: str,
    resolution: float | None,
    crs: int | str | None,
    bounds: Bbox | None,
    bbox: Bbox | None,
    like: xr.DataArray | None,
) -> GeoBox:
    """The output grid of ``items`` (``key``: the first asset loaded): ``like``'s grid, or
    ``bounds`` / ``bbox`` / the items' footprint in ``crs`` (default the items' own, else the UTM
    zone of the area's centre) grown to whole pixels of ``resolution`` (default the items')."""
    if like is not None:
        transform, epsg = grid_of(like), like.rio.crs.to_epsg()
        if transform.b or transform.d or transform.a != -transform.e or transform.a < 0:
            raise InvalidOptionError(
                "like= must be on a north-up grid with square pixels (y descending, x "
                "ascending): pass floodxr.grid.oriented(like)[0]"
            )
        return GeoBox((like.sizes["y"], like.sizes["x"]), transform, f"EPSG:{epsg}")
    projs = [_Proj.of(item, key) for item in items]
    epsgs = {p.epsg for p in projs}
    if crs is not None:
        from pyproj import CRS

        epsg = CRS.from_user_input(crs).to_epsg()
        if epsg is None:
            raise InvalidOptionError(f"crs {crs!r} has no EPSG code; give an EPSG code")
    elif len(epsgs) == 1 and None not in epsgs:
        epsg = int(next(iter(epsgs)))  # type: ignore[arg-type]
    else:
        west, south, east, north = bbox if bbox is not None else _union_bbox(items)
        epsg = utm_epsg((west + east) / 2, (south + north) / 2)
    native = [p for p in projs if p.epsg == epsg and p.transform is not None]
    if resolution is None:
        known = native or [p for p in projs if p.transform is not None and epsg != 4326]
        if not known:
            raise InvalidOptionError(
                f"the items give no resolution on EPSG:{epsg}; pass resolution= (in the CRS's "
                "units, e.g. 10 for metres)"
            )
        resolution = abs(known[0].transform.a)  # type: ignore[union-attr]
    # pixels are read as stored when the output grid is the items' own grid
    grid = next((p.transform for p in native if math.isclose(abs(p.transform.a), resolution)), None)  # type: ignore[union-attr]
    if bounds is None:
        own = [p.bounds for p in native]
        if bbox is None and len(epsgs) == 1 and own and None not in own:
            array = np.array(own, dtype="float64")
            bounds = (
                float(array[:, 0].min()),
                float(array[:, 1].min()),
                float(array[:, 2].max()),
                float(array[:, 3].max()),
            )
        else:
            from pyproj import Transformer

            west, south, east, north = bbox if bbox is not None else _union_bbox(items)
            to_grid = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
            bounds = to_grid.transform_bounds(west, south, east, north, densify_pts=21)
    return snapped(tuple(bounds), f"EPSG:{epsg}", float(resolution), like=grid)  # type: ignore[arg-type]
