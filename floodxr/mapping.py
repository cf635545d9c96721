"""One command for one flood map: search, load, segment every pass, write the outputs.

:func:`map_floods` (``floodxr map``) checks its inputs before any request, searches the STAC
API for the Sentinel-1 passes over a bounding box, and for each pass, lazily and chunk by chunk,
writes into one folder:

``<time>_probability.tif``
    the water probability (float32 COG, NaN nodata);
``<time>_water.tif``
    the water mask (uint8 COG: 1 water, 0 not water, 255 nodata);
``<time>_flood.tif``
    with a reference: flood (water where the reference was dry), same coding;
``<time>_polygons.parquet``
    the flood polygons (the water polygons without a reference), GeoParquet with ``area_km2``;
``<time>_overlay.png``
    the VH backscatter with the water (or flood) on top;

and one ``areas.csv``: per pass its time, frames, ``water_km2``, ``flood_km2`` and
``observed_km2`` (the area the pass saw). ``<time>`` is the pass's UTC start,
``YYYYmmddTHHMMSS``. Every file is written under a hidden name and renamed when whole, and
``<time>_areas.json`` marks a pass finished. ``floodxr-map.json`` records the request: the same
request run again in the same folder (after a kill or Ctrl-C) keeps the finished passes and
maps the rest; another request there is refused unless ``overwrite``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import xarray as xr

from floodxr._valid import number
from floodxr.bands import NODATA
from floodxr.errors import InvalidOptionError, NoItemsError, OutputExistsError
from floodxr.grid import align
from floodxr.segment import water_cut
from floodxr.writers import atomic, output_folder, remove_partials

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FloodMap", "map_floods"]

#: The request a folder's map was made for: a re-run of the same request completes it.
RECORD = "floodxr-map.json"

#: The largest grid of one pass ``floodxr map`` takes (about ten Sentinel-1 IW scenes at 10 m):
#: beyond it the task graph alone outgrows a workstation; a larger area is a basin run.
MAX_PASS_PIXELS = 2**32

#: Longest side, in pixels, of the overlay pictures (the data is subsampled to it).
PICTURE_PX = 1600


@dataclasses.dataclass
class FloodMap:
    """What :func:`map_floods` wrote: the folder, the area table and the files per pass."""

    out: Path
    areas: pd.DataFrame
    files: dict[str, list[Path]]


def check_inputs(
    bbox: Any,
    datetime: Any,
    *,
    out: str | Path,
    catalog: Any,
    model: str,
    reference: Any,
    resolution: float | None,
) -> tuple[tuple[float, float, float, float], Path]:
    """Every check that needs no network: the box, the dates, the model, the output folder."""
    from floodxr import models
    from floodxr.data.catalogs import get_catalog
    from floodxr.data.search import check_bbox, check_reference_before, format_datetime
    from floodxr.segment import THRESHOLD_MODELS

    box = check_bbox(bbox)
    format_datetime(datetime)
    if reference is not None:
        check_reference_before(reference, datetime)
    get_catalog(catalog)
    if resolution is not None:
        number(resolution, "resolution (metres)", above=0)
    _check_size(box, 10.0 if resolution is None else float(resolution))
    if model in THRESHOLD_MODELS:
        raise InvalidOptionError(
            f"model {model!r} thresholds a whole scene at once; floodxr map streams chunks: use a "
            "network model (e.g. 'student')"
        )
    models.load(model)  # a missing or corrupt checkpoint is named before any request
    return box, Path(out)


def _check_size(box: tuple[float, float, float, float], resolution: float) -> None:
    """Refuse a box whose pass grid exceeds :data:`MAX_PASS_PIXELS` at ``resolution``, before
    any request: the estimate, and the resolution or box that would fit."""
    west, south, east, north = box
    middle = math.radians((south + north) / 2)
    width_m = (east - west) * 111_320.0 * math.cos(middle)  # metres per degree (WGS 84)
    height_m = (north - south) * 110_574.0
    pixels = width_m * height_m / resolution**2
    if pixels > MAX_PASS_PIXELS:
        fits = math.ceil(math.sqrt(width_m * height_m / MAX_PASS_PIXELS))
        raise InvalidOptionError(
            f"the box {box} is about {width_m / 1e3:,.0f} x {height_m / 1e3:,.0f} km: "
            f"{pixels / 1e9:,.1f} Gpx per pass at {resolution:g} m (float32 probability alone "
            f"{pixels * 4 / 2**30:,.0f} GiB), more than floodxr map takes "
            f"({MAX_PASS_PIXELS / 1e9:.1f} Gpx, about ten Sentinel-1 scenes); choose a smaller "
            f"box, or --resolution {fits} or coarser"
        )


def map_floods(
    bbox: Any,
    datetime: Any,
    *,
    out: str | Path,
    catalog: Any = "planetary-computer",
    collection: Any = None,
    model: str = "student",
    reference: Any = None,
    resolution: float | None = 10.0,
    overwrite: bool = False,
    progress: bool | None = None,
) -> FloodMap:
    """Map water (and flood, with ``reference`` dates) for every Sentinel-1 pass over ``bbox``.

    Parameters
    ----------
    bbox : (west, south, east, north) in degrees
    datetime : the passes to map, a STAC interval like ``"2019-09-01/2019-09-30"``
    out : the folder to write into (created)
    catalog, collection : where to search (:func:`floodxr.data.stac.search_s1`)
    model : a registered model or a checkpoint path
    reference : pre-flood dates: flood = water where the median water probability of the
        reference passes is below 0.5
    resolution : pixel size in metres (UTM); None: the items' own
    overwrite : replace files of an earlier run
    progress : show progress bars (default: ``set_options(progress=)``)

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.mapping import map_floods
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     result = map_floods((-0.05, 39.02, -0.02, 39.04), "2019-09-20/2019-09-30",
    ...                         catalog=catalog, out=tempfile.mkdtemp(),
    ...                         reference="2019-09-01/2019-09-15", progress=False)
    >>> result.areas[["water_km2", "flood_km2"]].round(1).values.tolist()
    [[6.2, 3.1]]
    >>> sorted(p.name.split("_", 1)[1] for p in next(iter(result.files.values())))
    ['flood.tif', 'overlay.png', 'polygons.parquet', 'probability.tif', 'water.tif']
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from floodxr import models
    from floodxr.data import stac
    from floodxr.data.catalogs import get_catalog
    from floodxr.options import OPTIONS, set_options

    box, folder = check_inputs(
        bbox,
        datetime,
        out=out,
        catalog=catalog,
        model=model,
        reference=reference,
        resolution=resolution,
    )
    folder = output_folder(folder)
    table = folder / "areas.csv"
    request = {
        "bbox": list(box),
        "datetime": str(datetime),
        "reference": None if reference is None else str(reference),
        "catalog": get_catalog(catalog).url,
        "collection": None if collection is None else str(collection),
        "model": str(models.resolve(model).resolve()),
        # a checkpoint retrained in place is another model: its finished passes are not ours
        "model_sha256": hashlib.sha256(models.resolve(model).read_bytes()).hexdigest(),
        "resolution": resolution,
    }
    resume = _resumable(folder, request, overwrite)
    remove_partials(folder)  # left by a killed run of this map (the folder is ours from here)
    with atomic(folder / RECORD, overwrite=True) as partial:  # refused above unless ours
        partial.write_text(json.dumps(request, indent=1) + "\n")
    found = stac.search_s1(box, datetime, catalog=catalog, collection=collection)
    cube = stac.load_s1(found, bbox=box, resolution=resolution, mosaic=True, chunks=2048)
    rows, files = [], {}
    show = OPTIONS["progress"] if progress is None else progress
    # a re-run of the same request replaces only the files of passes it had not finished
    replace = overwrite or resume
    with set_options(progress=show):
        before = None
        if reference is not None:
            before = _reference(
                stac, box, reference, catalog, collection, cube, model, folder, replace, resume
            )
        for t in tqdm(range(cube.sizes["time"]), desc="passes", disable=not show):
            scene = cube.isel(time=t)
            stamp = np.datetime_as_string(scene.time.values, unit="s").replace("-", "")
            stamp = stamp.replace(":", "")
            done = folder / f"{stamp}_areas.json"
            if resume and done.is_file():
                finished = json.loads(done.read_text())
                written, areas = [folder / n for n in finished["files"]], finished["areas"]
            else:
                written, areas = _map_pass(scene, folder, stamp, model, before, replace)
                # the pass's last file: once it is there, every file of the pass is whole
                with atomic(done, overwrite=True) as partial:
                    partial.write_text(
                        json.dumps({"files": [p.name for p in written], "areas": areas})
                    )
            files[stamp] = written
            rows.append({"time": pd.Timestamp(scene.time.values), "id": str(scene.id.values)})
            rows[-1] |= areas
    frame = pd.DataFrame(rows)
    with atomic(table, overwrite=True) as partial:  # refused above unless overwrite or ours
        frame.to_csv(partial, index=False)
    return FloodMap(out=folder, areas=frame, files=files)


