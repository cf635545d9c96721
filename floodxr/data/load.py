"""Loading STAC items as lazy ``(time, band, y, x)`` cubes in floodxr's units.

Through stackstac: Sentinel-1 in dB, Sentinel-2 in reflectance x 10 000 as Sen1Floods11's chips,
nodata (the files', the STAC assets', the profile's) as NaN, the frames of one pass mosaicked on
request (:func:`floodxr.data.search.passes` says what a pass is), on the grid of
:mod:`floodxr.data.item_grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
import pystac
import xarray as xr
from rioxarray.rioxarray import affine_to_coords

from floodxr._valid import number
from floodxr.bands import DB, S1_BANDS, S2_PAPER_BANDS
from floodxr.data.catalogs import Collection, profile_for_items
from floodxr.data.client import gdal_env
from floodxr.data.discovery import is_data_asset, unit_kind
from floodxr.data.item_grid import output_grid, require_overlap, stackstac_dict
from floodxr.data.search import SearchResult, as_items, check_bbox, passes, time_order
from floodxr.errors import InvalidOptionError, MissingAssetError, NoItemsError, UnitsError
from floodxr.grid import Bbox, flips_to_north_up
from floodxr.grid import transform as grid_of
from floodxr.preprocess import to_db

__all__ = [
    "DEM_COLLECTION",
    "OCCURRENCE_COLLECTION",
    "SCENE_PROPERTIES",
    "load",
    "load_layer",
    "load_s1",
    "load_s2",
]

Items: TypeAlias = "pystac.ItemCollection | Sequence[pystac.Item]"
#: Item properties kept as per-scene coordinates of loaded cubes.
SCENE_PROPERTIES = (
    "platform",
    "sat:orbit_state",
    "sat:relative_orbit",
    "eo:cloud_cover",
    "s2:processing_baseline",
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

    listed = sorted(as_items(items), key=time_order)
    if resolution is not None:
        number(resolution, "resolution", above=0)
    number(chunks, "chunks", minimum=1, integer=True)
    if bbox is not None:
        bbox = check_bbox(bbox)
        require_overlap(bbox, listed)
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
    _check_assets(listed, keys, coll, kind)
    box = output_grid(listed, keys[0], resolution, crs, bounds, bbox, like)
    epsg, res, transform = box.crs.epsg, box.affine.a, box.affine  # type: ignore[union-attr]
    grid_bounds = tuple(box.extent.boundingbox)
    data = stackstac.stack(
        [stackstac_dict(item) for item in listed],
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
        gdal_env=gdal_env(),
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
    scale, offset = _raster_scaling(listed, keys)
    if coll.rescale or (kind == "s1" and ((scale != 1) | (offset != 0)).any()):
        # each item's own raster:bands scale and offset win (a collection may not list them);
        # stackstac's own rescale refuses float64 scales with a float32 output
        dims = ("time", "band")
        data = data * xr.DataArray(scale, dims=dims) + xr.DataArray(offset, dims=dims)
    data = _to_units(data, coll, kind)
    if mosaic:
        data = _mosaic_passes(data, listed)
    # coordinates to the last bit as rioxarray derives them from a GeoTIFF, so that cubes align
    # exactly with rasters opened on the same grid
    data = data.assign_coords(affine_to_coords(transform, data.sizes["x"], data.sizes["y"]))
    data = data.drop_vars([c for c in ("epsg",) if c in data.coords])
    data.attrs = {}
    data = data.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(transform)
    data.attrs |= _attrs(coll, kind)
    return data.rename("sentinel1" if kind == "s1" else "sentinel2")


def _check_assets(items: list[pystac.Item], keys: list[str], coll: Collection, kind: str) -> None:
    """Refuse, by item and asset, what the collection's description cannot read right: an asset
    that is a picture or a document (media type, roles), a Sentinel-1 unit in the item's own
    ``raster:bands`` that contradicts the collection's, and (Sentinel-2) a scale the collection
    does not apply."""
    fix = "describe the collection: collection=floodxr.data.stac.Collection(...)"
    for item in items:
        for key in keys:
            asset = item.assets[key]
            fields = {"type": asset.media_type, "roles": asset.roles}
            if not is_data_asset(fields):
                raise MissingAssetError(
                    f"item {item.id!r}: asset {key!r} is a picture or a document (type "
                    f"{asset.media_type!r}, roles {asset.roles}), not the band's data; name the "
                    f"data assets: {fix} with assets={{band: '<data asset key>'}}"
                )
            raster = (asset.extra_fields.get("raster:bands") or [{}])[0]
            declared = unit_kind(raster.get("unit")) if kind == "s1" else None
            if declared is not None and coll.units in ("dB", "linear") and declared != coll.units:
                raise UnitsError(
                    f"item {item.id!r}: asset {key!r} declares unit {raster.get('unit')!r} in its "
                    f"raster:bands, collection {coll.id!r} is read as {coll.units}: the metadata "
                    f"contradict each other; check the values and {fix} with units=..."
                )
            for field in ("scale", "offset", "nodata"):
                value = raster.get(field)
                if value is not None and (isinstance(value, bool) or not _is_number(value)):
                    raise UnitsError(
                        f"item {item.id!r}: asset {key!r} declares {field} {value!r} in its "
                        f"raster:bands, which is not a number; fix the item or {fix}"
                    )
            scaled = float(raster.get("scale", 1.0)) != 1.0 or float(raster.get("offset", 0)) != 0
            if kind == "s2" and scaled and not coll.rescale:
                raise UnitsError(
                    f"item {item.id!r}: asset {key!r} declares scale {raster.get('scale')} / "
                    f"offset {raster.get('offset')} in its raster:bands, which collection "
                    f"{coll.id!r} does not apply; {fix} with rescale=True, scale=10_000"
                )


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


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


def _collection_of(items: Any, collection: Collection | None, kind: str) -> Collection:
    if collection is not None:
        return collection
    if isinstance(items, SearchResult) and items.collection is not None:
        return items.collection
    return profile_for_items(as_items(items), kind)  # type: ignore[arg-type]


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
        return {"units": DB, "long_name": "Sentinel-1 backscatter", "stac_collection": coll.id}
    return {
        "units": "1e-4",
        "long_name": "Sentinel-2 reflectance x 10000",
        "stac_collection": coll.id,
    }


def _mosaic_passes(data: xr.DataArray, items: list[pystac.Item]) -> xr.DataArray:
    """One scene per pass (:func:`~floodxr.data.search.passes`): the first valid pixel of the
    pass's frames, in time order. ``items`` are ``data``'s, in its time order."""
    import stackstac

    index = {id(item): i for i, item in enumerate(items)}
    scenes = []
    for frames in passes(items):
        part = data.isel(time=[index[id(item)] for item in frames])
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


#: The layers floodxr reads besides the radar: collection ids on the Planetary Computer.
DEM_COLLECTION = "cop-dem-glo-30"
OCCURRENCE_COLLECTION = "jrc-gsw"


def load_layer(
    collection: str,
    *,
    like: xr.DataArray,
    catalog: Any = "planetary-computer",
    asset: str | None = None,
    resampling: Literal["bilinear", "nearest"] = "bilinear",
) -> xr.DataArray:
    """A static layer of a STAC collection on ``like``'s grid (lazy): a DEM (``cop-dem-glo-30``,
    asset ``data``, bilinear) or a surface-water occurrence (``jrc-gsw``, asset
    ``occurrence``, nearest). Every item over ``like`` is read; where they overlap the first
    valid pixel wins. NaN where no item has data.

    Examples
    --------
    >>> from floodxr.data import stac
    >>> from floodxr.data.load import load_layer
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     s1 = stac.load_s1(stac.search_s1(SYNTHETIC_BBOX, "2019-09-13", catalog=catalog),
    ...                       mosaic=True).isel(time=0)
    ...     dem = load_layer("cop-dem-glo-30", like=s1, catalog=catalog).compute()
    >>> dem.shape == s1.shape[1:], dem.attrs["stac_collection"]
    (True, 'cop-dem-glo-30')
    """
    import stackstac
    from rasterio.enums import Resampling

    from floodxr.data.catalogs import get_catalog
    from floodxr.data.client import api_errors, open_client

    if resampling not in ("bilinear", "nearest"):
        raise InvalidOptionError(f"resampling must be 'bilinear' or 'nearest', got {resampling!r}")
    cat = get_catalog(catalog)
    # read north-up, whatever the order of like's rows and columns, and flipped back at the end
    flips = flips_to_north_up(like)
    upright = like.isel(flips) if flips else like
    transform, epsg = grid_of(upright), like.rio.crs.to_epsg()
    west, south, east, north = like.rio.transform_bounds("EPSG:4326")
    with api_errors(cat.url, f"search {collection!r}"):
        items = list(
            open_client(cat)
            .search(collections=[collection], bbox=[west, south, east, north])
            .items()
        )
    if not items:
        raise NoItemsError(
            f"no item of {collection!r} in {cat.url!r} over {(west, south, east, north)}"
        )
    keys = sorted(items[0].assets)
    key = asset or ("data" if "data" in keys else keys[0] if len(keys) == 1 else None)
    if key is None or any(key not in i.assets for i in items):
        raise InvalidOptionError(
            f"which asset of {collection!r} to read? its items have {keys}; pass asset="
        )
    ny, nx = like.sizes["y"], like.sizes["x"]
    res = abs(transform.a)
    bounds = (transform.c, transform.f - ny * res, transform.c + nx * res, transform.f)
    stack = stackstac.stack(
        [stackstac_dict(item) for item in items],
        assets=[key],
        epsg=epsg,
        resolution=res,
        bounds=bounds,
        snap_bounds=False,
        chunksize=2048,
        dtype=np.dtype("float32"),
        fill_value=np.float32(np.nan),
        rescale=False,
        resampling=getattr(Resampling, resampling),
        xy_coords="center",
        gdal_env=gdal_env(),
        properties=False,
        band_coords=False,
    )
    nodata = _asset_nodata(items, [key])[:, :, None, None]
    if np.isfinite(nodata).any():
        import dask.array as dsa

        stack = stack.copy(data=dsa.where(stack.data == nodata, np.float32(np.nan), stack.data))
    layer = stackstac.mosaic(stack, dim="time").squeeze("band", drop=True)
    layer = layer.drop_vars([c for c in layer.coords if c not in ("y", "x")])
    layer = layer.assign_coords(y=upright["y"].values, x=upright["x"].values)
    layer = layer.isel(flips) if flips else layer
    layer.attrs = {"stac_collection": collection, "asset": key}
    layer = layer.rio.write_crs(f"EPSG:{epsg}")
    return layer.rio.write_transform(grid_of(layer)).rename(collection)
