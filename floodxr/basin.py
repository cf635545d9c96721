"""Basin-scale runs on a Dask distributed cluster: polygons in, flood maps and areas out.

:func:`run` maps every Sentinel-1 acquisition over every basin: search the STAC API (on the
client, cheap), then for each *unit* (basin, acquisition) one dask graph that loads the
acquisition's frames onto the basin's grid, segments them, clips them to the polygon and writes
each chunk straight into the store while measuring its area. Nothing bigger than a chunk is held
anywhere, so memory per worker does not grow with the basin.

The store (``OUT.zarr``)
    One group per basin id, each an xarray Dataset on the basin's own grid (the UTM zone of its
    centroid, north-up, pixel edges on multiples of the resolution): ``probability`` (time, y, x)
    float32, NaN outside the polygon and where no scene looked; ``water`` (time, y, x) uint8, 1
    water, 0 not water, 255 nodata; ``reference`` (y, x) uint8 when a reference was given; the
    CRS as the ``spatial_ref`` coordinate. New acquisitions are appended along ``time``.
    ``manifest.json`` records the run's settings and every finished unit with its areas.
The area table (``OUT.areas.csv`` by default)
    One row per (basin, time): ``water_km2``, ``flood_km2`` (water over reference-dry pixels;
    empty without a reference), ``observed_km2`` (pixels a scene saw), ``basin_km2`` (geodesic
    polygon area). Areas are ellipsoidal: each chunk's pixel area is divided by the projection's
    areal scale at the chunk (UTM is conformal, not equal-area: up to 0.2 % at a zone's edge).

Resuming and exactness
    A unit is written chunk by chunk into its own time slice; writing a chunk twice writes the
    same bytes, so a unit whose worker dies is simply recomputed by dask. The client adds a unit
    to the manifest (atomically) only after all its chunks are written; a re-run skips the units
    listed there. Torch runs with a fixed thread count in every worker, so results do not depend
    on which worker, or how many, computed them.

The model
    travels to the workers once, as a worker plugin carrying the checkpoint's bytes; each worker
    process writes it to its local directory and registers it under a content-hash name, which
    is all the task graphs mention.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.array as dsa
import numpy as np
import xarray as xr
from affine import Affine
from distributed.diagnostics.plugin import WorkerPlugin

from floodxr._valid import masked, number
from floodxr.bands import NODATA, S1_BANDS
from floodxr.errors import (
    BasinInputError,
    FloodxrWarning,
    InvalidOptionError,
    NoItemsError,
    RunMismatchError,
)

if TYPE_CHECKING:
    import pandas as pd
    import pystac
    from distributed import Client

__all__ = [
    "Basin",
    "BasinRun",
    "read_basins",
    "run",
    "report",
    "open_basin",
    "start_cluster",
    "WORKER_ENVIRON",
]

#: Environment of LocalCluster worker processes. The nanny's default ``MALLOC_TRIM_THRESHOLD_``
#: (64 KiB) made torch 2x slower (measured, see docs/basin.md); one OpenMP thread per worker
#: thread avoids oversubscribing the cores.
WORKER_ENVIRON = {
    "MALLOC_TRIM_THRESHOLD_": str(2**28),
    "MALLOC_MMAP_THRESHOLD_": str(2**28),
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
#: glibc reads these when a process starts: the nanny must set them before spawning a worker
_PRE_SPAWN = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

_FORMAT = "floodxr-basin/1"
_MANIFEST = "manifest.json"
_AREAS = ("water_km2", "flood_km2", "observed_km2")
_LOAD_CHUNK = 2048


@dataclass(frozen=True)
class Basin:
    """One basin: an id and a lon/lat polygon (EPSG:4326)."""

    id: str
    geometry: Any

    @property
    def epsg(self) -> int:
        """The UTM zone of the basin's centroid."""
        from floodxr.data.stac import utm_epsg

        centre = self.geometry.centroid
        return utm_epsg(centre.x, centre.y)

    @property
    def area_km2(self) -> float:
        """Geodesic area of the polygon on the WGS84 ellipsoid."""
        from pyproj import Geod

        area, _ = Geod(ellps="WGS84").geometry_area_perimeter(self.geometry)
        return abs(area) / 1e6

    def projected(self, epsg: int) -> Any:
        """The polygon in ``epsg``, its edges densified (straight in degrees, curved in UTM)."""
        import shapely
        from pyproj import Transformer

        dense = shapely.segmentize(self.geometry, max_segment_length=0.001)
        to_grid = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
        return shapely.transform(dense, to_grid.transform, interleaved=False)

    def fingerprint(self) -> str:
        return hashlib.sha256(self.geometry.normalize().wkb).hexdigest()[:16]


