"""Stream results to disk, a few chunks at a time: Cloud-Optimized GeoTIFF and Zarr.

Both writers compute the result in groups of as many chunks as dask has threads and write each
group before computing the next, so memory stays bounded by the group whatever the scene size
(a single ``compute`` of a ``map_overlap`` graph keeps a whole row of neighbour strips alive).
Existing outputs are never replaced unless ``overwrite=True`` (and then only a file by a file,
a Zarr store by a store); a partial output is written under a fresh hidden name beside the target,
flushed to the disk and renamed at the end (:func:`atomic`, the one way every file floodxr writes
is written), so an interrupted write leaves no half file behind and a user's own ``*.partial``
file is never touched. Results are written north-up (``y`` descending, ``x`` ascending), flipped
first where they are not, on the grid of their coordinates (:func:`floodxr.grid.transform`).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import dask
import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.windows import Window
from tqdm.auto import tqdm

from floodxr.errors import (
    InvalidGridError,
    MissingDimensionError,
    OutputExistsError,
    OutputPathError,
    WrongTypeError,
)
from floodxr.grid import oriented, transform
from floodxr.options import OPTIONS

__all__ = [
    "VECTOR_FORMATS",
    "atomic",
    "block_regions",
    "north_up",
    "output_folder",
    "progress_over",
    "remove_partials",
    "to_cog",
    "to_vector",
    "to_zarr",
]

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def _creatable(path: str | Path, what: str, *, itself: bool = False) -> Path:
    """``path`` as a Path, refused when it is empty or lies under a file (or is one)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise OutputPathError(f"expected {what}, got {path!r}")
    path = Path(path)
    for candidate in ((path,) if itself else ()) + tuple(path.parents):
        if candidate.exists() and not candidate.is_dir():
            raise OutputPathError(
                f"{str(candidate)!r} is a file, so {str(path)!r} cannot be created as {what}; "
                "choose a path inside a folder"
            )
    return path


def _target(path: str | Path, overwrite: bool, kind: str) -> Path:
    """The output path, refused unless it can be written as ``kind`` ("file" or "store")."""
    path = _creatable(path, "an output path")
    if not path.exists():
        return path
    if not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} exists already; pass overwrite=True or choose another path"
        )
    if kind == "file" and path.is_dir():
        raise OutputPathError(
            f"{str(path)!r} is a folder, and a GeoTIFF is a file; give a file path, e.g. "
            f"{str(path / 'water.tif')!r} (floodxr never deletes a folder to write a file)"
        )
    if kind == "store" and not path.is_dir():
        raise OutputPathError(
            f"{str(path)!r} is a file, not a Zarr store; choose another path (floodxr replaces "
            "only Zarr stores with overwrite=True)"
        )
    if kind == "store" and not any((path / m).exists() for m in _ZARR_MARKERS):
        raise OutputPathError(
            f"{str(path)!r} is a folder that is not a Zarr store; floodxr replaces only Zarr "
            "stores with overwrite=True: choose another path"
        )
    return path


def output_folder(path: str | Path) -> Path:
    """Create the folder ``path`` (and its parents) for outputs, or refuse with the fix.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from floodxr.writers import output_folder
    >>> root = Path(tempfile.mkdtemp())
    >>> output_folder(root / "maps").is_dir()
    True
    >>> (root / "notes.txt").write_text("mine")
    4
    >>> output_folder(root / "notes.txt" / "maps")
    Traceback (most recent call last):
    ...
    floodxr.errors.OutputPathError: '.../notes.txt' is a file, so '.../maps' cannot be ...
    """
    path = _creatable(path, "a folder of outputs", itself=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(path, err) from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise _unwritable(path, PermissionError(errno.EACCES, "Permission denied"))
    return path


#: The errors of a place that cannot be written (as opposed to an input that cannot be read).
_WRITE_ERRORS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOTDIR,
    errno.EISDIR,
}


def _unwritable(path: Path, err: OSError) -> OutputPathError:
    reason = err.strerror or type(err).__name__
    return OutputPathError(
        f"cannot write {str(path)!r} ({reason}); choose a folder you can write to "
        "(e.g. --out under your home folder) or free some space"
    )


