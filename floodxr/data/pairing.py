"""Pair each Sentinel-1 acquisition with the Sentinel-2 scenes taken close to it, on its grid.

The paper's rule (its external dataset): Sentinel-2 within 12 hours of the Sentinel-1 timestamp,
under 12 % cloud cover; Sentinel-1 scenes without such a partner are not used. floodxr reports
them (:class:`Pairs.unpaired` and an :class:`~floodxr.errors.UnpairedScenesWarning`) instead
of dropping them silently.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import pystac
import xarray as xr

from floodxr.data import stac
from floodxr.data.search import as_items, resolve_collection
from floodxr.errors import InvalidOptionError, NoItemsError, UnpairedScenesWarning
from floodxr.grid import transform

__all__ = ["Pair", "Pairs", "pair_s2", "load_pair"]

#: The paper's pairing window and cloud limit.
WINDOW = dt.timedelta(hours=12)
MAX_CLOUD = 12.0


@dataclass(frozen=True)
class Pair:
    """One Sentinel-1 item and its Sentinel-2 partners (closest in time first)."""

    s1: pystac.Item
    s2: tuple[pystac.Item, ...]


@dataclass(frozen=True)
class Pairs:
    """The result of :func:`pair_s2`."""

    pairs: tuple[Pair, ...]
    unpaired: tuple[pystac.Item, ...]
    s1_items: pystac.ItemCollection
    s2_collection: stac.Collection
    window: dt.timedelta
    max_cloud: float | None

    def __len__(self) -> int:
        return len(self.pairs)


def pair_s2(
    s1_items: pystac.ItemCollection | Sequence[pystac.Item],
    *,
    catalog: str | stac.Catalog | None = None,
    collection: str | stac.Collection | None = None,
    window: dt.timedelta = WINDOW,
    max_cloud: float | None = MAX_CLOUD,
) -> Pairs:
    """Find, for each Sentinel-1 item, the Sentinel-2 items within ``window`` under ``max_cloud``.

    Parameters
    ----------
    s1_items : from :func:`floodxr.data.stac.search_s1`
    catalog : where to search Sentinel-2; default the catalog the Sentinel-1 search used
    collection : the Sentinel-2 collection; default the catalog profile's
    window : maximum time between the two acquisitions, either way (default 12 h)
    max_cloud : maximum ``eo:cloud_cover`` in % (default 12), None for no limit

    Returns
    -------
    Pairs
        ``pairs`` (one :class:`Pair` per paired Sentinel-1 item) and ``unpaired`` (the rest).
        Unpaired scenes also raise an :class:`~floodxr.errors.UnpairedScenesWarning`.

    Examples
    --------
    Both frames of the first synthetic pass pair with the clear Sentinel-2 scene 4.5 h later;
    the second pass's Sentinel-2 scene is too cloudy:

    >>> import warnings
    >>> from floodxr.data import pairing, stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _), warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # the cloudy second pass stays unpaired
    ...     pairs = pairing.pair_s2(stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog))
    >>> len(pairs), len(pairs.unpaired), pairs.pairs[0].s2[0].id
    (2, 2, 'S2B_MSIL2A_20190913T103050_T31SBJ')
    """
    listed = as_items(s1_items)
    cat = stac.get_catalog(catalog) if catalog is not None else stac.catalog_of(s1_items)
    if cat is None:
        raise InvalidOptionError(
            "these Sentinel-1 items do not say which catalog they came from (they are not a "
            "search_s1 result); pass catalog="
        )
    s2_collection = resolve_collection(cat, "s2", collection)
    pairs, unpaired = [], []
    for item in listed:
        when = item.datetime
        if when is None:
            raise InvalidOptionError(f"item {item.id!r} has no datetime; it cannot be paired")
        try:
            found = stac.search_s2(
                intersects=item.geometry,
                datetime=(when - window, when + window),
                catalog=cat,
                collection=s2_collection,
                max_cloud=max_cloud,
            )
        except NoItemsError:
            unpaired.append(item)
            continue
        # the API's interval is inclusive and second-rounded: keep the window exact
        close = [
            s2 for s2 in found if s2.datetime is not None and abs(s2.datetime - when) <= window
        ]
        if not close:
            unpaired.append(item)
            continue
        close.sort(key=lambda s2: abs(s2.datetime - when))  # type: ignore[operator]
        pairs.append(Pair(s1=item, s2=tuple(close)))
    if unpaired:
        names = ", ".join(f"{i.id} ({i.datetime:%Y-%m-%d %H:%M})" for i in unpaired)
        limit = f"under {max_cloud} % cloud " if max_cloud is not None else ""
        warnings.warn(
            f"{len(unpaired)} of {len(listed)} Sentinel-1 scenes have no Sentinel-2 scene "
            f"{limit}within {window} in {s2_collection.id!r}: {names}; they are left out of the "
            "pairs (Pairs.unpaired lists them); widen window= or raise max_cloud= to include them",
            UnpairedScenesWarning,
            stacklevel=2,
        )
    return Pairs(
        pairs=tuple(pairs),
        unpaired=tuple(unpaired),
        s1_items=stac.items_of(listed, s1_items),
        s2_collection=s2_collection,
        window=window,
        max_cloud=max_cloud,
    )


def load_pair(
    pairs: Pairs,
    *,
    resolution: float | None = None,
    crs: int | str | None = None,
    bounds: stac.Bbox | None = None,
    bbox: stac.Bbox | None = None,
    chunks: int = 2048,
) -> xr.DataArray:
    """Load paired scenes as one lazy ``(time, band, y, x)`` cube on the Sentinel-1 grid.

    Bands ``vv, vh`` (dB) then ``B02, B03, B04, B08`` (reflectance x 10 000): what the teacher
    and the training code consume. ``time`` is the Sentinel-1 time; the coordinate ``s2_time``
    holds the time of the closest partner and ``s2_id`` the partners' ids. Several partners of one
    acquisition (neighbouring tiles) are mosaicked, closest in time on top. Grid parameters as
    :func:`floodxr.data.stac.load_s1`.

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import pairing, stac
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _), warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # the cloudy second pass stays unpaired
    ...     pairs = pairing.pair_s2(stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=catalog))
    ...     cube = pairing.load_pair(pairs)
    >>> cube.dims, cube["band"].values.tolist(), str(cube.rio.crs)
    (('time', 'band', 'y', 'x'), ['vv', 'vh', 'B02', 'B03', 'B04', 'B08'], 'EPSG:32631')
    """
    if not pairs.pairs:
        raise NoItemsError(
            f"no Sentinel-1 scene has a Sentinel-2 partner ({len(pairs.unpaired)} unpaired); "
            "widen window= or raise max_cloud= in pair_s2"
        )
    s1_items = stac.items_of([p.s1 for p in pairs.pairs], pairs.s1_items)
    s1 = stac.load_s1(
        s1_items, resolution=resolution, crs=crs, bounds=bounds, bbox=bbox, chunks=chunks
    )
    import stackstac

    scenes = []
    for pair in pairs.pairs:
        # load_s1 sorts by time; find this pair's scene by id
        position = list(s1["id"].values).index(pair.s1.id) if s1.sizes["time"] > 1 else 0
        s1_scene = s1.isel(time=[position])
        s2 = stac.load_s2(
            list(pair.s2), like=s1_scene, chunks=chunks, collection=pairs.s2_collection
        )
        # load_s2 stacks by time; put the closest partner first so the mosaic prefers it
        order = [list(s2["id"].values).index(item.id) for item in pair.s2]
        s2_scene = stackstac.mosaic(s2.isel(time=order), dim="time", reverse=True)
        s2_scene = s2_scene.drop_vars(
            [c for c in s2_scene.coords if c not in ("band", "y", "x", "spatial_ref")]
        )
        s2_scene = s2_scene.expand_dims(time=s1_scene["time"].values)
        combined = xr.concat(
            [
                s1_scene.drop_vars(
                    [
                        c
                        for c in s1_scene.coords
                        if c not in ("time", "band", "y", "x", "spatial_ref", "id")
                    ]
                ),
                s2_scene,
            ],
            dim="band",
            join="exact",
            coords="minimal",
            compat="override",
        )
        combined = combined.assign_coords(
            s2_time=("time", [pair.s2[0].datetime.replace(tzinfo=None)]),  # type: ignore[union-attr]
            s2_id=("time", ["+".join(i.id for i in pair.s2)]),
        )
        scenes.append(combined)
    cube = xr.concat(scenes, dim="time", join="exact", combine_attrs="drop_conflicts")
    cube.attrs = {
        "long_name": "paired Sentinel-1 (dB) and Sentinel-2 (reflectance x 10000)",
        "unpaired_s1": [i.id for i in pairs.unpaired],
    }
    return cube.rio.write_crs(s1.rio.crs).rio.write_transform(transform(s1))
