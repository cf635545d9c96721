"""The synthetic scenes of a STAC world as other providers publish them (discovery tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from floodxr.testing.stac_world import StacWorld, iter_items, write_catalog

__all__ = ["PROVIDER_SHAPES", "write_provider_world"]

#: How other STAC providers publish the synthetic scenes (see :func:`write_provider_world`).
PROVIDER_SHAPES = ("earth-search", "copernicus", "custom", "ambiguous")


_EARTH_SEARCH_S2 = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}


_COMMON_NAME = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"}


def write_provider_world(root: str | Path, source: StacWorld, shape: str) -> StacWorld:
    """The synthetic Planetary-Computer-shaped scenes of ``source`` as another provider
    publishes them: the same COGs (hrefs unchanged), other collection ids, asset keys and
    metadata.

    ``"earth-search"``: ``sentinel-1-grd`` (vv/vh, uint16 digital numbers) and
    ``sentinel-2-l2a`` (blue/green/red/nir with ``raster:bands`` scale 1e-4, offset -0.1);
    ``"copernicus"``: ``sentinel-1-grd`` (VV/VH) and ``sentinel-2-l2a`` (B02_10m, ...);
    ``"custom"``: ``s1-gamma0`` (assets by ``sar:polarizations``, ``raster:bands`` unit linear)
    and ``s2-surface-reflectance`` (assets by ``eo:bands``), both with ``item_assets``;
    ``"ambiguous"``: ``s1-backscatter`` (float32 vv/vh, no unit, no ``item_assets``).

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> from floodxr.testing.stac_world import iter_items, write_stac_world
    >>> world = write_stac_world(tempfile.mkdtemp(), data_dir=SAMPLE_DIR)
    >>> other = write_provider_world(tempfile.mkdtemp(), world, "earth-search")
    >>> sorted({item["collection"] for item in iter_items(other)})
    ['sentinel-1-grd', 'sentinel-2-l2a']
    """
    if shape not in PROVIDER_SHAPES:
        raise ValueError(f"shape must be one of {PROVIDER_SHAPES}, got {shape!r}")
    root = Path(root)
    (root / "assets").mkdir(parents=True, exist_ok=True)
    items = []
    for item in iter_items(source):
        kind = {"sentinel-1-rtc": "s1", "sentinel-2-l2a": "s2"}.get(item["collection"])
        if kind is None or (shape == "ambiguous" and kind == "s2"):
            continue
        items.append(_as_provider(item, kind, shape))
    catalog = write_catalog(root / "stac", items, item_assets=shape == "custom")
    return StacWorld(
        root=root, catalog=catalog, assets=root / "assets", asset_base=source.asset_base
    )


def _as_provider(item: dict[str, Any], kind: str, shape: str) -> dict[str, Any]:
    item = json.loads(json.dumps(item))
    item.pop("links", None)
    old = item["assets"]
    if kind == "s1":
        keys = {
            "earth-search": {"vv": "vv", "vh": "vh"},
            "copernicus": {"vv": "VV", "vh": "VH"},
            "custom": {"vv": "gamma0_vv", "vh": "gamma0_vh"},
            "ambiguous": {"vv": "vv", "vh": "vh"},
        }[shape]
        item["collection"] = {"custom": "s1-gamma0", "ambiguous": "s1-backscatter"}.get(
            shape, "sentinel-1-grd"
        )
        raster = {
            "earth-search": {"data_type": "uint16", "nodata": 0},
            "copernicus": {"data_type": "uint16", "nodata": 0},
            "custom": {"data_type": "float32", "unit": "linear", "nodata": -32768},
            "ambiguous": {"data_type": "float32"},
        }[shape]
        item["assets"] = {
            keys[band]: {
                **old[band],
                "sar:polarizations": [band.upper()],
                "raster:bands": [raster],
            }
            for band in ("vv", "vh")
        }
    else:
        keys = {
            "earth-search": _EARTH_SEARCH_S2,
            "copernicus": {b: f"{b}_10m" for b in _COMMON_NAME},
            "custom": {b: f"band_{int(b[1:])}" for b in _COMMON_NAME},
        }[shape]
        item["collection"] = "s2-surface-reflectance" if shape == "custom" else "sentinel-2-l2a"
        scaled = {"scale": 0.0001, "offset": -0.1, "nodata": 0}
        item["assets"] = {
            keys[band]: {
                **old[band],
                "eo:bands": [{"name": band, "common_name": _COMMON_NAME[band]}],
                **({"raster:bands": [scaled]} if shape != "copernicus" else {}),
            }
            for band in _COMMON_NAME
        }
    return item