def _staging(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path`` for the partial output (never a user's own file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".floodxr-partial{suffix}", dir=path.parent
        )
    except OSError as err:
        raise _unwritable(path, err) from err
    os.close(handle)
    os.unlink(name)  # the name is ours; the writers create the file or the store themselves
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_partials(folder: str | Path) -> list[Path]:
    """Remove from ``folder`` the hidden partial outputs that killed writes left behind (names
    only :func:`atomic` makes); returns them. Call it only on a folder one run owns: a write in
    progress there would lose its partial file."""
    stale = sorted(Path(folder).glob(".*.floodxr-partial*"))
    for path in stale:
        _remove(path)
    return stale


def _fsync(path: Path) -> None:
    """Flush ``path`` to the disk: a file, or every file and folder of a store."""
    if path.is_dir():
        for member in sorted(path.rglob("*")):
            _fsync(member)
        _fsync_folder(path)
        return
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows): the rename is enough
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic(
    path: str | Path,
    *,
    overwrite: bool = False,
    kind: Literal["file", "store"] = "file",
    suffix: str | None = None,
) -> Iterator[Path]:
    """The one way floodxr writes a file or a store: yields a fresh hidden name beside ``path``
    to write to; when the block ends without an error the output is flushed to the disk (fsync)
    and renamed to ``path``, otherwise removed. A kill at any moment leaves either no file or a
    whole one under ``path``; an existing ``path`` is refused unless ``overwrite=True`` (a store
    is replaced only by a store); a folder that cannot be written raises
    :class:`~floodxr.errors.OutputPathError` naming it.

    ``suffix`` (default: ``path``'s) ends the hidden name, for writers that pick the format by it.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from floodxr.writers import atomic
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic(target) as partial:
    ...     _ = partial.write_text("whole")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('whole', ['notes.txt'])
    >>> with atomic(target) as partial:
    ...     pass
    Traceback (most recent call last):
    ...
    floodxr.errors.OutputExistsError: '.../notes.txt' exists already; pass overwrite=True ...
    """
    target = _target(path, overwrite, kind)
    partial = _staging(target, target.suffix if suffix is None else suffix)
    try:
        yield partial
        if not partial.exists():
            raise OutputPathError(f"nothing was written to {str(target)!r}")
        try:
            _fsync(partial)
            if kind == "store" and target.exists():
                # a folder cannot be renamed over another: move the old store aside first (a
                # kill between the two renames leaves the old one under its hidden name)
                old = _staging(target, ".old")
                target.rename(old)
                partial.rename(target)
                _remove(old)
            else:
                os.replace(partial, target)
            _fsync_folder(target.parent)
        except OSError as err:
            raise _unwritable(target, err) from err
    except OSError as err:
        if err.errno not in _WRITE_ERRORS:
            raise  # e.g. an input that cannot be read while the output is computed
        raise _unwritable(target, err) from err
    finally:
        _remove(partial)


XarrayT = TypeVar("XarrayT", xr.DataArray, xr.Dataset)


def north_up(obj: XarrayT) -> XarrayT:
    """``obj`` with ``y`` descending and ``x`` ascending (flipped lazily where needed), its
    transform recomputed from the coordinates: the only orientation a GeoTIFF is read right in.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.writers import north_up
    >>> da = xr.DataArray(np.arange(4).reshape(2, 2), dims=("y", "x"),
    ...                   coords={"y": [0.5, 1.5], "x": [0.5, 1.5]})
    >>> north_up(da).y.values.tolist(), north_up(da).values.tolist()
    ([1.5, 0.5], [[2, 3], [0, 1]])
    """
    return oriented(obj)[0]


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
    spans = {
        dim: list(itertools.pairwise(np.cumsum((0, *sizes)).tolist()))
        for dim, sizes in chunks.items()
    }
    outer = [d for d in spans if d != "x"]
    x_spans = spans.get("x", [(0, obj.sizes["x"])])
    for combo in itertools.product(*(spans[d] for d in outer)):
        for first in range(0, len(x_spans), group):
            piece = x_spans[first : first + group]
            region = {d: slice(*span) for d, span in zip(outer, combo, strict=True)}
            yield region | {"x": slice(piece[0][0], piece[-1][1])}


def progress_over(regions: list[dict], what: str) -> Iterator[dict]:
    """``regions`` with a progress bar (``set_options(progress=False)`` hides it)."""
    return iter(tqdm(regions, desc=what, disable=not OPTIONS["progress"] or len(regions) < 2))


