"""Search STAC APIs for Sentinel-1 / Sentinel-2 scenes and load them as lazy cubes.

The public face of floodxr's STAC code; each part lives in its own module:

* :mod:`floodxr.data.catalogs`: named catalogue profiles (:class:`Catalog`, :class:`Collection`)
  that know each collection's asset keys, units, nodata and scale;
* :mod:`floodxr.data.client`: retries with back-off and a timeout on every network call, and
  errors that say which URL failed and what to change;
* :mod:`floodxr.data.search`: :func:`search_s1` / :func:`search_s2`, returning a
  :class:`SearchResult` that carries its catalogue and collection; :func:`passes`;
* :mod:`floodxr.data.item_grid`: one grid for items from several UTM zones;
* :mod:`floodxr.data.load`: :func:`load_s1` / :func:`load_s2` (stackstac), so that every cube
  comes back the same way: Sentinel-1 ``vv``/``vh`` in dB, Sentinel-2 ``B02``/``B03``/``B04``/
  ``B08`` in reflectance x 10 000 as Sen1Floods11's chips, NaN nodata.

Pairing Sentinel-1 with Sentinel-2 lives in :mod:`floodxr.data.pairing`.
"""

from __future__ import annotations

from floodxr.data.catalogs import CATALOGS, Catalog, Collection, get_catalog
from floodxr.data.load import SCENE_PROPERTIES, load, load_s1, load_s2
from floodxr.data.search import (
    SearchResult,
    catalog_of,
    check_bbox,
    format_datetime,
    items_of,
    passes,
    search,
    search_s1,
    search_s2,
)
from floodxr.grid import Bbox, utm_epsg

__all__ = [
    "CATALOGS",
    "SCENE_PROPERTIES",
    "Bbox",
    "Catalog",
    "Collection",
    "SearchResult",
    "catalog_of",
    "check_bbox",
    "format_datetime",
    "get_catalog",
    "items_of",
    "load",
    "load_s1",
    "load_s2",
    "passes",
    "search",
    "search_s1",
    "search_s2",
    "utm_epsg",
]