def _resumable(folder: Path, request: dict[str, Any], overwrite: bool) -> bool:
    """Whether ``folder`` holds an unfinished or finished map of the same ``request`` (then a
    re-run completes it); an earlier map of another request is refused unless ``overwrite``."""
    record = folder / RECORD
    if record.is_file() and not overwrite:
        try:
            earlier = json.loads(record.read_text())
        except ValueError:
            earlier = {}
        if earlier == request:
            return True
        changed = sorted(k for k in request if earlier.get(k) != request[k])
        raise OutputExistsError(
            f"{str(folder)!r} holds an earlier map of another request (it differs in "
            f"{', '.join(changed)}); pass overwrite=True (--overwrite) or choose another --out"
        )
    table = folder / "areas.csv"
    if table.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(table)!r} exists already (an earlier map); pass overwrite=True "
            "(--overwrite) or choose another --out"
        )
    return False


def _reference(
    stac: Any,
    box: Any,
    reference: Any,
    catalog: Any,
    collection: Any,
    like: Any,
    model: str,
    folder: Path,
    overwrite: bool,
    resume: bool,
) -> xr.DataArray:
    """Reference water on ``like``'s grid, written once as ``reference_water.tif`` (1 water,
    0 dry, 255 unseen) and read back lazily: the median water probability of the passes in
    ``reference``, water where >= 0.5. A resumed map reads the one it wrote (written whole or
    not at all)."""
    from floodxr.writers import to_cog

    path = folder / "reference_water.tif"
    if resume and path.is_file():
        return _read(path)

    try:
        found = stac.search_s1(box, reference, catalog=catalog, collection=collection)
    except NoItemsError as err:
        raise NoItemsError(
            f"no Sentinel-1 pass in the reference dates {reference!r} over {box}; widen them"
        ) from err
    cube = stac.load(found, kind="s1", like=like.isel(time=0), mosaic=True, chunks=2048)
    probability = cube.flood.segment(model=model).chunk({"time": -1})
    median = probability.median("time", skipna=True)
    to_cog(_mask(median.notnull(), median >= 0.5), path, overwrite=overwrite)
    return _read(path)


