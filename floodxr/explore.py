"""Flood maps on an interactive web map in Jupyter: polygons and likelihood over a basemap.

:func:`explore` draws a flood (or water) mask's polygons and, optionally, its likelihood raster
on a `folium`_ (Leaflet) map, the library geopandas' own ``GeoDataFrame.explore`` uses: a map
is a plain HTML document that Jupyter shows inline and ``m.save("map.html")`` keeps. ``mask.
flood.explore()`` and :meth:`floodxr.mapping.FloodMap.explore` call it.

Leaflet's script and style come from a CDN unless ``leaflet=`` (or the ``FLOODXR_LEAFLET``
environment variable) names a folder holding ``leaflet.js`` and ``leaflet.css`` (they are then
written into the page, which works offline); basemap tiles come from ``tiles`` (None: no
basemap, nothing is fetched).

.. _folium: https://python-visualization.github.io/folium/
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from floodxr.bands import NODATA
from floodxr.errors import InvalidOptionError, WrongTypeError

if TYPE_CHECKING:
    import folium
    import geopandas as gpd

__all__ = ["explore"]

#: Longest side, in pixels, of the likelihood picture laid on the map.
PICTURE_PX = 1024


def explore(
    mask: xr.DataArray | None = None,
    *,
    polygons: gpd.GeoDataFrame | None = None,
    likelihood: xr.DataArray | None = None,
    tiles: str | None = "OpenStreetMap",
    leaflet: str | Path | None = None,
    name: str = "flood",
) -> folium.Map:
    """An interactive map of a flood: ``mask``'s polygons (or ``polygons``) in blue, and
    the ``likelihood`` (0-100, or a probability 0-1) as a semi-transparent raster.

    Parameters
    ----------
    mask : a floodxr mask (1 flood or water, 0 not, 255 nodata) with a CRS; its polygons are
        traced (:func:`floodxr.polygons.to_polygons`, computes)
    polygons : or polygons already traced (any CRS)
    likelihood : a likelihood (uint8 0-100, 255 nodata) or probability (float, NaN nodata)
        layer with a CRS
    tiles : a folium basemap name, or None for none
    leaflet : a folder with ``leaflet.js`` and ``leaflet.css`` to embed instead of the CDN's
        (default: ``$FLOODXR_LEAFLET`` when set)
    name : the polygons' layer name

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene((64, 64), seed=0)
    >>> m = scene.water.flood.explore(likelihood=scene.water * 100, tiles=None)
    >>> html = m.get_root().render()
    >>> "geo_json" in html and "image_overlay" in html
    True
    >>> dry = (scene.water * 0).astype("uint8").rio.write_nodata(255)  # no flood: no polygon
    >>> "geo_json" in dry.flood.explore(tiles=None).get_root().render()
    True
    """
    import folium

    from floodxr.polygons import to_polygons

    if mask is None and polygons is None:
        raise InvalidOptionError("give a mask (mask.flood.explore()) or polygons=")
    if mask is not None and not isinstance(mask, xr.DataArray):
        raise WrongTypeError(f"mask must be a DataArray, got {type(mask).__name__}")
    shapes = polygons if polygons is not None else to_polygons(mask)  # type: ignore[arg-type]
    if shapes.crs is None:
        raise InvalidOptionError("the polygons have no CRS; set one with gdf.set_crs(...)")
    shapes = shapes.to_crs("EPSG:4326")
    west, south, east, north = _bounds(shapes, mask, likelihood)
    m = folium.Map(tiles=tiles, control_scale=True)
    leaflet = leaflet or os.environ.get("FLOODXR_LEAFLET") or None
    if leaflet is not None:
        _embed_leaflet(m, Path(leaflet))
    m.fit_bounds([[south, west], [north, east]])
    if likelihood is not None:
        image, box = _picture(likelihood)
        folium.raster_layers.ImageOverlay(
            image, bounds=[[box[1], box[0]], [box[3], box[2]]], opacity=0.7, name="likelihood"
        ).add_to(m)
    # a tooltip needs a feature to read its fields from: none on a map without flood
    columns = [c for c in ("area_km2",) if c in shapes and not shapes.empty]
    folium.GeoJson(
        shapes[[*columns, "geometry"]],
        name=name,
        style_function=lambda _: {"color": "#08306b", "fillColor": "#2171b5", "weight": 1},
        tooltip=folium.GeoJsonTooltip(columns) if columns else None,
    ).add_to(m)
    folium.LayerControl().add_to(m)
    return m


def _bounds(shapes: Any, mask: Any, likelihood: Any) -> tuple[float, float, float, float]:
    """The lon/lat box to show: the layer's extent (the polygons' when there is no raster)."""
    layer = mask if mask is not None else likelihood
    if layer is not None and layer.rio.crs is not None:
        return tuple(layer.rio.transform_bounds("EPSG:4326"))
    if shapes.empty:
        raise InvalidOptionError("nothing to show: no polygons and no raster with a CRS")
    return tuple(shapes.total_bounds)


def _picture(likelihood: xr.DataArray) -> tuple[str, tuple[float, float, float, float]]:
    """The likelihood in lon/lat as a PNG data URL (a blue ramp, transparent where unknown or
    0), and its lon/lat box."""
    import matplotlib
    import matplotlib.image

    if likelihood.rio.crs is None:
        raise InvalidOptionError(
            "the likelihood has no CRS; set one with likelihood.rio.write_crs(...)"
        )
    step = max(1, -(-max(likelihood.sizes["y"], likelihood.sizes["x"]) // PICTURE_PX))
    small = likelihood.isel(y=slice(None, None, step), x=slice(None, None, step)).compute()
    values = small.values.astype("float32")
    if small.dtype.kind in "iu":
        values = np.where(values == NODATA, np.nan, values / 100.0)
    small = small.copy(data=values).rio.write_nodata(np.nan)
    lonlat = small.rio.reproject("EPSG:4326", nodata=np.nan)
    share = lonlat.values
    rgba = matplotlib.colormaps["Blues"](np.nan_to_num(share, nan=0.0))
    rgba[..., 3] = np.where(np.isfinite(share), np.clip(share, 0, 1), 0.0)
    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, rgba, format="png")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    return url, tuple(lonlat.rio.bounds())


def _embed_leaflet(m: Any, folder: Path) -> None:
    """Leaflet's script and style written into the page instead of fetched from a CDN."""
    import folium

    script, style = folder / "leaflet.js", folder / "leaflet.css"
    if not (script.is_file() and style.is_file()):
        raise InvalidOptionError(f"{str(folder)!r} must hold leaflet.js and leaflet.css")
    root = m.get_root()
    m.default_js = [(k, v) for k, v in m.default_js if k != "leaflet"]
    m.default_css = [(k, v) for k, v in m.default_css if k != "leaflet_css"]
    root.header.add_child(folium.Element(f"<style>{style.read_text()}</style>"), index=0)
    root.header.add_child(folium.Element(f"<script>{script.read_text()}</script>"), index=0)