def to_cog(
    da: xr.DataArray,
    path: str | Path,
    *,
    overwrite: bool = False,
    blocksize: int = 512,
    tags: Mapping[str, Any] | None = None,
) -> Path:
    """Write a ``(y, x)`` or ``(band, y, x)`` result as a Cloud-Optimized GeoTIFF (deflate).

    Chunk groups are written into a tiled GeoTIFF as they are computed; GDAL's COG driver then
    copies it with overviews (nearest for masks, average for probabilities) into ``path``.
    ``tags`` become the file's metadata (``rasterio``'s ``src.tags()``), values as text.

    Examples
    --------
    >>> import tempfile, rasterio, floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0, chunks=128)
    >>> path = scene.s1.flood.otsu().flood.to_cog(tempfile.mkdtemp() + "/water.tif")
    >>> with rasterio.open(path) as src:
    ...     src.profile["driver"], src.nodata, src.crs.to_epsg()
    ('GTiff', 255.0, 32633)
    """
    if not isinstance(da, xr.DataArray):
        raise WrongTypeError(
            f"to_cog writes one DataArray, got {type(da).__name__}; pick a "
            "variable, e.g. ds['water']"
        )
    path = _target(path, overwrite, "file")
    extra = [d for d in da.dims if d not in ("band", "y", "x")]
    if extra or da.dims[-2:] != ("y", "x"):
        raise MissingDimensionError(
            f"a GeoTIFF holds (y, x) or (band, y, x), got dims {tuple(da.dims)}; "
            + (
                f"write one file per {extra[0]} (da.isel({extra[0]}=i)) or use to_zarr"
                if extra
                else "order them with da.transpose(..., 'y', 'x')"
            )
        )
    if da.rio.crs is None:
        raise InvalidGridError(
            "the array has no CRS, so a GeoTIFF of it would be nowhere; set "
            "it with da.rio.write_crs('EPSG:32633')"
        )
    da = north_up(da)
    if da.dtype == bool or da.dtype.kind == "f" and da.dtype.itemsize < 4:
        da = da.astype("uint8" if da.dtype == bool else "float32")
    nodata = da.rio.nodata
    if nodata is None and da.dtype.kind == "f":
        nodata = np.nan
    bands = da.sizes.get("band", 1)
    staging = _staging(path, ".tif")  # the tiled scratch copy, from which the COG is made
    profile = {
        "driver": "GTiff",
        "height": da.sizes["y"],
        "width": da.sizes["x"],
        "count": bands,
        "dtype": da.dtype.name,
        "crs": da.rio.crs,
        "transform": transform(da),  # from the coordinates, never a stale GeoTransform
        "nodata": nodata,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    try:
        with atomic(path, overwrite=overwrite) as final:
            with rasterio.open(staging, "w", **profile) as dst:
                if tags:
                    dst.update_tags(**{str(k): str(v) for k, v in tags.items()})
                for region in progress_over(list(block_regions(da)), f"writing {path.name}"):
                    rows = region.get("y", slice(0, da.sizes["y"]))
                    cols = region.get("x", slice(0, da.sizes["x"]))
                    layers = region.get("band", slice(0, bands))
                    height, width = rows.stop - rows.start, cols.stop - cols.start
                    values = np.asarray(da.isel(region).values).reshape(-1, height, width)
                    dst.write(
                        values,
                        indexes=list(range(layers.start + 1, layers.stop + 1)),
                        window=Window(cols.start, rows.start, width, height),
                    )
            resampling = "AVERAGE" if da.dtype.kind == "f" else "NEAREST"
            rasterio.shutil.copy(
                staging,
                final,
                driver="COG",
                compress="DEFLATE",
                blocksize=blocksize,
                overview_resampling=resampling,
            )
    finally:
        _remove(staging)
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
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise WrongTypeError(f"to_zarr writes a DataArray or a Dataset, got {type(obj).__name__}")
    store = _target(store, overwrite, "store")
    ds = obj.to_dataset(name=obj.name or "result") if isinstance(obj, xr.DataArray) else obj
    ds = north_up(ds)
    if ds.chunks:
        ds = ds.chunk({dim: max(sizes) for dim, sizes in ds.chunks.items()})
    with atomic(store, overwrite=overwrite, kind="store", suffix=".zarr") as partial:
        if not ds.chunks:
            ds.to_zarr(partial, mode="w-", consolidated=False)
        else:
            ds.to_zarr(partial, mode="w-", compute=False, consolidated=False)
            for region in progress_over(list(block_regions(ds)), f"writing {store.name}"):
                dims = set(region)
                part = ds.drop_vars([n for n, v in ds.variables.items() if not dims & set(v.dims)])
                part = part.drop_vars([n for n in part.coords if n in part.indexes]).isel(region)
                for variable in part.variables.values():
                    # already in the store's metadata; xarray refuses to write it twice
                    variable.attrs.pop("_FillValue", None)
                part.to_zarr(partial, region=region, consolidated=False)
    return store


#: Vector formats by file suffix: (name, how geopandas writes it).
VECTOR_FORMATS = {
    ".parquet": "GeoParquet",
    ".geoparquet": "GeoParquet",
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
}


def to_vector(frame: Any, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a GeoDataFrame (``.flood.to_polygons()``) as GeoParquet, GeoPackage or GeoJSON,
    chosen by the suffix (:data:`VECTOR_FORMATS`); an existing file is replaced only with
    ``overwrite=True``, and a failed write leaves no partial file.

    Examples
    --------
    >>> import tempfile, geopandas, floodxr
    >>> scene = floodxr.testing.synthetic_scene((100, 100), seed=0)
    >>> path = floodxr.writers.to_vector(scene.water.flood.to_polygons(),
    ...                                  tempfile.mkdtemp() + "/water.gpkg")
    >>> list(geopandas.read_file(path).columns)
    ['area_km2', 'geometry']
    """
    import geopandas as gpd

    if not isinstance(frame, gpd.GeoDataFrame):
        raise WrongTypeError(
            f"to_vector writes a GeoDataFrame (from .flood.to_polygons()), got "
            f"{type(frame).__name__}"
        )
    path = _creatable(path, "a vector file path")
    kind = VECTOR_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise OutputPathError(
            f"{str(path)!r}: cannot tell the format from the suffix {path.suffix!r}; use one of "
            f"{sorted(VECTOR_FORMATS)} (GeoParquet, GeoPackage, GeoJSON)"
        )
    with atomic(path, overwrite=overwrite) as partial:
        if kind == "GeoParquet":
            frame.to_parquet(partial)
        else:
            # the layer is named after the final file, not the hidden partial one
            frame.to_file(partial, driver=kind, layer=path.stem)
    return path