def _map_pass(
    scene: xr.DataArray,
    folder: Path,
    stamp: str,
    model: str,
    before: xr.DataArray | None,
    overwrite: bool,
) -> tuple[list[Path], dict[str, float]]:
    from floodxr.writers import to_cog, to_vector

    names = {
        kind: folder / f"{stamp}_{kind}.{suffix}"
        for kind, suffix in (
            ("probability", "tif"),
            ("water", "tif"),
            ("flood", "tif"),
            ("polygons", "parquet"),
            ("overlay", "png"),
        )
    }
    if before is None:
        del names["flood"]
    existing = [str(p) for p in names.values() if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing} exist already; pass overwrite=True (--overwrite)")
    # the network runs once: the probability is written, the rest is read back from it
    segmented = scene.flood.segment(model=model)
    to_cog(segmented, names["probability"], overwrite=overwrite)
    probability = _read(names["probability"], masked=True)
    water = _mask(probability.notnull(), probability >= water_cut(segmented))
    to_cog(water, names["water"], overwrite=overwrite)
    water = _read(names["water"])
    shown = water
    seen = water != NODATA
    # both areas in one pass over the water COG
    water_km2, observed_km2 = dask.compute(
        water.flood.area_km2(), _mask(seen, seen).flood.area_km2()
    )
    areas = {
        "water_km2": float(water_km2),
        "observed_km2": float(observed_km2),
        "flood_km2": float("nan"),
    }
    if before is not None:
        # loaded like the pass, the reference is on its grid; laid on it by coordinates all
        # the same (a pixel it did not see is never flood)
        known = align(before, water, "the reference water")
        flood = _mask(seen & known.notnull() & (known != NODATA), (water == 1) & (known == 0))
        to_cog(flood, names["flood"], overwrite=overwrite)
        shown = _read(names["flood"])
        areas["flood_km2"] = float(shown.flood.area_km2())
    to_vector(shown.flood.to_polygons(), names["polygons"], overwrite=overwrite)
    _picture(scene, shown, names["overlay"], stamp, before is not None)
    return list(names.values()), areas


def _read(path: Path, masked: bool = False) -> xr.DataArray:
    """A one-band GeoTIFF written above, opened lazily as ``(y, x)``."""
    import rioxarray

    opened = rioxarray.open_rasterio(path, chunks=2048, masked=masked)
    assert isinstance(opened, xr.DataArray)  # one band written by to_cog, never user input
    return opened.squeeze("band", drop=True)


def _mask(valid: xr.DataArray, water: xr.DataArray) -> xr.DataArray:
    """uint8 mask: 1 where ``water``, 0 where not, 255 where not ``valid``; CRS kept."""
    mask = xr.where(valid, water.astype("uint8"), np.uint8(NODATA)).astype("uint8")
    return mask.rio.write_nodata(NODATA)


def _picture(scene: xr.DataArray, shown: xr.DataArray, path: Path, stamp: str, flood: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    step = max(1, -(-max(scene.sizes["y"], scene.sizes["x"]) // PICTURE_PX))
    every = {"y": slice(None, None, step), "x": slice(None, None, step)}
    what = "flood" if flood else "water"
    axis = scene.isel(every).flood.plot(
        shown.isel(every), title=f"Sentinel-1 {stamp} UTC with {what} (floodxr)"
    )
    with atomic(path, overwrite=True) as partial:  # refused in _map_pass unless overwrite
        axis.figure.savefig(partial, dpi=110)
