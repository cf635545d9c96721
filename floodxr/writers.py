"""Stream results to disk, a few chunks at a time: Cloud-Optimized GeoTIFF and Zarr.

Both writers compute the result in groups of as many chunks as dask has threads and write each
group before computing the next, so memory stays bounded by the group whatever the scene size
(a single ``compute`` of a ``map_overlap`` graph keeps a whole row of neighbour strips alive).
Existing outputs are never replaced unless ``overwrite=True``; a partial output is written
beside the target and renamed at the end, so an interrupted write leaves no half file behind.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import dask
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.windows import Window
from tqdm.auto import tqdm

from floodxr.errors import MissingDimensionError, OutputExistsError
from floodxr.options import OPTIONS

__all__ = ["to_cog", "to_zarr", "block_regions"]


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} exists already; pass overwrite=True or choose another path"
        )


def block_regions(obj: xr.DataArray | xr.Dataset, group: int | None = None) -> Iterator[dict]:
    """Regions ``{dim: slice}`` covering ``obj`` chunk by chunk, ``group`` chunks along ``x`` each.

    Non-dask objects give one region. ``group`` defaults to dask's thread count, so that every
    thread has a chunk to work on.

    Examples
    --------
    >>> import floodxr
    >>> from floodxr.writers import block_regions
    >>> scene = floodxr.testing.synthetic_scene((100, 100), seed=0, chunks=50)
    >>> for region in block_regions(scene.water, group=2):
    ...     print(region["y"], region["x"])
    slice(0, 50, None) slice(0, 100, None)
    slice(50, 100, None) slice(0, 100, None)
    """
    chunks = obj.chunksizes if isinstance(obj, xr.DataArray) else obj.chunks
    if not chunks:
        yield {}
        return
    group = group or dask.config.get("num_workers", None) or os.cpu_count() or 1
    spans = {dim: list(itertools.pairwise(np.cumsum((0, *sizes)).tolist()))
             for dim, sizes in chunks.items()}  # fmt: skip
    outer = [d for d in spans if d != "x"]
    x_spans = spans.get("x", [(0, obj.sizes["x"])])
    for combo in itertools.product(*(spans[d] for d in outer)):
        for first in range(0, len(x_spans), group):
            piece = x_spans[first : first + group]
            region = {d: slice(*span) for d, span in zip(outer, combo, strict=True)}
            yield region | {"x": slice(piece[0][0], piece[-1][1])}


def _progress(regions: list[dict], what: str) -> Iterator[dict]:
    return iter(tqdm(regions, desc=what, disable=not OPTIONS["progress"] or len(regions) < 2))


def to_cog(
    da: xr.DataArray, path: str | Path, *, overwrite: bool = False, blocksize: int = 512
) -> Path:
    """Write a ``(y, x)`` or ``(band, y, x)`` result as a Cloud-Optimized GeoTIFF (deflate).

    Chunk groups are written into a tiled GeoTIFF as they are computed; GDAL's COG driver then
    copies it with overviews (nearest for masks, average for probabilities) into ``path``.

    Examples
    --------
    >>> import tempfile, rasterio, floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0, chunks=128)
    >>> path = scene.s1.flood.otsu().flood.to_cog(tempfile.mkdtemp() + "/water.tif")
    >>> with rasterio.open(path) as src:
    ...     src.profile["driver"], src.nodata, src.crs.to_epsg()
    ('GTiff', 255.0, 32633)
    """
    path = Path(path)
    _refuse_existing(path, overwrite)
    extra = [d for d in da.dims if d not in ("band", "y", "x")]
    if extra or da.dims[-2:] != ("y", "x"):
        raise MissingDimensionError(
            f"a GeoTIFF holds (y, x) or (band, y, x), got dims {tuple(da.dims)}; "
            + (f"write one file per {extra[0]} (da.isel({extra[0]}=i)) or use to_zarr"
               if extra else "order them with da.transpose(..., 'y', 'x')")
        )  # fmt: skip
    nodata = da.rio.nodata
    if nodata is None and da.dtype.kind == "f":
        nodata = np.nan
    bands = da.sizes.get("band", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".partial.tif")
    profile = {
        "driver": "GTiff", "height": da.sizes["y"], "width": da.sizes["x"], "count": bands,
        "dtype": da.dtype.name, "crs": da.rio.crs, "transform": da.rio.transform(),
        "nodata": nodata, "tiled": True, "blockxsize": blocksize, "blockysize": blocksize,
        "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    with rasterio.open(staging, "w", **profile) as dst:
        for region in _progress(list(block_regions(da)), f"writing {path.name}"):
            rows = region.get("y", slice(0, da.sizes["y"]))
            cols = region.get("x", slice(0, da.sizes["x"]))
            layers = region.get("band", slice(0, bands))
            height, width = rows.stop - rows.start, cols.stop - cols.start
            values = np.asarray(da.isel(region).values).reshape(-1, height, width)
            dst.write(values, indexes=list(range(layers.start + 1, layers.stop + 1)),
                      window=Window(cols.start, rows.start, width, height))  # fmt: skip
    resampling = "AVERAGE" if da.dtype.kind == "f" else "NEAREST"
    final = path.with_name(path.name + ".cog.partial")
    rasterio.shutil.copy(staging, final, driver="COG", compress="DEFLATE",
                         blocksize=blocksize, overview_resampling=resampling)  # fmt: skip
    staging.unlink()
    final.replace(path)
    return path


def to_zarr(obj: xr.DataArray | xr.Dataset, store: str | Path, *, overwrite: bool = False) -> Path:
    """Write a result (with its CRS as the ``spatial_ref`` coordinate) to a Zarr store.

    Chunks are made uniform (Zarr needs that); the store's metadata is written first, then each
    chunk group into its region.

    Examples
    --------
    >>> import tempfile, xarray as xr, floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0, chunks=100)
    >>> store = scene.s1.flood.otsu().flood.to_zarr(tempfile.mkdtemp() + "/water.zarr")
    >>> back = xr.open_zarr(store, decode_coords="all", mask_and_scale=False, consolidated=False)
    >>> str(back.water.dtype), back.water.rio.crs.to_epsg()
    ('uint8', 32633)
    """
    store = Path(store)
    _refuse_existing(store, overwrite)
    ds = obj.to_dataset(name=obj.name or "result") if isinstance(obj, xr.DataArray) else obj
    if ds.chunks:
        ds = ds.chunk({dim: max(sizes) for dim, sizes in ds.chunks.items()})
    partial = store.with_name(store.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    if not ds.chunks:
        ds.to_zarr(partial, mode="w-", consolidated=False)
    else:
        ds.to_zarr(partial, mode="w-", compute=False, consolidated=False)
        for region in _progress(list(block_regions(ds)), f"writing {store.name}"):
            dims = set(region)
            part = ds.drop_vars([n for n, v in ds.variables.items() if not dims & set(v.dims)])
            part = part.drop_vars([n for n in part.coords if n in part.indexes]).isel(region)
            for variable in part.variables.values():
                # already in the store's metadata; xarray refuses to write it twice
                variable.attrs.pop("_FillValue", None)
            part.to_zarr(partial, region=region, consolidated=False)
    if overwrite and store.exists():
        shutil.rmtree(store)
    partial.rename(store)
    return store
