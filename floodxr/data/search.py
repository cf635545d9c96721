"""Searching a STAC API for Sentinel-1 / Sentinel-2 scenes, and what one satellite pass is.

:func:`search` (and :func:`search_s1` / :func:`search_s2`) returns a :class:`SearchResult`: the
items sorted by time, carrying the catalogue and the collection profile they came from, so that
loading and pairing need no repetition. :func:`passes` is the one rule for which items make one
pass (frames of the same UTC day and orbit), used by mosaicking and by basin runs.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pystac

from floodxr._valid import number
from floodxr.data.catalogs import Catalog, Collection, Kind, collection_for, get_catalog
from floodxr.data.client import api_errors, open_client
from floodxr.data.discovery import discover
from floodxr.errors import InvalidOptionError, NoItemsError, StacApiError, WrongTypeError
from floodxr.grid import Bbox

__all__ = [
    "check_reference_before",
    "interval_bounds",
    "SearchResult",
    "resolve_collection",
    "as_items",
    "catalog_of",
    "check_bbox",
    "format_datetime",
    "items_of",
    "passes",
    "search",
    "search_s1",
    "search_s2",
    "time_order",
]


class SearchResult(pystac.ItemCollection):
    """Items a search found, sorted by time, with the catalogue and collection they came from.

    A :class:`pystac.ItemCollection` (iterate it, index it, save it) whose ``catalog`` and
    ``collection`` tell :func:`floodxr.data.stac.load` how the bands are stored and
    :func:`floodxr.data.pairing.pair_s2` where to look for Sentinel-2.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     found = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> found.collection.id, found.kind, len(found.subset(list(found)[:2]))
    ('sentinel-1-rtc', 's1', 2)
    """

    def __init__(
        self,
        items: Iterable[Any],
        extra_fields: dict[str, Any] | None = None,
        clone_items: bool = True,
        *,
        catalog: Catalog | None = None,
        collection: Collection | None = None,
        kind: Kind | None = None,
    ) -> None:
        super().__init__(items, extra_fields=extra_fields, clone_items=clone_items)
        self.catalog = catalog
        self.collection = collection
        self.kind = kind

    def subset(self, items: Iterable[pystac.Item]) -> SearchResult:
        """Some of these items, still knowing where they came from."""
        return SearchResult(items, catalog=self.catalog, collection=self.collection, kind=self.kind)


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


def _end_of(text: str) -> dt.datetime | None:
    """The first instant after the period ``text`` names (a year, month or day: its end)."""
    start = _parse_instant(text)
    if start is None:
        return None
    text = text.strip()
    if _PARTIAL_DATE.match(text):  # YYYY or YYYY-MM
        year, _, month = text.partition("-")
        if not month:
            return start.replace(year=start.year + 1)
        return (start + dt.timedelta(days=32)).replace(day=1)
    if len(text) == 10:  # YYYY-MM-DD: the whole day
        return start + dt.timedelta(days=1)
    return start


def interval_bounds(datetime: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The first instant of a STAC datetime (interval) and the first instant after it (None
    for an open end), UTC.

    Examples
    --------
    >>> from floodxr.data.search import interval_bounds
    >>> [t.isoformat() for t in interval_bounds("2019-09-01/2019-09-15")]
    ['2019-09-01T00:00:00+00:00', '2019-09-16T00:00:00+00:00']
    >>> [t.isoformat() for t in interval_bounds("2019-12")]
    ['2019-12-01T00:00:00+00:00', '2020-01-01T00:00:00+00:00']
    """
    value = format_datetime(datetime)
    parts = value if isinstance(value, list) else str(value).split("/")
    first, last = str(parts[0]), str(parts[-1])
    return _parse_instant(first), _end_of(last)


def check_reference_before(reference: Any, datetime: Any, *, overlap: bool = False) -> None:
    """Refuse reference dates that do not end before the mapped dates start (``overlap``: that
    end after the mapped dates end, for basin runs whose first passes are their own reference):
    flood is water where the reference passes saw dry land, so a reference from after the flood
    makes a flood of nothing."""
    _, reference_end = interval_bounds(reference)
    start, end = interval_bounds(datetime)
    limit = end if overlap else start
    if reference_end is None or (limit is not None and reference_end > limit):
        when = "end by the end of" if overlap else "end before the start of"
        raise InvalidOptionError(
            f"the reference dates {reference!r} must {when} the mapped dates {datetime!r}: "
            "flood is water where the reference passes saw dry land, so they must be "
            "pre-flood passes (e.g. 2019-08-01/2019-08-31 for a flood in September 2019)"
        )


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


