"""Catalogue profiles: where a STAC API keeps the Sentinel-1 / Sentinel-2 bands floodxr reads.

A :class:`Catalog` names an API and its Sentinel collections; a :class:`Collection` says how one
collection stores its bands (asset keys, units, nodata, scale). :data:`CATALOGS` holds the named
profiles; :func:`collection_for` picks the profile a search uses, :func:`profile_for_items` the
one plain items (not from a search) match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pystac

from floodxr.bands import S2_PAPER_BANDS
from floodxr.errors import InvalidOptionError

__all__ = [
    "CATALOGS",
    "Catalog",
    "Collection",
    "collection_for",
    "get_catalog",
    "profile_for_items",
]

Kind = Literal["s1", "s2"]


@dataclasses.dataclass(frozen=True)
class Collection:
    """How one STAC collection stores the bands floodxr reads.

    Parameters
    ----------
    id : the collection id in the STAC API
    assets : floodxr band name -> asset key, e.g. ``{"vv": "vv", "vh": "vh"}`` or
        ``{"B02": "blue", ...}``
    units : Sentinel-1: ``"dB"``, ``"linear"`` (power: sigma0 / gamma0) or ``"amplitude"``
        (uncalibrated GRD digital numbers, which floodxr refuses to load); Sentinel-2:
        ``"reflectance"``
    nodata : value that marks missing pixels in the files when they do not declare it
    scale, offset : applied after ``rescale``; Sentinel-2 must end in reflectance x 10 000
    rescale : first apply the items' ``raster:bands`` scale and offset (stackstac's ``rescale``)
    baseline_offset : Sentinel-2 L2A: subtract the +1000 offset that ESA adds from processing
        baseline 04.00 on (read from ``s2:processing_baseline``), so all dates are comparable

    Examples
    --------
    >>> from floodxr.data.stac import Collection
    >>> Collection("my-s1", {"vv": "VV", "vh": "VH"}, units="dB").units
    'dB'
    """

    id: str
    assets: Mapping[str, str]
    units: Literal["dB", "linear", "amplitude", "reflectance"]
    nodata: float | None = None
    scale: float = 1.0
    offset: float = 0.0
    rescale: bool = False
    baseline_offset: bool = False

    def __post_init__(self) -> None:
        if self.units not in ("dB", "linear", "amplitude", "reflectance"):
            raise InvalidOptionError(
                f"Collection {self.id!r}: units must be 'dB', 'linear', 'amplitude' or "
                f"'reflectance', got {self.units!r}"
            )
        object.__setattr__(self, "assets", dict(self.assets))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Catalog:
    """A STAC API and the Sentinel-1 / Sentinel-2 collections floodxr reads from it.

    Parameters
    ----------
    name : a short name (``"planetary-computer"``)
    url : the API root
    s1, s2 : the collections; None when the API has none
    sign : ``"planetary-computer"`` to sign asset hrefs with the ``planetary-computer`` package
        (when installed; ``pip install floodxr[planetary]``) so that they can be read; only
        applied when ``url`` is the Planetary Computer's
    """

    name: str
    url: str
    s1: Collection | None = None
    s2: Collection | None = None
    sign: Literal["planetary-computer"] | None = None

    def with_url(self, url: str) -> Catalog:
        """The same profile at another address (a mirror, a proxy, a loopback test server)."""
        return dataclasses.replace(self, url=url)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalog:
        collections = {k: Collection(**data[k]) if data.get(k) else None for k in ("s1", "s2")}
        return cls(**{**data, **collections})


_S2_KEYS = {b: b for b in S2_PAPER_BANDS}

#: The named catalog profiles.
CATALOGS: Mapping[str, Catalog] = {
    "planetary-computer": Catalog(
        name="planetary-computer",
        url="https://planetarycomputer.microsoft.com/api/stac/v1",
        # RTC gamma0, linear power, float32 with -32768 for nodata
        s1=Collection("sentinel-1-rtc", {"vv": "vv", "vh": "vh"}, units="linear", nodata=-32768),
        s2=Collection(
            "sentinel-2-l2a", _S2_KEYS, units="reflectance", nodata=0, baseline_offset=True
        ),
        sign="planetary-computer",
    ),
    "earth-search": Catalog(
        name="earth-search",
        url="https://earth-search.aws.element84.com/v1",
        # GRD digital numbers, not calibrated backscatter: searchable, not loadable
        s1=Collection("sentinel-1-grd", {"vv": "vv", "vh": "vh"}, units="amplitude", nodata=0),
        # raster:bands carry scale 1e-4 and offset -0.1 (baseline >= 04.00) per item
        s2=Collection(
            "sentinel-2-l2a",
            {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir"},
            units="reflectance",
            nodata=0,
            rescale=True,
            scale=10_000,
        ),
    ),
    "copernicus": Catalog(
        name="copernicus",
        url="https://stac.dataspace.copernicus.eu/v1",
        s1=Collection("sentinel-1-grd", {"vv": "VV", "vh": "VH"}, units="amplitude", nodata=0),
        s2=Collection(
            "sentinel-2-l2a",
            {"B02": "B02_10m", "B03": "B03_10m", "B04": "B04_10m", "B08": "B08_10m"},
            units="reflectance",
            nodata=0,
            baseline_offset=True,
        ),
    ),
}


def get_catalog(name_or_url: str | Catalog, **replace: Any) -> Catalog:
    """A catalog profile by name or URL, optionally with fields replaced.

    A URL that is not one of :data:`CATALOGS` gives a profile without collections: pass
    ``s1=`` / ``s2=`` (:class:`Collection`), or ``collection=`` to the search functions.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> stac.get_catalog("planetary-computer").s1.id
    'sentinel-1-rtc'
    >>> stac.get_catalog("planetary-computer", url="http://127.0.0.1:8000").url
    'http://127.0.0.1:8000'
    >>> stac.get_catalog("https://example.org/stac").s1 is None
    True
    """
    if isinstance(name_or_url, Catalog):
        found = name_or_url
    elif name_or_url in CATALOGS:
        found = CATALOGS[name_or_url]
    elif "://" in name_or_url:
        known = [c for c in CATALOGS.values() if c.url.rstrip("/") == name_or_url.rstrip("/")]
        found = known[0] if known else Catalog(name=name_or_url, url=name_or_url)
    else:
        raise InvalidOptionError(
            f"unknown catalog {name_or_url!r}; use one of {sorted(CATALOGS)}, a STAC API URL, "
            "or a floodxr.data.stac.Catalog"
        )
    return dataclasses.replace(found, **replace) if replace else found


def collection_for(
    cat: Catalog,
    kind: Kind,
    collection: str | Collection | None,
) -> Collection | None:
    """The collection a search of ``kind`` in ``cat`` reads: ``collection`` or the profile's;
    None when the catalogue's profile does not describe it (then it is discovered from the
    API: :mod:`floodxr.data.discovery`)."""
    profile = getattr(cat, kind)
    if isinstance(collection, Collection):
        return collection
    if profile is not None and collection in (None, profile.id):
        return profile
    return None


def profile_for_items(items: Sequence[pystac.Item], kind: Kind) -> Collection:
    """The named profile whose collection id and asset keys ``items`` carry."""
    ids = sorted({str(i.collection_id) for i in items})
    for cat in CATALOGS.values():
        profile = getattr(cat, kind)
        if (
            profile is not None
            and profile.id in ids
            and all(all(k in i.assets for k in profile.assets.values()) for i in items)
        ):
            return profile
    raise InvalidOptionError(
        f"cannot tell how collection(s) {ids} store their bands; pass collection="
        "floodxr.data.stac.Collection(id, assets={band: asset key}, units=...)"
    )
