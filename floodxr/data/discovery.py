"""How an unfamiliar STAC collection stores its bands, read from the collection itself.

For a catalogue floodxr has no profile of (a mirror, a self-hosted stac-fastapi, a private
archive), :func:`discover` finds the :class:`~floodxr.data.catalogs.Collection` to read:

1. a well-known collection id (``sentinel-1-rtc``, ``sentinel-1-grd``, ``sentinel-2-l2a``) with
   the asset keys of one of the named profiles is that profile, at any URL;
2. otherwise the collection's ``item_assets`` (or, without them, its first item's assets) say
   which asset holds which band (the key, ``sar:polarizations``, ``eo:bands`` common names) and
   in which units (``raster:bands``: ``unit``, ``nodata``, ``scale``, ``offset``, ``data_type``).

When that is truly ambiguous (Sentinel-1 float32 backscatter without a unit: dB or linear
power?), it asks for a ``Collection`` and says what it found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from floodxr.data.catalogs import CATALOGS, Collection, Kind
from floodxr.errors import InvalidOptionError

__all__ = ["WELL_KNOWN", "describe", "discover"]

#: Collection ids floodxr recognises at any URL, per kind, in the order it looks for them.
WELL_KNOWN: Mapping[str, tuple[str, ...]] = {
    "s1": ("sentinel-1-rtc", "sentinel-1-grd"),
    "s2": ("sentinel-2-l2a",),
}

_S2_NAMES = {
    "B02": ("b02", "b2", "blue", "b02_10m"),
    "B03": ("b03", "b3", "green", "b03_10m"),
    "B04": ("b04", "b4", "red", "b04_10m"),
    "B08": ("b08", "b8", "nir", "b08_10m"),
}
_DB_UNITS = {"db", "decibel", "decibels"}
_LINEAR_UNITS = {"linear", "power", "1", "linear power", "intensity"}


def discover(client: Any, kind: Kind, collection: str | None, url: str) -> Collection:
    """The collection of ``kind`` to read through ``client`` (an open pystac-client): the one
    named ``collection``, or the first well-known id the API serves."""
    if collection is None:
        served = {c.id for c in client.get_collections()}
        known = [c for c in WELL_KNOWN[kind] if c in served]
        if not known:
            raise InvalidOptionError(
                f"STAC API {url!r} serves none of the Sentinel-{kind[1]} collections floodxr "
                f"knows ({list(WELL_KNOWN[kind])}); it serves {sorted(served)}: pass "
                "collection='<id>'"
            )
        collection = known[0]
    return describe(collection, kind, _asset_metadata(client, collection, url))


def _asset_metadata(client: Any, collection: str, url: str) -> dict[str, dict[str, Any]]:
    """``item_assets`` of the collection, else the assets of its first item."""
    try:
        found = client.get_collection(collection)
    except Exception:  # pystac-client raises its own and requests' errors, or gives None
        found = None
    if found is None:
        served = sorted(c.id for c in client.get_collections())
        raise InvalidOptionError(
            f"STAC API {url!r} has no collection {collection!r}; it serves {served}"
        )
    item_assets = found.to_dict().get("item_assets") or {}
    if item_assets:
        return {k: dict(v) for k, v in item_assets.items()}
    first = next(iter(client.search(collections=[collection], max_items=1).items()), None)
    if first is None:
        raise InvalidOptionError(
            f"collection {collection!r} of {url!r} has no item_assets and no items, so floodxr "
            "cannot tell how it stores its bands"
        )
    return {k: a.to_dict() for k, a in first.assets.items()}


def describe(collection: str, kind: Kind, assets: Mapping[str, Mapping[str, Any]]) -> Collection:
    """The :class:`Collection` that reads ``assets`` (asset key -> STAC asset fields) of
    ``collection``.

    Examples
    --------
    >>> from floodxr.data.discovery import describe
    >>> describe("my-s1", "s1", {
    ...     "vv": {"raster:bands": [{"unit": "dB", "nodata": -9999}]},
    ...     "vh": {"raster:bands": [{"unit": "dB", "nodata": -9999}]}})
    Collection(id='my-s1', assets={'vv': 'vv', 'vh': 'vh'}, units='dB', nodata=-9999, ...)
    """
    keys = set(assets)
    for catalog in CATALOGS.values():
        profile = getattr(catalog, kind)
        if profile is not None and profile.id == collection:
            if set(profile.assets.values()) <= keys:
                return profile
    return _infer_s1(collection, assets) if kind == "s1" else _infer_s2(collection, assets)


def _raster(fields: Mapping[str, Any]) -> dict[str, Any]:
    bands = fields.get("raster:bands") or [{}]
    return dict(bands[0]) if isinstance(bands, list) and bands else {}


def _infer_s1(collection: str, assets: Mapping[str, Mapping[str, Any]]) -> Collection:
    found: dict[str, str] = {}
    for key, fields in assets.items():
        polarisations = [str(p).lower() for p in fields.get("sar:polarizations") or []]
        for band in ("vv", "vh"):
            if key.lower() == band or polarisations == [band]:
                found.setdefault(band, key)
    if set(found) != {"vv", "vh"}:
        raise InvalidOptionError(
            f"collection {collection!r}: cannot tell which assets hold VV and VH (assets "
            f"{sorted(assets)}; found {found}); describe it: collection=floodxr.data.stac."
            f"Collection({collection!r}, assets={{'vv': ..., 'vh': ...}}, units=...)"
        )
    raster = _raster(assets[found["vv"]])
    unit = str(raster.get("unit", "")).strip().lower()
    data_type = str(raster.get("data_type", "")).lower()
    if unit in _DB_UNITS:
        units = "dB"
    elif unit in _LINEAR_UNITS:
        units = "linear"
    elif data_type.startswith(("uint", "int")):
        units = "amplitude"  # integer GRD digital numbers: refused at load with the reason
    else:
        raise InvalidOptionError(
            f"collection {collection!r}: assets {found} hold Sentinel-1 backscatter "
            f"(data_type {data_type or 'unknown'}) without a unit in raster:bands, so floodxr "
            "cannot tell dB from linear power; describe it: collection=floodxr.data.stac."
            f"Collection({collection!r}, assets={found}, units='dB' or 'linear')"
        )
    return Collection(
        collection,
        found,
        units=units,  # type: ignore[arg-type]
        nodata=raster.get("nodata"),
        rescale="scale" in raster or "offset" in raster,
    )


def _infer_s2(collection: str, assets: Mapping[str, Mapping[str, Any]]) -> Collection:
    found: dict[str, str] = {}
    for key, fields in assets.items():
        names = {key.lower()}
        bands = fields.get("eo:bands") or []
        if len(bands) == 1:  # a one-band asset named by its eo:bands entry
            names |= {str(bands[0].get(f, "")).lower() for f in ("name", "common_name")}
        for band, aliases in _S2_NAMES.items():
            if names & set(aliases):
                found.setdefault(band, key)
    missing = [b for b in _S2_NAMES if b not in found]
    if missing:
        raise InvalidOptionError(
            f"collection {collection!r}: cannot find Sentinel-2 bands {missing} among assets "
            f"{sorted(assets)} (by key or eo:bands common_name); describe it: "
            f"collection=floodxr.data.stac.Collection({collection!r}, assets={{'B02': ..., "
            "...}, units='reflectance')"
        )
    raster = _raster(assets[found["B02"]])
    scaled = "scale" in raster and float(raster["scale"]) != 1.0
    return Collection(
        collection,
        found,
        units="reflectance",
        nodata=raster.get("nodata", 0),
        rescale=scaled,
        # raster:bands scale (1e-4) gives reflectance; floodxr's convention is x 10 000.
        # Without a scale the values are digital numbers: an L2A collection then carries the
        # +1000 offset of processing baseline 04.00 (read per item from s2:processing_baseline)
        scale=10_000 if scaled else 1.0,
        baseline_offset=not scaled and "l2a" in collection.lower(),
    )
