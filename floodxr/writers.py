"""Stream results to disk chunk by chunk: Cloud-Optimized GeoTIFF and Zarr.

Neither writer holds a scene in memory: dask chunks are written as they are computed. Existing
outputs are never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import rasterio.shutil
import xarray as xr

from floodxr.errors import MissingDimensionError, OutputExistsError

__all__ = ["to_cog", "to_zarr"]


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} exists already; pass overwrite=True or choose another path"
        )


def to_cog(
    da: xr.DataArray, path: str | Path, *, overwrite: bool = False, blocksize: int = 512
) -> Path:
    """Write a ``(y, x)`` or ``(band, y, x)`` result as a Cloud-Optimized GeoTIFF (deflate).

    The chunks go to a tiled GeoTIFF one window at a time, which GDAL's COG driver then copies
    with overviews (nearest for masks, average for probabilities) into ``path``.

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
    if extra:
        raise MissingDimensionError(
            f"a GeoTIFF holds (y, x) or (band, y, x), got dims {tuple(da.dims)}; write one "
            f"file per {extra[0]} (da.isel({extra[0]}=i)) or use to_zarr"
        )
    if da.rio.nodata is None and da.dtype.kind == "f":
        da = da.rio.write_nodata(np.nan, encoded=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".partial.tif")
    da.rio.to_raster(
        staging, tiled=True, blockxsize=blocksize, blockysize=blocksize, compress="deflate",
        lock=threading.Lock(), compute=True,
    )  # fmt: skip
    resampling = "AVERAGE" if da.dtype.kind == "f" else "NEAREST"
    final = path.with_name(path.name + ".cog.partial")
    rasterio.shutil.copy(staging, final, driver="COG", compress="DEFLATE",
                         blocksize=blocksize, overview_resampling=resampling)  # fmt: skip
    staging.unlink()
    final.replace(path)
    return path


def to_zarr(obj: xr.DataArray | xr.Dataset, store: str | Path, *, overwrite: bool = False) -> Path:
    """Write a result (with its CRS as the ``spatial_ref`` coordinate) to a Zarr store.

    Chunks are made uniform (Zarr needs that) and written as they are computed.

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
    if overwrite and store.exists():
        shutil.rmtree(store)
    ds.to_zarr(store, mode="w-", compute=True, consolidated=False)
    return store
