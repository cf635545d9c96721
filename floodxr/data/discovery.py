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

__all__ = ["WELL_KNOWN", "describe", "discover", "is_data_asset", "unit_kind"]

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


#: Media types of pictures and documents, never of the bands floodxr reads.
_NOT_DATA_TYPES = (
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "text/",
    "application/json",
    "application/xml",
    "application/geo+json",
    "application/pdf",
)
#: Roles of assets that only show the data.
_PICTURE_ROLES = {"thumbnail", "overview", "visual", "preview"}


def is_data_asset(fields: Mapping[str, Any]) -> bool:
    """Whether STAC asset ``fields`` can hold a band: not a picture or a document by its media
    type (``type``), and not only a thumbnail, overview or quicklook by its ``roles``.

    Examples
    --------
    >>> from floodxr.data.discovery import is_data_asset
    >>> is_data_asset({"type": "image/tiff; application=geotiff; profile=cloud-optimized"})
    True
    >>> is_data_asset({"type": "image/png", "roles": ["overview"]})
    False
    """
    media = str(fields.get("type") or "").lower()
    if media.startswith(_NOT_DATA_TYPES):
        return False
    roles = {str(r).lower() for r in fields.get("roles") or []}
    return "data" in roles or not roles & _PICTURE_ROLES


def unit_kind(unit: Any) -> str | None:
    """``"dB"``, ``"linear"`` or None (no unit, or one floodxr does not know) for a
    ``raster:bands`` ``unit``."""
    text = str(unit or "").strip().lower()
    return "dB" if text in _DB_UNITS else "linear" if text in _LINEAR_UNITS else None


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
        if not is_data_asset(fields):
            continue  # a quicklook that names its polarisation is still a picture
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
    other = unit_kind(_raster(assets[found["vh"]]).get("unit"))
    data_type = str(raster.get("data_type", "")).lower()
    units = unit_kind(raster.get("unit"))
    if units is not None and other is not None and units != other:
        raise InvalidOptionError(
            f"collection {collection!r}: its VV asset {found['vv']!r} is in {units}, its VH "
            f"asset {found['vh']!r} in {other} (raster:bands unit): contradictory metadata; "
            "describe it: collection=floodxr.data.stac.Collection("
            f"{collection!r}, assets={found}, units=...)"
        )
    if units is None and data_type.startswith(("uint", "int")):
        units = "amplitude"  # integer GRD digital numbers: refused at load with the reason
    elif units is None:
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
        if not is_data_asset(fields):
            continue
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