@dataclass(frozen=True)
class _Grid:
    epsg: int
    resolution: float
    west: float
    north: float
    ny: int
    nx: int

    @classmethod
    def of(cls, basin: Basin, resolution: float) -> _Grid:
        epsg = basin.epsg
        west, south, east, north = basin.projected(epsg).bounds
        west, south = (math.floor(v / resolution) * resolution for v in (west, south))
        east, north = (math.ceil(v / resolution) * resolution for v in (east, north))
        return cls(
            epsg,
            resolution,
            west,
            north,
            round((north - south) / resolution),
            round((east - west) / resolution),
        )

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0.0, self.west, 0.0, -self.resolution, self.north)

    def template(self, chunk: int) -> xr.DataArray:
        """A lazy (y, x) array on the grid with its CRS: what ``stac.load(like=...)`` needs."""
        from rioxarray.rioxarray import affine_to_coords

        data = dsa.zeros((self.ny, self.nx), dtype="uint8", chunks=chunk)
        da = xr.DataArray(
            data, dims=("y", "x"), coords=affine_to_coords(self.transform, self.nx, self.ny)
        )
        return da.rio.write_crs(f"EPSG:{self.epsg}").rio.write_transform(self.transform)

    def padded(self, margin: int) -> _Grid:
        """The grid grown by ``margin`` px on every side."""
        pad = margin * self.resolution
        return _Grid(
            self.epsg,
            self.resolution,
            self.west - pad,
            self.north + pad,
            self.ny + 2 * margin,
            self.nx + 2 * margin,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "epsg": self.epsg,
            "resolution": self.resolution,
            "west": self.west,
            "north": self.north,
            "ny": self.ny,
            "nx": self.nx,
        }


@dataclass(frozen=True)
class _Unit:
    """One acquisition (the frames of one pass) over one basin."""

    basin: Basin
    time: np.datetime64
    items: tuple[Any, ...]

    @property
    def key(self) -> str:
        return f"{self.basin.id}/{_iso(self.time)}"


@dataclass
class BasinRun:
    """What :func:`run` did.

    Attributes
    ----------
    store, table : where the maps and the area table are
    areas : the area table (every finished unit, not only this run's)
    computed, skipped : unit keys (``"basin/time"``) run now, and found finished in the manifest
    empty : basins without any acquisition in the dates asked for
    """

    store: Path
    table: Path
    areas: pd.DataFrame
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)


def _iso(time: np.datetime64) -> str:
    return f"{np.asarray(time).astype('datetime64[s]')}Z"


# --------------------------------------------------------------------------------------------
# basins


def read_basins(basins: Any, *, id_column: str = "id") -> list[Basin]:
    """Basins from a GeoJSON file, a GeoDataFrame, a table with a ``geometry`` column, or a
    mapping ``{id: geometry}`` (shapely geometries or GeoJSON dicts), in lon/lat.

    Parameters
    ----------
    basins : see above; HydroBASINS-style polygons (Polygon or MultiPolygon)
    id_column : the property / column holding each basin's id (``HYBAS_ID`` for HydroBASINS)

    Raises
    ------
    BasinInputError
        Missing id column, duplicate ids, empty or invalid geometries, non-polygons, or a
        GeoDataFrame that is not in lon/lat and cannot be reprojected.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> from floodxr.basin import read_basins
    >>> [b.id for b in read_basins({"upper": box(0.0, 39.0, 0.1, 39.1), 7: box(0, 38, 1, 39)})]
    ['upper', '7']
    """
    import shapely
    from shapely.geometry import shape

    pairs: list[tuple[Any, Any]]
    if isinstance(basins, (str, Path)):
        pairs = _geojson_pairs(Path(basins), id_column)
    elif hasattr(basins, "columns") and "geometry" in getattr(basins, "columns", ()):
        frame = basins
        crs = getattr(frame, "crs", None)
        if crs is not None and hasattr(frame, "to_crs"):
            frame = frame.to_crs(4326)
        if id_column not in frame.columns:
            raise BasinInputError(
                f"the basins table has no id column {id_column!r} (columns: "
                f"{[str(c) for c in frame.columns]}); pass id_column= naming one"
            )
        pairs = list(zip(frame[id_column], frame["geometry"], strict=True))
    elif isinstance(basins, Mapping):
        pairs = list(basins.items())
    else:
        raise BasinInputError(
            f"basins must be a GeoJSON path, a GeoDataFrame or a mapping {{id: geometry}}, got "
            f"{type(basins).__name__}"
        )
    out: list[Basin] = []
    seen: set[str] = set()
    for raw_id, geometry in pairs:
        basin_id = str(raw_id)
        if not basin_id or "/" in basin_id or basin_id.startswith("."):
            raise BasinInputError(
                f"basin id {basin_id!r} cannot name a Zarr group; use ids without '/' that do "
                "not start with '.'"
            )
        if basin_id in seen:
            raise BasinInputError(f"basin id {basin_id!r} appears twice; ids must be unique")
        seen.add(basin_id)
        geom = shape(geometry) if isinstance(geometry, Mapping) else geometry
        if geom is None or geom.is_empty:
            raise BasinInputError(f"basin {basin_id!r} has an empty geometry")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise BasinInputError(
                f"basin {basin_id!r} is a {geom.geom_type}; basins must be Polygons or "
                "MultiPolygons"
            )
        if not geom.is_valid:
            raise BasinInputError(
                f"basin {basin_id!r} has an invalid polygon ({shapely.is_valid_reason(geom)}); "
                "repair it, e.g. with shapely.make_valid"
            )
        west, south, east, north = geom.bounds
        if west < -180 or east > 180 or south < -90 or north > 90:
            raise BasinInputError(
                f"basin {basin_id!r} has bounds {geom.bounds}, not lon/lat degrees; reproject "
                "it to EPSG:4326 (GeoJSON is lon/lat by definition)"
            )
        out.append(Basin(basin_id, geom))
    if not out:
        raise BasinInputError("no basins given")
    return out