def resolve_collection(cat: Catalog, kind: Kind, collection: str | Collection | None) -> Collection:
    """The collection of ``kind`` to read from ``cat``: ``collection`` when it is a
    :class:`Collection`, the catalogue's profile, or what the API says about the collection
    (:func:`floodxr.data.discovery.discover`, one request, remembered per process)."""
    known = collection_for(cat, kind, collection)
    if known is not None:
        return known
    return _discovered(cat.url, cat.sign, kind, collection)


@functools.lru_cache(maxsize=32)
def _discovered(url: str, sign: str | None, kind: Kind, collection: str | None) -> Collection:
    client = open_client(Catalog(name=url, url=url, sign=sign))  # type: ignore[arg-type]
    with api_errors(url, "describe its collections"):
        return discover(client, kind, collection, url)


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
) -> SearchResult:
    """Search one Sentinel collection; the shared core of :func:`search_s1` / :func:`search_s2`.

    ``conditions`` are ``(property, operator, value)`` triples sent as a CQL2 ``filter`` and
    checked again on the answer, so a server that ignores filters cannot slip items through.
    The result carries the collection profile and the catalogue, so that :func:`load` and
    :func:`floodxr.data.pairing.pair_s2` need no repetition.

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
    if bbox is None and intersects is None:
        raise InvalidOptionError("give bbox=(west, south, east, north) in degrees or intersects=")
    if bbox is not None:
        bbox = check_bbox(bbox)
    when = format_datetime(datetime)
    if max_items is not None:
        number(max_items, "max_items", minimum=1, integer=True)
    client = open_client(cat)
    coll = resolve_collection(cat, kind, collection)
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
    with api_errors(cat.url, f"search {coll.id!r}"), warnings.catch_warnings():
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
    kept.sort(key=time_order)
    return SearchResult(kept, catalog=cat, collection=coll, kind=kind)


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
    return items.catalog if isinstance(items, SearchResult) else None


def search_s1(
    bbox: Bbox | None = None,
    datetime: Any = None,
    *,
    catalog: str | Catalog = "planetary-computer",
    collection: str | Collection | None = None,
    intersects: Mapping[str, Any] | None = None,
    orbit: Literal["ascending", "descending"] | int | None = None,
    max_items: int | None = None,
) -> SearchResult:
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
    SearchResult
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
) -> SearchResult:
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


def as_items(items: Any) -> list[pystac.Item]:
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


def time_order(item: pystac.Item) -> tuple[dt.datetime, str]:
    return (item.datetime or dt.datetime.min.replace(tzinfo=dt.timezone.utc), item.id)


def items_of(items: Iterable[pystac.Item], like: Any) -> pystac.ItemCollection:
    """``items`` as a :class:`SearchResult` from the same catalogue and collection as ``like``
    (a search result); a plain ItemCollection when ``like`` is not one.

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
    if isinstance(like, SearchResult):
        return like.subset(items)
    return pystac.ItemCollection(list(items))


#: Consecutive frames of one Sentinel-1 pass start about 25 s apart; a gap longer than this
#: between two frames of one orbit is another pass (the next pass of an orbit is 12 days
#: later, of the same satellite over the same place at least about 12 hours later).
PASS_GAP = dt.timedelta(minutes=5)


def passes(items: Iterable[pystac.Item]) -> list[list[pystac.Item]]:
    """``items`` grouped into satellite passes, in time order: the frames of one platform and
    orbit (``sat:relative_orbit``, else ``sat:orbit_state``) that follow each other within
    :data:`PASS_GAP`, whatever the calendar day (a pass that crosses midnight UTC is one pass;
    two passes of one day are two), each pass in time order.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     found = stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog)
    >>> [len(frames) for frames in stac.passes(found)]
    [2, 2]
    """
    groups: list[list[pystac.Item]] = []
    last: dict[tuple[str, str], tuple[dt.datetime, list[pystac.Item]]] = {}
    for item in sorted(items, key=time_order):
        when = time_order(item)[0].astimezone(dt.timezone.utc)
        props = item.properties
        orbit = props.get("sat:relative_orbit", props.get("sat:orbit_state", ""))
        key = (str(props.get("platform", "")), str(orbit))
        if key in last and when - last[key][0] <= PASS_GAP:
            frames = last[key][1]  # the next frame of the same pass (midnight or not)
        else:
            frames = []  # another orbit, or the same one PASS_GAP or more later
            groups.append(frames)
        frames.append(item)
        last[key] = (when, frames)
    return sorted(groups, key=lambda frames: time_order(frames[0]))
