"""Basin-scale runs on a Dask distributed cluster: polygons in, flood maps and areas out.

:func:`run` maps every Sentinel-1 pass over every basin and writes the maps into a Zarr store
and an area table; :func:`report` and :func:`open_basin` read them back. The modules:

* :mod:`floodxr.basin.inputs`: basin polygons (:func:`read_basins`), each basin's grid, the
  reference (dates or a water mask), the checks made before anything starts;
* :mod:`floodxr.basin.cluster`: worker processes set up for torch (:func:`start_cluster`) and the
  model shipped to them;
* :mod:`floodxr.basin.store`: the Zarr store and its manifest;
* :mod:`floodxr.basin.chunks`: the per-chunk writer that runs on the workers;
* :mod:`floodxr.basin.runner`: the orchestration;
* :mod:`floodxr.basin.results`: the area table and one basin's maps.

The area table (``OUT.areas.csv`` by default)
    One row per (basin, time): ``water_km2``, ``flood_km2`` (water over reference-dry pixels;
    empty without a reference), ``observed_km2`` (pixels a scene saw), ``basin_km2`` (geodesic
    polygon area). Areas follow :func:`floodxr.grid.block_area_km2`: each chunk's nominal pixel
    area divided by the projection's areal scale at the chunk (UTM is conformal, not equal-area:
    up to 0.2 % at a zone's edge).
"""

from floodxr.basin.cluster import WORKER_ENVIRON, start_cluster
from floodxr.basin.inputs import (
    Basin,
    ReferenceDates,
    ReferenceMask,
    check_inputs,
    read_basins,
)
from floodxr.basin.results import open_basin, report
from floodxr.basin.runner import BasinRun, run

__all__ = [
    "Basin",
    "BasinRun",
    "ReferenceDates",
    "ReferenceMask",
    "WORKER_ENVIRON",
    "check_inputs",
    "open_basin",
    "read_basins",
    "report",
    "run",
    "start_cluster",
]