def _geojson_pairs(path: Path, id_column: str) -> list[tuple[Any, Any]]:
    if not path.is_file():
        raise BasinInputError(f"basins file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BasinInputError(f"basins file {str(path)!r} is not GeoJSON: {err}") from None
    features = data.get("features") if data.get("type") == "FeatureCollection" else [data]
    pairs = []
    for index, feature in enumerate(features or []):
        props = feature.get("properties") or {}
        basin_id = props.get(id_column, feature.get("id") if id_column == "id" else None)
        if basin_id is None:
            raise BasinInputError(
                f"feature {index} of {str(path)!r} has no property {id_column!r} (it has "
                f"{sorted(props)}); pass id_column= (--id-column) naming the basin id"
            )
        pairs.append((basin_id, feature.get("geometry")))
    return pairs


# --------------------------------------------------------------------------------------------
# the cluster and the model


def start_cluster(
    workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    environ: Mapping[str, str] | None = WORKER_ENVIRON,
) -> Client:
    """A LocalCluster of worker processes set up for torch (``environ``: :data:`WORKER_ENVIRON`;
    None keeps distributed's defaults).

    The caller closes it (``client.close(); client.cluster.close()``). Scripts that start one
    need an ``if __name__ == "__main__":`` guard: worker processes are spawned.

    Examples
    --------
    >>> client = start_cluster(1)
    >>> client.run(lambda: __import__("os").environ["OMP_NUM_THREADS"]).popitem()[1]
    '1'
    >>> client.close(); client.cluster.close()
    """
    from distributed import Client, LocalCluster

    n = workers or max(1, (os.cpu_count() or 1) // threads_per_worker)
    environ = dict(environ or {})
    pre_spawn = {k: v for k, v in environ.items() if k in _PRE_SPAWN}
    after_spawn = {k: v for k, v in environ.items() if k not in _PRE_SPAWN}
    settings = {"distributed.nanny.pre-spawn-environ": pre_spawn} if pre_spawn else {}
    ours = dict(os.environ)
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=":0",
            env=after_spawn,
        )
    # the nanny writes its pre-spawn variables into this process's environment and leaves them
    # there (distributed 2026.8): they would reach every later subprocess of the caller
    os.environ.clear()
    os.environ.update(ours)
    return Client(cluster)


class _ShipModel(WorkerPlugin):
    """A worker plugin carrying one checkpoint: written to each worker's local directory and
    registered there under ``name``, once per worker process (new and restarted ones too)."""

    def __init__(self, name: str, weights: bytes, config: bytes) -> None:
        self.name = name
        self.weights = weights
        self.config = config

    def setup(self, worker: Any) -> None:
        from floodxr import models

        folder = Path(worker.local_directory) / "floodxr-models"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{self.name}.json").write_bytes(self.config)
        (folder / f"{self.name}.safetensors").write_bytes(self.weights)
        models.register(self.name, folder / f"{self.name}.safetensors")


def _ship_model(client: Client, weights: Path, digest: str) -> str:
    """Send the checkpoint to every worker once; returns the name the graphs use."""
    from floodxr import models
    from floodxr.models import checkpoint

    name = f"floodxr-{digest[:16]}"
    models.register(name, weights)
    config = checkpoint.paths(weights)[1]
    client.register_plugin(_ShipModel(name, weights.read_bytes(), config.read_bytes()), name=name)
    return name


# --------------------------------------------------------------------------------------------
# the store


class _Store:
    """The Zarr store with its manifest; only the client writes the manifest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest_path = path / _MANIFEST
        if self.manifest_path.is_file():
            self.manifest = json.loads(self.manifest_path.read_text())
        else:
            if path.exists() and any(path.iterdir()):
                raise RunMismatchError(
                    f"{str(path)!r} exists and is not a floodxr basin store (no {_MANIFEST}); "
                    "choose a new --store"
                )
            self.manifest = {
                "format": _FORMAT,
                "settings": None,
                "basins": {},
                "units": {},
                "references": {},
            }

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        staging = self.manifest_path.with_suffix(".json.partial")
        staging.write_text(json.dumps(self.manifest, indent=1, sort_keys=True))
        staging.replace(self.manifest_path)

    def check_settings(self, settings: dict[str, Any]) -> None:
        old = self.manifest["settings"]
        if old is None:
            self.manifest["settings"] = settings
            return
        changed = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if changed:
            detail = "; ".join(
                f"{k}: store has {a!r}, asked {b!r}" for k, (a, b) in changed.items()
            )
            raise RunMismatchError(
                f"{str(self.path)!r} was made with other settings ({detail}); run with the same "
                "settings to resume, or choose a new --store"
            )

    def check_basin(self, basin: Basin, grid: _Grid) -> None:
        entry = {
            "fingerprint": basin.fingerprint(),
            "grid": grid.to_dict(),
            "basin_km2": basin.area_km2,
        }
        old = self.manifest["basins"].setdefault(basin.id, entry)
        if old["fingerprint"] != entry["fingerprint"]:
            raise RunMismatchError(
                f"basin {basin.id!r} in {str(self.path)!r} has another polygon than the one "
                "given now; give it a new id, or choose a new --store"
            )

    def times(self, basin_id: str) -> list[np.datetime64]:
        if not (self.path / basin_id).exists():
            return []
        with xr.open_zarr(self.path, group=basin_id, consolidated=False) as ds:
            return [np.datetime64(t, "ns") for t in ds["time"].values]

    def add_times(self, basin: Basin, grid: _Grid, times: list[np.datetime64], chunk: int) -> None:
        """Create the basin's group, or append ``times`` to it (metadata and coordinates only)."""
        if not times:
            return
        shape = (len(times), grid.ny, grid.nx)
        chunks = (1, chunk, chunk)
        coords = grid.template(chunk).coords
        probability = dsa.full(shape, np.nan, dtype="float32", chunks=chunks)
        water = dsa.full(shape, NODATA, dtype="uint8", chunks=chunks)
        ds = xr.Dataset(
            {
                "probability": (
                    ("time", "y", "x"),
                    probability,
                    {"long_name": "water probability", "units": "1"},
                ),
                "water": (
                    ("time", "y", "x"),
                    water,
                    {
                        "long_name": "water mask",
                        "flag_values": [0, 1],
                        "flag_meanings": "not_water water",
                    },
                ),
            },
            coords={**coords, "time": np.array(times, dtype="datetime64[ns]")},
            attrs={"basin_id": basin.id, "crs": f"EPSG:{grid.epsg}"},
        )
        ds = ds.rio.write_crs(f"EPSG:{grid.epsg}").rio.write_transform(grid.transform)
        for name in ("probability", "water"):
            ds[name].attrs["grid_mapping"] = "spatial_ref"
        if (self.path / basin.id).exists():
            ds.to_zarr(
                self.path, group=basin.id, append_dim="time", compute=False, consolidated=False
            )
        else:
            encoding = {
                "probability": {"_FillValue": np.float32(np.nan)},
                "water": {"_FillValue": np.uint8(NODATA)},
                "time": {"units": "microseconds since 1970-01-01", "dtype": "int64"},
            }
            ds.to_zarr(
                self.path,
                group=basin.id,
                mode="w-",
                compute=False,
                consolidated=False,
                encoding=encoding,
            )

    def add_reference(self, basin: Basin, grid: _Grid, chunk: int) -> None:
        import zarr

        group = zarr.open_group(str(self.path / basin.id), mode="r+")
        if "reference" not in group:
            array = group.create_array(
                "reference",
                shape=(grid.ny, grid.nx),
                dtype="uint8",
                chunks=(chunk, chunk),
                fill_value=NODATA,
                dimension_names=("y", "x"),
            )
            array.attrs.update(
                {
                    "long_name": "reference water",
                    "flag_values": [0, 1],
                    "flag_meanings": "not_water water",
                    "_FillValue": NODATA,
                    "grid_mapping": "spatial_ref",
                }
            )


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    staging = path.with_name(path.name + ".partial")
    frame.to_csv(staging, index=False)
    staging.replace(path)


# --------------------------------------------------------------------------------------------
# per-chunk work (runs on the workers)


def _areal_scale(epsg: int, x: float, y: float) -> float:
    from pyproj import CRS, Proj, Transformer

    lon, lat = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True).transform(x, y)
    if CRS.from_epsg(epsg).is_geographic:
        return 1.0
    return float(Proj(f"EPSG:{epsg}").get_factors(lon, lat).areal_scale)


