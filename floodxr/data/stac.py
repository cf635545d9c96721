"""Search STAC APIs for Sentinel-1 / Sentinel-2 scenes and load them as lazy cubes.

Searching goes through pystac-client, loading through stackstac; floodxr adds what flood mapping
needs on top: named catalog profiles that know each collection's asset keys, units, nodata and
scale, so that every cube comes back the same way (Sentinel-1 ``vv``/``vh`` in dB, Sentinel-2
``B02``/``B03``/``B04``/``B08`` in reflectance x 10 000 as Sen1Floods11's chips, NaN nodata);
one grid for items from several UTM zones; retries with back-off and a timeout on every network
call; errors that say which URL, item or asset failed and what to change.

Pairing Sentinel-1 with Sentinel-2 lives in :mod:`floodxr.data.pairing`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import functools
import math
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from rioxarray.rioxarray import affine_to_coords

from floodxr._valid import number
from floodxr.bands import S1_BANDS, S2_PAPER_BANDS
from floodxr.errors import (
    InvalidOptionError,
    MissingAssetError,
    NoItemsError,
    StacApiError,
    UnitsError,
    WrongTypeError,
)
from floodxr.options import OPTIONS
from floodxr.preprocess import to_db

__all__ = [
    "format_datetime",
    "check_bbox",
    "Collection",
    "Catalog",
    "CATALOGS",
    "get_catalog",
    "search",
    "search_s1",
    "search_s2",
    "load",
    "load_s1",
    "load_s2",
    "utm_epsg",
    "catalog_of",
    "items_of",
    "SCENE_PROPERTIES",
]

Bbox: TypeAlias = tuple[float, float, float, float]
Items: TypeAlias = "pystac.ItemCollection | Sequence[pystac.Item]"
S1Units = Literal["dB", "linear", "amplitude"]
_RETRY_STATUS = (429, 500, 502, 503, 504)
#: Item properties kept as per-scene coordinates of loaded cubes.
SCENE_PROPERTIES = (
    "platform",
    "sat:orbit_state",
    "sat:relative_orbit",
    "eo:cloud_cover",
    "s2:processing_baseline",
)
_EXTRA = "floodxr:collection"
_CATALOG = "floodxr:catalog"


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


# --------------------------------------------------------------------------------------------
# searching


def _client(cat: Catalog) -> Any:
    return _open_client(
        cat.url, cat.sign, OPTIONS["http_timeout"], OPTIONS["http_retries"], OPTIONS["http_backoff"]
    )


@functools.lru_cache(maxsize=16)
def _open_client(url: str, sign: str | None, timeout: float, retries: int, backoff: float) -> Any:
    """One client per API and network settings: pairing searches once per Sentinel-1 scene, and
    opening a client costs a request for the landing page."""
    import pystac_client
    from pystac_client.stac_api_io import StacApiIO
    from urllib3 import Retry

    retry = Retry(
        total=retries, backoff_factor=backoff, status_forcelist=_RETRY_STATUS, allowed_methods=None
    )
    io = StacApiIO(max_retries=retry, timeout=timeout)
    modifier = _signer(url, sign)
    with _api_errors(url, "open"):
        # Client.open resets the StacApiIO's timeout to its own argument: pass it again
        return pystac_client.Client.open(url, stac_io=io, modifier=modifier, timeout=timeout)


def _signer(url: str, sign: str | None) -> Any:
    # only the Planetary Computer's own storage needs tokens; a mirror or a test server does not
    if sign != "planetary-computer" or "planetarycomputer.microsoft.com" not in url:
        return None
    try:
        import planetary_computer
    except ImportError:
        from floodxr.errors import FloodxrWarning

        warnings.warn(
            "the Planetary Computer needs signed asset URLs and the 'planetary-computer' package "
            "is not installed: reading pixels will fail with HTTP 403; pip install "
            "planetary-computer",
            FloodxrWarning,
            stacklevel=6,
        )
        return None
    return planetary_computer.sign_inplace


@contextlib.contextmanager
def _api_errors(url: str, what: str) -> Iterator[None]:
    """Turn the network failures of pystac-client / requests into :class:`StacApiError`."""
    import requests
    from pystac_client.exceptions import APIError

    try:
        yield
    except (ValueError, KeyError, TypeError, AttributeError, pystac.STACError) as err:
        # json.JSONDecodeError is a ValueError: an HTML page, a proxy's error text, ...
        raise StacApiError(
            f"STAC API {url!r} gave an answer that is not STAC JSON when asked to {what} "
            f"({type(err).__name__}: {str(err)[:200]}); check that the URL is the API's root "
            "(its landing page is JSON with 'links'), not a web page or a static catalog file"
        ) from err
    except (requests.RequestException, APIError) as err:
        raise StacApiError(
            f"STAC API {url!r} failed to {what}: {_describe(err)}; check the URL "
            f"and your network; the request was retried {OPTIONS['http_retries']} "
            f"times with a {OPTIONS['http_timeout']} s timeout (floodxr."
            "set_options(http_timeout=..., http_retries=...) changes that)",
        ) from err


def _describe(err: BaseException) -> str:
    import requests

    # pystac-client re-raises requests' errors as APIError: look through the chain
    chain: list[BaseException] = []
    cause: BaseException | None = err
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain)
    if any(isinstance(c, requests.Timeout) for c in chain) or "timed out" in text:
        return f"no answer within {OPTIONS['http_timeout']} s"
    if any(isinstance(c, requests.ConnectionError) for c in chain) or (
        "Failed to establish a new connection" in text
    ):
        return "cannot connect (nothing answers at that address)"
    return str(err).strip().splitlines()[0][:300] if str(err).strip() else repr(err)


def _pick_collection(
    cat: Catalog,
    kind: Literal["s1", "s2"],
    collection: str | Collection | None,
) -> Collection:
    profile = getattr(cat, kind)
    if isinstance(collection, Collection):
        return collection
    if collection is None or (profile is not None and collection == profile.id):
        if profile is None:
            raise InvalidOptionError(
                f"catalog {cat.name!r} has no Sentinel-{kind[1]} collection profile; pass "
                f"collection=floodxr.data.stac.Collection('<id>', assets={{...}}, units=...)"
            )
        return profile
    raise InvalidOptionError(
        f"collection {collection!r} is not in the profile of catalog {cat.name!r}; describe it: "
        f"collection=floodxr.data.stac.Collection({collection!r}, assets={{band: asset key}}, "
        "units=...)"
    )


def format_datetime(datetime: Any) -> Any:
    """A STAC datetime (interval) checked and written as the API expects it, or a named error.

    Examples
    --------
    >>> from floodxr.data.stac import format_datetime
    >>> format_datetime("2019-09-01/2019-09-30")
    '2019-09-01/2019-09-30'
    >>> format_datetime("last week")
    Traceback (most recent call last):
    ...
    floodxr.errors.InvalidOptionError: datetime 'last week' is not an ISO 8601 date or ...
    """
    if datetime is None:
        return None
    if isinstance(datetime, (tuple, list)) and len(datetime) == 2:
        parts = [_iso(v) for v in datetime]
        _check_interval(parts, datetime)
        return parts
    if isinstance(datetime, dt.date) and not isinstance(datetime, dt.datetime):
        return datetime.isoformat()
    if not isinstance(datetime, (str, dt.datetime)):
        raise InvalidOptionError(
            f"datetime must be a string like '2019-09-01/2019-09-30', a datetime or a (start, "
            f"end) pair, got {datetime!r} ({type(datetime).__name__})"
        )
    value = _iso(datetime)
    _check_interval(value.split("/") if "/" in value else [value], datetime)
    return value


_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2})?$")


def _parse_instant(text: str) -> dt.datetime | None:
    """The instant ``text`` names (None for an open end), or raise if it is not ISO 8601."""
    text = text.strip()
    if text in ("", ".."):
        return None
    if _PARTIAL_DATE.match(text):
        year, _, month = text.partition("-")
        return dt.datetime(int(year), int(month or 1), 1, tzinfo=dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _check_interval(parts: Sequence[Any], given: Any) -> None:
    if len(parts) > 2:
        raise InvalidOptionError(f"datetime {given!r} has more than one '/'; use START/END")
    try:
        instants = [_parse_instant(str(p)) for p in parts]
    except ValueError as err:
        raise InvalidOptionError(
            f"datetime {given!r} is not an ISO 8601 date or interval ({err}); write e.g. "
            "'2019-09-17', '2019-09' or '2019-09-01/2019-09-30' (open ends as '..')"
        ) from err
    if len(instants) == 2 and None not in instants and instants[0] > instants[1]:  # type: ignore[operator]
        raise InvalidOptionError(f"datetime {given!r} ends before it starts; swap START and END")


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return aware.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _cql2_and(conditions: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"op": "and", "args": conditions}


def search(
    bbox: Bbox | None = None,
    datetime: Any = None,
    *,
    kind: Literal["s1", "s2"],
    catalog: str | Catalog = "planetary-computer",
    collection: str | Collection | None = None,
    intersects: Mapping[str, Any] | None = None,
    conditions: Sequence[tuple[str, str, Any]] = (),
    max_items: int | None = None,
) -> pystac.ItemCollection:
    """Search one Sentinel collection; the shared core of :func:`search_s1` / :func:`search_s2`.

    ``conditions`` are ``(property, operator, value)`` triples sent as a CQL2 ``filter`` and
    checked again on the answer, so a server that ignores filters cannot slip items through.
    The returned ItemCollection remembers the collection profile and the catalog URL, so that
    :func:`load` and :func:`floodxr.data.pairing.pair_s2` need no repetition.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     found = stac.search(SYNTHETIC_BBOX, "2019-09-13", kind="s1", catalog=catalog,
    ...                         conditions=[("sat:orbit_state", "=", "descending")])
    >>> [item.id for item in found]
    ['S1A_IW_GRDH_1SDV_20190913T055950_A_rtc', 'S1A_IW_GRDH_1SDV_20190913T055950_B_rtc']
    """
    cat = get_catalog(catalog)
    coll = _pick_collection(cat, kind, collection)
    if bbox is None and intersects is None:
        raise InvalidOptionError("give bbox=(west, south, east, north) in degrees or intersects=")
    if bbox is not None:
        bbox = check_bbox(bbox)
    when = format_datetime(datetime)
    if max_items is not None:
        number(max_items, "max_items", minimum=1, integer=True)
    client = _client(cat)
    cql = [{"op": op, "args": [{"property": prop}, value]} for prop, op, value in conditions]
    query = {
        "collections": [coll.id],
        "bbox": list(bbox) if bbox is not None else None,
        "intersects": dict(intersects) if intersects is not None else None,
        "datetime": when,
        "max_items": max_items,
        "filter": _cql2_and(cql),
        "filter_lang": "cql2-json" if cql else None,
    }
    query = {k: v for k, v in query.items() if v is not None}
    with _api_errors(cat.url, f"search {coll.id!r}"), warnings.catch_warnings():
        # servers without the filter extension: the conditions are applied below anyway
        warnings.filterwarnings("ignore", message=".*filter.*", module="pystac_client")
        found = list(client.search(**query).items())
    shapeless = [item.id for item in found if item.geometry is None or item.bbox is None]
    if shapeless:
        raise StacApiError(
            f"STAC API {cat.url!r} returned items without a geometry or bbox ({shapeless[:5]}); "
            "floodxr cannot place them: fix the catalogue, or pass items that have footprints"
        )
    kept = [item for item in found if all(_holds(item, *c) for c in conditions)]
    if not kept:
        where = f"bbox {tuple(bbox)}" if bbox is not None else "the given geometry"
        extra = f" with {', '.join(f'{p} {o} {v}' for p, o, v in conditions)}" if conditions else ""
        raise NoItemsError(
            f"no item in collection {coll.id!r} of {cat.url!r} over {where}, datetime "
            f"{query.get('datetime')!r}{extra} ({len(found)} before the conditions); widen the "
            "dates or the area, relax the conditions, or check the collection id"
        )
    kept.sort(key=_time_order)
    return _remember(pystac.ItemCollection(kept), coll, cat)


_OPS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater, "=": np.equal}


def check_bbox(bbox: Any) -> Bbox:
    """``bbox`` as four floats (west, south, east, north) in degrees, or a named error.

    Examples
    --------
    >>> from floodxr.data.stac import check_bbox
    >>> check_bbox([-0.45, 39.2, -0.25, 39.4])
    (-0.45, 39.2, -0.25, 39.4)
    """
    if isinstance(bbox, (str, bytes)) or not hasattr(bbox, "__len__") or len(bbox) != 4:
        raise InvalidOptionError(
            f"bbox must be (west, south, east, north) in degrees, got {bbox!r}"
        )
    west, south, east, north = (float(number(v, "a bbox value")) for v in bbox)
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south < north <= 90):
        raise InvalidOptionError(
            f"bbox {tuple(bbox)} is not (west, south, east, north) in degrees with south < north "
            "within +-90 and longitudes within +-180; lon/lat order, not lat/lon"
        )
    if west >= east:
        raise InvalidOptionError(
            f"bbox {tuple(bbox)}: west {west} is not west of east {east}; bboxes across the "
            "antimeridian are not supported: search each side"
        )
    return (west, south, east, north)


def _holds(item: pystac.Item, prop: str, op: str, value: Any) -> bool:
    if prop not in item.properties:
        return False
    have = item.properties[prop]
    if isinstance(value, str) or isinstance(have, str):
        return op == "=" and str(have).lower() == str(value).lower()
    return bool(_OPS[op](have, value))


def _remember(
    items: pystac.ItemCollection, coll: Collection, cat: Catalog
) -> pystac.ItemCollection:
    items.extra_fields[_EXTRA] = coll.to_dict()
    items.extra_fields[_CATALOG] = cat.to_dict()
    return items


def catalog_of(items: Any) -> Catalog | None:
    """The catalog a search result came from (None for items from elsewhere).

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     items = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> stac.catalog_of(items).url == catalog.url, stac.catalog_of(list(items))
    (True, None)
    """
    remembered = getattr(items, "extra_fields", {}).get(_CATALOG)
    return Catalog.from_dict(remembered) if remembered else None


def search_s1(
    bbox: Bbox | None = None,
    datetime: Any = None,
    *,
    catalog: str | Catalog = "planetary-computer",
    collection: str | Collection | None = None,
    intersects: Mapping[str, Any] | None = None,
    orbit: Literal["ascending", "descending"] | int | None = None,
    max_items: int | None = None,
) -> pystac.ItemCollection:
    """Find Sentinel-1 scenes over ``bbox`` (lon/lat) in ``datetime`` (a STAC interval).

    Parameters
    ----------
    bbox : (west, south, east, north) in degrees; or give ``intersects`` (a GeoJSON geometry)
    datetime : ``"2019-09-01/2019-09-30"``, one date, or a (start, end) pair of datetimes
    catalog : a name in :data:`CATALOGS`, a STAC API URL or a :class:`Catalog`
    collection : the collection id of the catalog's profile (default) or a :class:`Collection`
        describing another one
    orbit : ``"ascending"`` / ``"descending"`` (``sat:orbit_state``) or a relative orbit number
    max_items : stop after this many items

    Returns
    -------
    pystac.ItemCollection
        Sorted by time; pass it to :func:`load_s1`.

    Raises
    ------
    NoItemsError, StacApiError, InvalidOptionError

    Examples
    --------
    On the test world served on 127.0.0.1 (its collections are shaped like the Planetary
    Computer's):

    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     items = stac.search_s1(SYNTHETIC_BBOX, "2019-09-01/2019-09-30", catalog=catalog)
    >>> len(items), items[0].properties["sat:orbit_state"]
    (4, 'descending')

    On the Planetary Computer (needs the internet)::

        items = search_s1((-0.45, 39.2, -0.25, 39.4), "2019-09-10/2019-09-20")
        cube = load_s1(items, resolution=10)
    """
    conditions: list[tuple[str, str, Any]] = []
    if isinstance(orbit, str):
        if orbit not in ("ascending", "descending"):
            raise InvalidOptionError(
                f"orbit must be 'ascending', 'descending' or a relative orbit number, got {orbit!r}"
            )
        conditions.append(("sat:orbit_state", "=", orbit))
    elif orbit is not None:
        conditions.append(("sat:relative_orbit", "=", int(orbit)))
    return search(
        bbox,
        datetime,
        kind="s1",
        catalog=catalog,
        collection=collection,
        intersects=intersects,
        conditions=conditions,
        max_items=max_items,
    )


def search_s2(
    bbox: Bbox | None = None,
    datetime: Any = None,
    *,
    catalog: str | Catalog = "planetary-computer",
    collection: str | Collection | None = None,
    intersects: Mapping[str, Any] | None = None,
    max_cloud: float | None = 12.0,
    max_items: int | None = None,
) -> pystac.ItemCollection:
    """Find Sentinel-2 scenes with at most ``max_cloud`` % cloud cover (``eo:cloud_cover``).

    The default limit, 12 %, is the paper's. Other parameters as :func:`search_s1`.

    Examples
    --------
    The test world has one clear and one 35 % cloudy Sentinel-2 scene in September 2019:

    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     items = stac.search_s2(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> [(item.id, item.properties["eo:cloud_cover"]) for item in items]
    [('S2B_MSIL2A_20190913T103050_T31SBJ', 4.0)]

    On the Planetary Computer (needs the internet)::

        items = search_s2((-0.45, 39.2, -0.25, 39.4), "2019-09-10/2019-09-20", max_cloud=20)
    """
    conditions = [("eo:cloud_cover", "<=", max_cloud)] if max_cloud is not None else []
    return search(
        bbox,
        datetime,
        kind="s2",
        catalog=catalog,
        collection=collection,
        intersects=intersects,
        conditions=conditions,
        max_items=max_items,
    )


# --------------------------------------------------------------------------------------------
# loading


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone containing ``lon``/``lat``.

    Examples
    --------
    >>> from floodxr.data.stac import utm_epsg
    >>> utm_epsg(-0.01, 39.0), utm_epsg(0.01, 39.0), utm_epsg(151.2, -33.9)
    (32630, 32631, 32756)
    """
    zone = min(60, int(math.floor((lon + 180) / 6)) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def _as_items(items: Any) -> list[pystac.Item]:
    if isinstance(items, pystac.Item):
        return [items]
    listed = list(items)
    bad = [type(i).__name__ for i in listed if not isinstance(i, pystac.Item)]
    if bad:
        raise WrongTypeError(
            f"expected pystac Items (from search_s1 / search_s2), got {sorted(set(bad))}; "
            "read JSON with pystac.Item.from_dict"
        )
    if not listed:
        raise NoItemsError("no item to load; search first (search_s1 / search_s2)")
    return listed


def _collection_of(items: Any, collection: Collection | None, kind: str) -> Collection:
    if collection is not None:
        return collection
    remembered = getattr(items, "extra_fields", {}).get(_EXTRA)
    if remembered is not None:
        return Collection(**remembered)
    # plain Items: the profile whose collection id and asset keys they carry
    listed = _as_items(items)
    ids = sorted({str(i.collection_id) for i in listed})
    for cat in CATALOGS.values():
        profile = getattr(cat, kind)
        if (
            profile is not None
            and profile.id in ids
            and all(all(k in i.assets for k in profile.assets.values()) for i in listed)
        ):
            return profile
    raise InvalidOptionError(
        f"cannot tell how collection(s) {ids} store their bands; pass collection="
        "floodxr.data.stac.Collection(id, assets={band: asset key}, units=...)"
    )


def _epsg(item: pystac.Item | Mapping[str, Any]) -> int | None:
    props = item.properties if isinstance(item, pystac.Item) else item
    if props.get("proj:epsg") is not None:
        return int(props["proj:epsg"])
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    return None


def _stackstac_dict(item: pystac.Item) -> dict[str, Any]:
    """The item as a dict that stackstac 0.5 reads: ``proj:epsg`` restored from ``proj:code``."""
    # a deep copy: to_dict shares the item's own properties dict, which must stay untouched
    data = copy.deepcopy(item.to_dict(transform_hrefs=False))
    for holder in [data["properties"], *data.get("assets", {}).values()]:
        epsg = _epsg(holder)
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
            epsg=_epsg(merged),
            transform=Affine(*transform[:6]) if transform else None,
            shape=(int(shape[0]), int(shape[1])) if shape else None,
        )

    @property
    def bounds(self) -> Bbox | None:
        if self.transform is None or self.shape is None:
            return None
        t, (rows, cols) = self.transform, self.shape
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)


def _snap(bounds: Bbox, resolution: float, grid: Affine | None) -> Bbox:
    """``bounds`` grown to whole pixels of ``grid`` (phase of its origin), or of the origin 0."""
    x0, y0 = (grid.c, grid.f) if grid is not None else (0.0, 0.0)
    eps = 1e-6  # of a pixel: float noise in bounds that lie on the grid

    def down(v: float, origin: float) -> float:
        return origin + math.floor((v - origin) / resolution + eps) * resolution

    def up(v: float, origin: float) -> float:
        return origin + math.ceil((v - origin) / resolution - eps) * resolution

    west, south, east, north = bounds
    return (down(west, x0), down(south, y0), up(east, x0), up(north, y0))


def _require_overlap(bbox: Bbox, items: list[pystac.Item]) -> None:
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


def _gdal_env() -> Any:
    import stackstac

    timeout = max(1, int(math.ceil(OPTIONS["http_timeout"])))
    return stackstac.DEFAULT_GDAL_ENV.updated(
        always={
            "GDAL_HTTP_TIMEOUT": timeout,
            "GDAL_HTTP_CONNECTTIMEOUT": timeout,
            "GDAL_HTTP_MAX_RETRY": OPTIONS["http_retries"],
            "GDAL_HTTP_RETRY_DELAY": OPTIONS["http_backoff"],
            "GDAL_HTTP_RETRY_CODES": ",".join(str(c) for c in _RETRY_STATUS),
        }
    )


def load(
    items: Items,
    *,
    kind: Literal["s1", "s2"],
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
    crs: int | str | None = None,
    bounds: Bbox | None = None,
    bbox: Bbox | None = None,
    like: xr.DataArray | None = None,
    chunks: int = 2048,
    mosaic: bool = False,
    collection: Collection | None = None,
) -> xr.DataArray:
    """Load items lazily as ``(time, band, y, x)``; the shared core of :func:`load_s1` /
    :func:`load_s2` (see :func:`load_s1` for the parameters).

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     items = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> cube = stac.load(items, kind="s1", bands=["vh"], resolution=20)
    >>> dict(cube.sizes), cube.attrs["units"]
    ({'time': 4, 'band': 1, 'y': 462, 'x': 535}, 'dB')
    """
    import stackstac

    from floodxr.data._reader import NamedErrorReader

    listed = sorted(_as_items(items), key=_time_order)
    if resolution is not None:
        number(resolution, "resolution", above=0)
    number(chunks, "chunks", minimum=1, integer=True)
    if bbox is not None:
        bbox = check_bbox(bbox)
        _require_overlap(bbox, listed)
    if bounds is not None:
        corners = [float(number(v, "a bounds value")) for v in bounds] if len(bounds) == 4 else []
        if not corners or not (corners[0] < corners[2] and corners[1] < corners[3]):
            raise InvalidOptionError(
                f"bounds must be (minx, miny, maxx, maxy) with min < max "
                f"in the CRS's units, got {bounds!r}"
            )
    coll = _collection_of(items, collection, kind)
    if coll.units == "amplitude":
        raise UnitsError(
            f"collection {coll.id!r} holds uncalibrated GRD amplitudes (digital numbers), not "
            "backscatter; floodxr needs calibrated, terrain-corrected sigma0/gamma0: use "
            "catalog='planetary-computer' (sentinel-1-rtc) or a collection of RTC products"
        )
    bands = tuple(bands if bands is not None else coll.assets)
    unknown = [b for b in bands if b not in coll.assets]
    if unknown:
        raise InvalidOptionError(
            f"bands {unknown} are not in collection {coll.id!r}, which maps {dict(coll.assets)}"
        )
    keys = [coll.assets[b] for b in bands]
    for item in listed:
        missing = [k for k in keys if k not in item.assets]
        if missing:
            raise MissingAssetError(
                f"item {item.id!r} of {coll.id!r} has no asset {missing} (it has "
                f"{sorted(item.assets)}); drop it from the items, or load fewer bands "
                f"(bands={tuple(b for b in bands if coll.assets[b] not in missing)})"
            )
    epsg, res, grid_bounds = _grid(listed, keys[0], resolution, crs, bounds, bbox, like)
    data = stackstac.stack(
        [_stackstac_dict(item) for item in listed],
        assets=keys,
        epsg=epsg,
        resolution=res,
        bounds=grid_bounds,
        snap_bounds=False,
        chunksize=chunks,
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        rescale=False,
        sortby_date=False,
        xy_coords="center",
        properties=[p for p in SCENE_PROPERTIES if any(p in i.properties for i in listed)],
        band_coords=False,
        gdal_env=_gdal_env(),
        errors_as_nodata=(),
        reader=NamedErrorReader,
    )
    data = data.assign_coords(band=list(bands))
    declared = _asset_nodata(listed, keys)
    if np.isfinite(declared).any():
        # the asset's own nodata (STAC raster:bands or file:nodata) where the file has no tag
        import dask.array as dsa

        per_asset = declared[:, :, None, None]  # stackstac's (time, band, y, x)
        data = data.copy(data=dsa.where(data.data == per_asset, np.float32(np.nan), data.data))
    if coll.rescale:
        # stackstac's own rescale refuses float64 scales with a float32 output
        scale, offset = _raster_scaling(listed, keys)
        dims = ("time", "band")
        data = data * xr.DataArray(scale, dims=dims) + xr.DataArray(offset, dims=dims)
    data = _to_units(data, coll, kind)
    if mosaic:
        data = _mosaic_passes(data)
    transform = Affine(res, 0.0, grid_bounds[0], 0.0, -res, grid_bounds[3])
    # coordinates to the last bit as rioxarray derives them from a GeoTIFF, so that cubes align
    # exactly with rasters opened on the same grid
    data = data.assign_coords(affine_to_coords(transform, data.sizes["x"], data.sizes["y"]))
    data = data.drop_vars([c for c in ("epsg",) if c in data.coords])
    data.attrs = {}
    data = data.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(transform)
    data.attrs |= _attrs(coll, kind)
    return data.rename("sentinel1" if kind == "s1" else "sentinel2")


def _time_order(item: pystac.Item) -> tuple[dt.datetime, str]:
    return (item.datetime or dt.datetime.min.replace(tzinfo=dt.timezone.utc), item.id)


def _asset_nodata(items: list[pystac.Item], keys: list[str]) -> np.ndarray:
    """(time, band) nodata each asset declares in STAC (``raster:bands``), NaN when none."""
    nodata = np.full((len(items), len(keys)), np.nan, "float32")
    for i, item in enumerate(items):
        for j, key in enumerate(keys):
            fields = item.assets[key].extra_fields
            value = (fields.get("raster:bands") or [{}])[0].get("nodata", fields.get("nodata"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                nodata[i, j] = value
    return nodata


def _raster_scaling(items: list[pystac.Item], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(time, band) scale and offset from each asset's ``raster:bands`` (1 and 0 when absent)."""
    scale = np.ones((len(items), len(keys)), "float32")
    offset = np.zeros((len(items), len(keys)), "float32")
    for i, item in enumerate(items):
        for j, key in enumerate(keys):
            bands = item.assets[key].extra_fields.get("raster:bands") or [{}]
            scale[i, j] = bands[0].get("scale", 1.0)
            offset[i, j] = bands[0].get("offset", 0.0)
    return scale, offset


def _grid(
    items: list[pystac.Item],
    key: str,
    resolution: float | None,
    crs: int | str | None,
    bounds: Bbox | None,
    bbox: Bbox | None,
    like: xr.DataArray | None,
) -> tuple[int, float, Bbox]:
    """EPSG, resolution and exact bounds of the output grid (``key``: the first asset loaded)."""
    if like is not None:
        transform, epsg = like.rio.transform(), like.rio.crs.to_epsg()
        if transform.b or transform.d or abs(transform.a) != abs(transform.e):
            raise InvalidOptionError("like= must be on a north-up grid with square pixels")
        res = abs(transform.a)
        ny, nx = like.sizes["y"], like.sizes["x"]
        west, north = transform.c, transform.f
        return int(epsg), res, (west, north - ny * res, west + nx * res, north)
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
    return epsg, float(resolution), _snap(tuple(bounds), float(resolution), grid)  # type: ignore[arg-type]


def _to_units(data: xr.DataArray, coll: Collection, kind: str) -> xr.DataArray:
    if coll.nodata is not None and np.isfinite(coll.nodata):
        data = data.where(data != np.float32(coll.nodata))
    if coll.scale != 1.0 or coll.offset != 0.0:
        data = data * np.float32(coll.scale) + np.float32(coll.offset)
    if kind == "s2" and coll.baseline_offset and "s2:processing_baseline" in data.coords:
        baselines = data["s2:processing_baseline"]
        offsets = np.vectorize(lambda b: 1000 if _has_boa_offset(str(b)) else 0, otypes=["f4"])
        data = data - baselines.copy(data=offsets(baselines.values))
    if kind == "s1" and coll.units == "linear":
        data.attrs["units"] = "linear"
        return to_db(data).astype("float32")  # type: ignore[return-value]
    return data.astype("float32")


def _has_boa_offset(baseline: str) -> bool:
    try:
        return float(baseline) >= 4.0
    except ValueError:
        return False


def _attrs(coll: Collection, kind: str) -> dict[str, Any]:
    if kind == "s1":
        return {"units": "dB", "long_name": "Sentinel-1 backscatter", "stac_collection": coll.id}
    return {
        "units": "1e-4",
        "long_name": "Sentinel-2 reflectance x 10000",
        "stac_collection": coll.id,
    }


def _mosaic_passes(data: xr.DataArray) -> xr.DataArray:
    """One scene per (UTC day, orbit): the first valid pixel of the pass's frames, in time order."""
    import stackstac

    days = data["time"].dt.strftime("%Y-%m-%d").values
    orbit_coord = next(
        (c for c in ("sat:relative_orbit", "sat:orbit_state") if c in data.coords), None
    )
    # a property that all items share is a scalar coordinate
    orbits = np.broadcast_to(data[orbit_coord].values if orbit_coord else "", len(days))
    keys = [f"{d}/{o}" for d, o in zip(days, orbits, strict=True)]
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    scenes = []
    for indices in groups.values():
        part = data.isel(time=indices)
        merged = stackstac.mosaic(part, dim="time", reverse=True)  # first on top
        scene = merged.expand_dims(time=[part["time"].values[0]])
        scene = scene.assign_coords(id=("time", ["+".join(map(str, part["id"].values))]))
        for coord in (c for c in part.coords if part[c].dims == ("time",) and c != "id"):
            scene = scene.assign_coords({coord: ("time", [part[coord].values[0]])})
        scenes.append(scene)
    return xr.concat(scenes, dim="time", combine_attrs="override").sortby("time")


def load_s1(
    items: Items,
    *,
    resolution: float | None = None,
    crs: int | str | None = None,
    bounds: Bbox | None = None,
    bbox: Bbox | None = None,
    chunks: int = 2048,
    bands: Sequence[str] = S1_BANDS,
    mosaic: bool = False,
    collection: Collection | None = None,
) -> xr.DataArray:
    """Load Sentinel-1 items as a lazy ``(time, band, y, x)`` cube in dB.

    Parameters
    ----------
    items : from :func:`search_s1` (or pystac Items with ``collection=``)
    resolution : pixel size in the CRS's units; default the items' own
    crs : output CRS (EPSG code or string); default the items' CRS when they share one, else the
        UTM zone of the area's centre, so items from several zones land on one grid
    bounds : (minx, miny, maxx, maxy) in ``crs``; or ``bbox`` in lon/lat; default all items.
        Bounds grow to whole pixels of the items' own grid when it has the same CRS and
        resolution, so pixels are read as they are stored, never resampled
    chunks : dask chunk side in pixels
    bands : which of ``vv``, ``vh``
    mosaic : merge the frames of one pass (same UTC day and orbit) into one scene
    collection : how the items' collection stores its bands; default what the search remembered

    Returns
    -------
    DataArray
        ``(time, band, y, x)`` float32, dB, NaN nodata; CRS and transform written; per-scene
        coordinates ``id`` and the item properties in :data:`SCENE_PROPERTIES`. Nothing is read
        until computed. ``.flood.segment()`` runs on it directly.

    Raises
    ------
    MissingAssetError, UnitsError (uncalibrated GRD), InvalidOptionError

    Examples
    --------
    >>> import tempfile, pystac, floodxr
    >>> from floodxr.data import stac
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> from floodxr.testing.stac import write_stac_world, iter_items
    >>> world = write_stac_world(tempfile.mkdtemp(), data_dir=SAMPLE_DIR)
    >>> items = [pystac.Item.from_dict(i) for i in iter_items(world)
    ...          if i["collection"] == "sentinel-1-rtc"]
    >>> cube = stac.load_s1(items, mosaic=True)
    >>> cube.dims, cube.sizes["time"], str(cube.rio.crs), cube.attrs["units"]
    (('time', 'band', 'y', 'x'), 2, 'EPSG:32631', 'dB')
    """
    return load(
        items,
        kind="s1",
        bands=bands,
        resolution=resolution,
        crs=crs,
        bounds=bounds,
        bbox=bbox,
        chunks=chunks,
        mosaic=mosaic,
        collection=collection,
    )


def load_s2(
    items: Items,
    *,
    like: xr.DataArray | None = None,
    resolution: float | None = None,
    crs: int | str | None = None,
    bounds: Bbox | None = None,
    bbox: Bbox | None = None,
    chunks: int = 2048,
    bands: Sequence[str] = S2_PAPER_BANDS,
    mosaic: bool = False,
    collection: Collection | None = None,
) -> xr.DataArray:
    """Load Sentinel-2 items as a lazy ``(time, band, y, x)`` cube in reflectance x 10 000.

    ``like`` (a loaded cube) puts the result on exactly its grid; other parameters as
    :func:`load_s1`. Values match Sen1Floods11's chips: processing-baseline offsets removed,
    0 (nodata) as NaN.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     s1 = stac.load_s1(stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog),
    ...                       mosaic=True)
    ...     s2 = stac.load_s2(stac.search_s2(SYNTHETIC_BBOX, "2019-09", catalog=catalog),
    ...                       like=s1)
    >>> dict(s2.sizes), float(s2.sel(band="B08").max())  # baseline 04.00's +1000 removed
    ({'time': 1, 'band': 4, 'y': 924, 'x': 1069}, 3798.0)
    """
    return load(
        items,
        kind="s2",
        bands=bands,
        resolution=resolution,
        crs=crs,
        bounds=bounds,
        bbox=bbox,
        like=like,
        chunks=chunks,
        mosaic=mosaic,
        collection=collection,
    )


def items_of(items: Iterable[pystac.Item], like: Any) -> pystac.ItemCollection:
    """``items`` as an ItemCollection that remembers what ``like`` (a search result) remembered.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     items = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> first_pass = stac.items_of(list(items)[:2], like=items)
    >>> len(first_pass), stac.catalog_of(first_pass).s1.id
    (2, 'sentinel-1-rtc')
    """
    out = pystac.ItemCollection(list(items))
    remembered = getattr(like, "extra_fields", {})
    out.extra_fields.update({k: v for k, v in remembered.items() if k in (_EXTRA, _CATALOG)})
    return out
