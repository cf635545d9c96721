"""Reading a basin store back: the area table and one basin's maps."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from floodxr.basin.store import AREAS, MANIFEST
from floodxr.errors import BasinInputError

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

__all__ = ["composite", "open_basin", "report", "unit_polygons"]


def report(store: str | Path) -> pd.DataFrame:
    """The area table of a basin store: one row per finished (basin, time), in time order.

    ``floodxr basin-report OUT.zarr`` prints it (and ``--png`` plots it).

    Examples
    --------
    >>> import tempfile
    >>> from distributed import Client
    >>> from shapely.geometry import box
    >>> from floodxr.basin import run
    >>> from floodxr.testing.stac import serve_synthetic
    >>> store = tempfile.mkdtemp() + "/lake.zarr"
    >>> with serve_synthetic() as (catalog, _), Client(processes=False) as client:
    ...     _ = run({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-09",
    ...             catalog=catalog, store=store, client=client, progress=False)
    >>> areas = report(store)
    >>> areas["water_km2"].round(1).tolist(), areas["observed_fraction"].round(2).tolist()
    ([3.1, 5.8], [1.0, 1.0])
    """
    import pandas as pd

    path = Path(store)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BasinInputError(
            f"{str(path)!r} is not a floodxr basin store (no {MANIFEST}); pass the --store of a "
            "floodxr basin run"
        )
    manifest = json.loads(manifest_path.read_text())
    rows = []
    for entry in manifest["units"].values():
        basin = manifest["basins"][entry["basin"]]
        rows.append(
            {
                "basin": entry["basin"],
                "time": pd.Timestamp(entry["time"]),
                **{k: entry[k] for k in AREAS},
                "basin_km2": basin["basin_km2"],
                "items": " ".join(entry["items"]),
            }
        )
    columns = ["basin", "time", *AREAS, "basin_km2", "items"]
    frame = pd.DataFrame(rows, columns=columns)
    for key in AREAS:  # a unit without a reference has no flood area: None in JSON, NaN here
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype("float64")
    frame["observed_fraction"] = frame["observed_km2"] / frame["basin_km2"]
    return frame.sort_values(["basin", "time"], ignore_index=True)


def open_basin(store: str | Path, basin_id: str) -> xr.Dataset:
    """One basin's maps as a lazy Dataset with its CRS (``ds.rio.crs``), in time order.

    Examples
    --------
    >>> import tempfile
    >>> from distributed import Client
    >>> from shapely.geometry import box
    >>> from floodxr.basin import run
    >>> from floodxr.testing.stac import serve_synthetic
    >>> store = tempfile.mkdtemp() + "/lake.zarr"
    >>> with serve_synthetic() as (catalog, _), Client(processes=False) as client:
    ...     _ = run({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-09",
    ...             catalog=catalog, store=store, client=client, progress=False)
    >>> ds = open_basin(store, "lake")
    >>> ds.rio.crs.to_epsg(), ds.sizes["time"], ds["water"].shape
    (32630, 2, (2, 232, 268))
    >>> sorted(ds.data_vars)  # the passes' layers, the reference water, the event composite
    ['exclusion', 'first_flooded', 'flooded_passes', 'last_flooded', 'max_flood',
     'observed_passes', 'probability', 'reference', 'water']
    """
    path = Path(store)
    if not (path / str(basin_id)).exists():
        known = (
            sorted(json.loads((path / MANIFEST).read_text())["basins"])
            if (path / MANIFEST).is_file()
            else []
        )
        raise BasinInputError(f"no basin {basin_id!r} in {str(path)!r}; it holds {known}")
    ds = xr.open_zarr(
        path, group=str(basin_id), consolidated=False, decode_coords="all", mask_and_scale=False
    )
    return ds.sortby("time")


def composite(store: str | Path, basin_id: str, datetime: Any = None) -> xr.Dataset:
    """One basin's event composite (:func:`floodxr.product.composite`) over its passes in
    ``datetime`` (a STAC interval; None: all), from the flood layers (the water layers in a
    store without reference water). Lazy; basin runs store it in the basin's group.

    Examples
    --------
    >>> import tempfile
    >>> from distributed import Client
    >>> from shapely.geometry import box
    >>> from floodxr.basin import run
    >>> from floodxr.testing.stac import serve_synthetic
    >>> store = tempfile.mkdtemp() + "/lake.zarr"
    >>> with serve_synthetic() as (catalog, _), Client(processes=False) as client:
    ...     _ = run({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-09",
    ...             catalog=catalog, store=store, client=client, progress=False)
    >>> event = composite(store, "lake")
    >>> int(event.passes), int(event["flooded_passes"].max())
    (2, 2)
    """
    import numpy as np

    from floodxr.data.search import interval_bounds
    from floodxr.product import composite as reduce
    from floodxr.product import flood_codes

    ds = open_basin(store, basin_id)
    if datetime is not None:
        start, end = interval_bounds(datetime)
        times = ds["time"].values
        keep = np.ones(times.shape, bool)
        utc = dt.timezone.utc
        if start is not None:
            keep &= times >= np.datetime64(start.astimezone(utc).replace(tzinfo=None), "ns")
        if end is not None:  # the interval's end is exclusive
            keep &= times < np.datetime64(end.astimezone(utc).replace(tzinfo=None), "ns")
        ds = ds.isel(time=keep)
    layer = ds["water"]
    if "reference" in ds:
        layer = xr.apply_ufunc(
            flood_codes, ds["water"], ds["reference"], dask="parallelized", output_dtypes=["uint8"]
        )
    return reduce(layer.rio.write_crs(ds.rio.crs))


def unit_polygons(store: str | Path, basin_id: str, time: Any) -> gpd.GeoDataFrame:
    """The flood polygons of one (basin, pass) of a store (its water polygons when the run had
    no reference), in the basin's CRS, with ``area_km2`` (:func:`floodxr.polygons.to_polygons`).

    Examples
    --------
    >>> import tempfile
    >>> from distributed import Client
    >>> from shapely.geometry import box
    >>> from floodxr.basin import run
    >>> from floodxr.testing.stac import serve_synthetic
    >>> store = tempfile.mkdtemp() + "/lake.zarr"
    >>> with serve_synthetic() as (catalog, _), Client(processes=False) as client:
    ...     done = run({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-09",
    ...                catalog=catalog, store=store, client=client, progress=False)
    >>> polygons = unit_polygons(store, "lake", "2019-09-25T05:59:50")
    >>> round(float(polygons.area_km2.sum()), 1), float(done.areas.flood_km2.iloc[1].round(1))
    (2.7, 2.7)
    """
    import numpy as np

    from floodxr.bands import NODATA
    from floodxr.polygons import to_polygons

    ds = open_basin(store, basin_id)
    water = ds["water"].sel(time=np.datetime64(str(time).rstrip("Z"), "ns"))
    if "reference" in ds:
        reference = ds["reference"]
        unseen = (water == NODATA) | (reference == NODATA)
        flood = (water == 1) & (reference == 0)
        water = xr.where(unseen, np.uint8(NODATA), flood.astype("uint8")).astype("uint8")
    mask = water.rio.write_crs(ds.rio.crs).rio.write_nodata(NODATA)
    return to_polygons(mask)