def _inside(geometry: Any, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    from rasterio.features import geometry_mask

    return geometry_mask([geometry], out_shape=shape, transform=transform, invert=True)


@dataclass(frozen=True)
class _Target:
    """Where a unit's chunks go and how they are measured; plain values, shipped in the graph."""

    store: str
    basin: str
    geometry: Any  # the polygon in the grid's CRS
    grid: _Grid
    time_index: int | None  # None: the reference layer
    with_reference: bool


def _write_block(values: np.ndarray, target: _Target, y0: int, x0: int) -> np.ndarray:
    """Clip one chunk of water probability to the basin, write it, return its areas (km²)."""
    import zarr

    grid = target.grid
    height, width = values.shape[-2:]
    transform = grid.transform * Affine.translation(x0, y0)
    inside = _inside(target.geometry, transform, (height, width))
    probability = np.where(inside, values.reshape(height, width), np.nan).astype("float32")
    water = np.full((height, width), NODATA, "uint8")
    seen = np.isfinite(probability)
    water[seen] = probability[seen] >= 0.5
    rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)

    def array(name: str) -> Any:
        return zarr.open_array(os.path.join(target.store, target.basin, name), mode="r+")

    if target.time_index is None:
        array("reference")[rows, cols] = water
        reference = None
    else:
        array("probability")[target.time_index, rows, cols] = probability
        array("water")[target.time_index, rows, cols] = water
        reference = array("reference")[rows, cols] if target.with_reference else None
    centre = transform * (width / 2, height / 2)
    pixel_km2 = grid.resolution**2 / _areal_scale(grid.epsg, *centre) / 1e6
    flood = np.nan if reference is None else np.sum((water == 1) & (reference == 0))
    return np.array([np.sum(water == 1), flood, np.sum(seen)], "float64") * pixel_km2


def _total(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.sum(np.stack(parts), axis=0)


def _median_probability(stack: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        return np.nanmedian(stack, axis=0).astype("float32")


def _unit_graph(probability: xr.DataArray, target: _Target, chunk: int) -> Any:
    """A delayed (water, flood, observed) km² that writes every chunk of ``probability``."""
    data = probability.data.reshape(probability.shape[-2:]).rechunk((chunk, chunk))
    starts = [np.cumsum((0,) + c[:-1]) for c in data.chunks]
    blocks = data.to_delayed()
    parts = [
        dask.delayed(_write_block, pure=True)(
            blocks[i, j], target, int(starts[0][i]), int(starts[1][j])
        )
        for i in range(blocks.shape[0])
        for j in range(blocks.shape[1])
    ]
    return dask.delayed(_total, pure=True)(parts)


# --------------------------------------------------------------------------------------------
# the run


def _acquisitions(items: pystac.ItemCollection) -> list[tuple[np.datetime64, list[Any]]]:
    """Items grouped into passes (UTC day and orbit), as ``load(mosaic=True)`` merges them."""
    from floodxr.data.stac import _time_order

    groups: dict[tuple[str, str], list[Any]] = {}
    for item in items:  # already in time order
        when = _time_order(item)[0]
        orbit = item.properties.get("sat:relative_orbit", item.properties.get("sat:orbit_state"))
        groups.setdefault((when.strftime("%Y-%m-%d"), str(orbit)), []).append(item)
    out = []
    for members in groups.values():
        first = _time_order(members[0])[0].astimezone(dt.timezone.utc).replace(tzinfo=None)
        out.append((np.datetime64(first, "ns"), members))
    return sorted(out, key=lambda pair: pair[0])


def _search(basin: Basin, datetime: Any, catalog: Any) -> pystac.ItemCollection | None:
    from shapely.geometry import mapping

    from floodxr.data import stac

    try:
        return stac.search_s1(
            datetime=datetime, intersects=mapping(basin.geometry), catalog=catalog
        )
    except NoItemsError:
        return None


def _probability(items: Any, found: Any, grid: _Grid, chunk: int, model: str) -> xr.DataArray:
    """Water probability on ``grid``, computed with the radar around it in view."""
    from floodxr.data import stac
    from floodxr.options import OPTIONS
    from floodxr.segment import BLENDED_HALO, segment

    # real pixels beyond the grid's edge, not a reflection, for the windows at the edge
    margin = OPTIONS["halo"] or BLENDED_HALO
    # big chunks for the network (each chunk recomputes a step of context on every side); the
    # writes use ``chunk``
    cube = stac.load(
        stac.items_of(items, like=found),
        kind="s1",
        bands=S1_BANDS,
        like=grid.padded(margin).template(chunk),
        chunks=max(chunk, _LOAD_CHUNK),
        mosaic=True,
    )
    probability = segment(cube, model=model)
    return probability.isel(y=slice(margin, margin + grid.ny), x=slice(margin, margin + grid.nx))


def _settings(
    model_id: str,
    resolution: float,
    catalog: Any,
    reference: Any,
    chunk: int,
) -> dict[str, Any]:
    from floodxr.data import stac
    from floodxr.options import OPTIONS

    cat = stac.get_catalog(catalog)
    if cat.s1 is None:
        raise InvalidOptionError(
            f"catalog {cat.url!r} has no Sentinel-1 collection profile; pass a name in "
            f"{sorted(stac.CATALOGS)} or stac.get_catalog('planetary-computer').with_url(URL)"
        )
    if isinstance(reference, (str, Path)) and Path(reference).is_file():
        reference = {"mask": hashlib.sha256(Path(reference).read_bytes()).hexdigest()}
    elif isinstance(reference, xr.DataArray):
        reference = {"mask": dask.base.tokenize(reference)}
    elif reference is not None:
        reference = {"dates": str(stac.format_datetime(reference))}
    return {
        "model": model_id,
        "resolution": float(resolution),
        "catalog": cat.url,
        "collection": cat.s1.id,
        "reference": reference,
        "chunk": int(chunk),
        "tile": OPTIONS["tile"],
        "halo": OPTIONS["halo"],
    }


def run(
    basins: Any,
    *,
    datetime: Any,
    store: str | Path,
    catalog: Any = "planetary-computer",
    model: str = "student",
    resolution: float = 10.0,
    reference: Any = None,
    client: Client | None = None,
    workers: int | None = None,
    table: str | Path | None = None,
    id_column: str = "id",
    chunk: int = 1024,
    progress: bool = True,
) -> BasinRun:
    """Map water (and flood) in every basin for every Sentinel-1 acquisition in ``datetime``.

    Parameters
    ----------
    basins : a GeoJSON file, a GeoDataFrame or ``{id: geometry}`` (see :func:`read_basins`)
    datetime : STAC interval, e.g. ``"2019-09-01/2019-09-30"``
    store : the Zarr store (a local folder); created, or resumed when it holds a run made with
        the same settings
    catalog : a catalog name, URL or :class:`floodxr.data.stac.Catalog`
    model : a registered model or a checkpoint path (``"otsu"`` is not supported: thresholds of
        a whole scene are not chunk-local)
    resolution : pixel size in metres of each basin's UTM grid
    reference : flood = water minus reference water. A STAC interval before the flood (each
        pixel's median probability over its acquisitions; water where ≥ 0.5) or a water mask
        (a GeoTIFF path or a DataArray with a CRS: 1 water, 0 dry, nodata unknown)
    client : a ``distributed.Client`` (any scheduler); default a LocalCluster of ``workers``
        worker processes (:func:`start_cluster`), closed at the end
    table : the area table (CSV); default ``STORE.areas.csv`` beside the store
    id_column : the basins' id property
    chunk : chunk side in pixels (Zarr chunks and the unit of work)
    progress : show a progress bar of finished units

    Returns
    -------
    BasinRun

    Raises
    ------
    BasinInputError, RunMismatchError, StacApiError, InvalidOptionError

    Examples
    --------
    A lake of the synthetic world served on 127.0.0.1, the first pass as reference (a threaded
    in-process cluster here; by default a LocalCluster of worker processes):

    >>> import tempfile
    >>> from distributed import Client
    >>> from shapely.geometry import box
    >>> from floodxr.testing.stac import serve_synthetic
    >>> store = tempfile.mkdtemp() + "/lake.zarr"
    >>> with serve_synthetic() as (catalog, _), Client(processes=False) as client:
    ...     result = run({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-09",
    ...                  catalog=catalog, store=store, reference="2019-09-01/2019-09-15",
    ...                  client=client, progress=False)
    >>> result.computed
    ['lake/2019-09-13T05:59:50Z', 'lake/2019-09-25T05:59:50Z']
    >>> result.areas[["water_km2", "flood_km2"]].round(1).values.tolist()
    [[3.1, 0.0], [5.8, 2.7]]

    Over the Planetary Computer (needs the internet)::

        result = floodxr.basin.run("basins.geojson", datetime="2019-09-01/2019-09-30",
                                   store="valencia.zarr", reference="2019-08-01/2019-08-31")
        result.areas.plot(x="time", y="flood_km2")
    """
    parsed, weights = check_inputs(
        basins,
        datetime=datetime,
        store=store,
        model=model,
        resolution=resolution,
        reference=reference,
        chunk=chunk,
        id_column=id_column,
    )
    store_path = Path(store)
    table_path = Path(table) if table else store_path.with_suffix(".areas.csv")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    state = _Store(store_path)
    state.check_settings(_settings(digest, resolution, catalog, reference, chunk))
    state.save()  # before any group exists: a store is never without its manifest
    own_client = client is None
    if client is None:
        client = start_cluster(workers)
    try:
        name = _ship_model(client, weights, digest)
        result = _run(
            parsed,
            state,
            client,
            name,
            datetime=datetime,
            catalog=catalog,
            resolution=resolution,
            reference=reference,
            chunk=chunk,
            progress=progress,
        )
    finally:
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    areas = report(store_path)
    _atomic_csv(areas, table_path)
    return BasinRun(store=store_path, table=table_path, areas=areas, **result)


_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".nc", ".zarr", ".img", ".jp2")


def check_inputs(
    basins: Any,
    *,
    datetime: Any,
    store: str | Path,
    model: str = "student",
    resolution: float = 10.0,
    reference: Any = None,
    chunk: int = 1024,
    id_column: str = "id",
) -> tuple[list[Basin], Path]:
    """Check a basin run's inputs before any cluster starts or any request is sent.

    Returns the parsed basins and the model's weights path; raises a named error otherwise
    (:func:`run` calls it first; ``floodxr basin`` calls it before starting its cluster).

    Examples
    --------
    >>> from shapely.geometry import box
    >>> from floodxr.basin import check_inputs
    >>> check_inputs({"lake": box(-0.05, 39.02, -0.02, 39.04)}, datetime="2019-13-45",
    ...              store="out.zarr")
    Traceback (most recent call last):
    ...
    floodxr.errors.InvalidOptionError: datetime '2019-13-45' is not an ISO 8601 date ...
    """
    from floodxr import models
    from floodxr.segment import THRESHOLD_MODELS

    if model in THRESHOLD_MODELS:
        raise InvalidOptionError(
            f"model {model!r} thresholds whole scenes, which basin runs cut into chunks; use a "
            f"network model (e.g. 'student') or run segment() per scene"
        )
    if isinstance(chunk, bool) or not (isinstance(chunk, int) and chunk >= 64):
        raise InvalidOptionError(f"chunk must be an integer of at least 64 px, got {chunk!r}")
    from floodxr.data.stac import format_datetime

    number(resolution, "resolution (metres)", above=0)
    format_datetime(datetime)
    _check_reference(reference)
    store_path = Path(store)
    if store_path.exists() and not store_path.is_dir():
        raise BasinInputError(f"store {str(store_path)!r} is a file; a store is a folder")
    if not isinstance(model, (str, Path)) or not str(model).strip():
        raise InvalidOptionError(f"model must be a name or a checkpoint path, got {model!r}")
    parsed = read_basins(basins, id_column=id_column)
    return parsed, models.resolve(model)


def _check_reference(reference: Any) -> None:
    if reference is None or isinstance(reference, xr.DataArray):
        return
    if isinstance(reference, Path) or (
        isinstance(reference, str)
        and (Path(reference).suffix.lower() in _RASTER_SUFFIXES or Path(reference).exists())
    ):
        path = Path(reference)
        if not path.is_file():
            raise BasinInputError(
                f"reference {str(path)!r}: no such file; give an existing water-mask GeoTIFF "
                "(1 water, 0 dry) or a STAC interval of pre-flood dates like "
                "'2019-08-01/2019-08-31'"
            )
        return
    from floodxr.data.stac import format_datetime

    try:
        format_datetime(reference)
    except InvalidOptionError as err:
        raise BasinInputError(
            f"reference {reference!r} is neither an existing water-mask file nor a STAC interval "
            f"({err})"
        ) from err


def _run(
    basins: list[Basin],
    state: _Store,
    client: Client,
    model: str,
    *,
    datetime: Any,
    catalog: Any,
    resolution: float,
    reference: Any,
    chunk: int,
    progress: bool,
) -> dict[str, list[str]]:
    from floodxr.options import set_options

    computed: list[str] = []
    skipped: list[str] = []
    empty: list[str] = []
    pending: list[tuple[_Unit, Any]] = []
    references: list[tuple[Basin, Any]] = []
    for basin in basins:
        grid = _Grid.of(basin, resolution)
        state.check_basin(basin, grid)
        found = _search(basin, datetime, catalog)
        if found is None:
            empty.append(basin.id)
            warnings.warn(
                f"basin {basin.id!r}: no Sentinel-1 acquisition in {datetime!r}",
                FloodxrWarning,
                stacklevel=3,
            )
            continue
        passes = _acquisitions(found)
        known = state.times(basin.id)
        state.add_times(basin, grid, [t for t, _ in passes if t not in known], chunk)
        times = known + [t for t, _ in passes if t not in known]
        target_geometry = basin.projected(grid.epsg)
        if reference is not None and basin.id not in state.manifest["references"]:
            state.add_reference(basin, grid, chunk)
            ref_target = _Target(str(state.path), basin.id, target_geometry, grid, None, False)
            with set_options(torch_threads=1):
                graph = _reference_graph(basin, grid, reference, catalog, model, chunk)
            references.append((basin, _unit_graph(graph, ref_target, chunk)))
        for when, items in passes:
            unit = _Unit(basin, when, tuple(items))
            if unit.key in state.manifest["units"]:
                skipped.append(unit.key)
                continue
            target = _Target(
                str(state.path),
                basin.id,
                target_geometry,
                grid,
                times.index(when),
                reference is not None,
            )
            # one torch thread per worker thread: fast on shared cores, and identical results
            # whichever worker computes a chunk
            with set_options(torch_threads=1):
                probability = _probability(items, found, grid, chunk, model)
            pending.append((unit, _unit_graph(probability, target, chunk)))
    state.save()
    if references:
        done = _compute(
            client, [(f"{b.id}/reference", g) for b, g in references], progress, "reference water"
        )
        for basin, _ in references:
            water, _, observed = done[f"{basin.id}/reference"]
            state.manifest["references"][basin.id] = {"water_km2": water, "observed_km2": observed}
        state.save()
    units = {u.key: u for u, _ in pending}
    finished = _compute(
        client,
        [(u.key, g) for u, g in pending],
        progress,
        "basin units",
        on_done=lambda key, areas: _record(state, units[key], areas),
    )
    computed.extend(k for k in units if k in finished)
    return {"computed": computed, "skipped": skipped, "empty": empty}


def _record(state: _Store, unit: _Unit, areas: np.ndarray) -> None:
    entry: dict[str, Any] = {
        "basin": unit.basin.id,
        "time": _iso(unit.time),
        "items": [item.id for item in unit.items],
    }
    entry |= {k: (None if np.isnan(v) else float(v)) for k, v in zip(_AREAS, areas, strict=True)}
    state.manifest["units"][unit.key] = entry
    state.save()


def _compute(
    client: Client, graphs: list[tuple[str, Any]], progress: bool, what: str, on_done: Any = None
) -> dict[str, np.ndarray]:
    from distributed import as_completed
    from tqdm.auto import tqdm

    if not graphs:
        return {}
    futures = client.compute([g for _, g in graphs])
    keys = {f.key: k for f, (k, _) in zip(futures, graphs, strict=True)}
    done: dict[str, np.ndarray] = {}
    with tqdm(total=len(futures), desc=what, unit="unit", disable=not progress) as bar:
        for future in as_completed(futures):
            key = keys[future.key]
            done[key] = future.result()
            if on_done is not None:
                on_done(key, done[key])
            bar.update()
    return done


def _reference_graph(
    basin: Basin, grid: _Grid, reference: Any, catalog: Any, model: str, chunk: int
) -> xr.DataArray:
    """The reference layer as a lazy 'probability' (1 water, 0 dry, NaN unknown) on the grid."""
    if isinstance(reference, (str, Path)) and Path(reference).is_file():
        import rioxarray

        opened = rioxarray.open_rasterio(reference, masked=True)
        if not isinstance(opened, xr.DataArray):
            raise BasinInputError(f"reference {str(reference)!r} holds several rasters; give one")
        reference = opened.squeeze("band", drop=True)
    if isinstance(reference, xr.DataArray):
        from rasterio.enums import Resampling

        if reference.rio.crs is None:
            raise BasinInputError(
                "the reference mask has no CRS; write one with mask.rio.write_crs(...)"
            )
        mask = masked(reference)
        on_grid = mask.rio.write_nodata(np.nan).rio.reproject(
            f"EPSG:{grid.epsg}",
            shape=(grid.ny, grid.nx),
            transform=grid.transform,
            resampling=Resampling.nearest,
            nodata=np.nan,
        )
        seen = np.unique(on_grid.values[np.isfinite(on_grid.values)])
        if not np.isin(seen, (0.0, 1.0)).all():
            raise BasinInputError(
                f"the reference mask holds values other than 1 (water) and 0 (dry), e.g. "
                f"{seen[~np.isin(seen, (0.0, 1.0))][:5].tolist()}; recode it, and declare its "
                "nodata value (mask.rio.write_nodata(255))"
            )
        values = np.where(np.isnan(on_grid.values), np.nan, on_grid.values > 0)
        return grid.template(chunk).copy(
            data=dsa.from_array(values.astype("float32"), chunks=chunk)
        )
    found = _search(basin, reference, catalog)
    if found is None:
        raise NoItemsError(
            f"basin {basin.id!r}: no Sentinel-1 acquisition in the reference dates "
            f"{reference!r}; widen them or pass a water mask"
        )
    layers = [_probability(items, found, grid, chunk, model) for _, items in _acquisitions(found)]
    stack = xr.concat(layers, dim="time").chunk({"time": -1})
    median = dsa.map_blocks(_median_probability, stack.data, drop_axis=0, dtype="float32")
    return stack.isel(time=0, drop=True).copy(data=median)


# --------------------------------------------------------------------------------------------
# reading results


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
    manifest_path = path / _MANIFEST
    if not manifest_path.is_file():
        raise BasinInputError(
            f"{str(path)!r} is not a floodxr basin store (no {_MANIFEST}); pass the --store of a "
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
                **{k: entry[k] for k in _AREAS},
                "basin_km2": basin["basin_km2"],
                "items": " ".join(entry["items"]),
            }
        )
    columns = ["basin", "time", *_AREAS, "basin_km2", "items"]
    frame = pd.DataFrame(rows, columns=columns)
    for key in _AREAS:  # a unit without a reference has no flood area: None in JSON, NaN here
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
    >>> ds.rio.crs.to_epsg(), dict(ds.sizes), sorted(ds.data_vars)
    (32630, {'time': 2, 'y': 232, 'x': 268}, ['probability', 'water'])
    """
    path = Path(store)
    if not (path / str(basin_id)).exists():
        known = (
            sorted(json.loads((path / _MANIFEST).read_text())["basins"])
            if (path / _MANIFEST).is_file()
            else []
        )
        raise BasinInputError(f"no basin {basin_id!r} in {str(path)!r}; it holds {known}")
    ds = xr.open_zarr(
        path, group=str(basin_id), consolidated=False, decode_coords="all", mask_and_scale=False
    )
    return ds.sortby("time")
