"""A basin run: search every basin's passes, build one graph per unit, compute, record.

For each *unit* (basin, pass) one dask graph loads the pass's frames onto the basin's grid,
segments them, clips them to the polygon and writes each chunk straight into the store while
measuring its area (:mod:`floodxr.basin.chunks`). Nothing bigger than a chunk is held anywhere,
so memory per worker does not grow with the basin. The client adds a unit to the manifest only
after all its chunks are written; a re-run skips the units listed there. Torch runs with one
thread in every worker thread, so results do not depend on which worker, or how many, computed
them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as dsa
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from floodxr._valid import masked, number
from floodxr.bands import NODATA, S1_BANDS
from floodxr.basin.chunks import Target, unit_graph
from floodxr.basin.cluster import ship_model, start_cluster
from floodxr.basin.inputs import (
    Basin,
    Reference,
    ReferenceDates,
    ReferenceMask,
    ReferenceOccurrence,
    basin_grid,
    check_inputs,
)
from floodxr.basin.results import report
from floodxr.basin.store import AREAS, Store, atomic_csv
from floodxr.errors import BasinInputError, FloodxrWarning, InvalidOptionError, NoItemsError
from floodxr.grid import oriented, template
from floodxr.options import OPTIONS
from floodxr.product import REFERENCE_FREQUENCY

if TYPE_CHECKING:
    import pandas as pd
    from distributed import Client

    from floodxr.data.search import SearchResult

__all__ = ["BasinRun", "run"]

#: Chunk side of the loaded radar (the network's blocks); writes use the run's ``chunk``.
LOAD_CHUNK = 2048


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


def _search(basin: Basin, datetime: Any, catalog: Any) -> SearchResult | None:
    from shapely.geometry import mapping

    from floodxr.data import stac

    try:
        return stac.search_s1(
            datetime=datetime, intersects=mapping(basin.geometry), catalog=catalog
        )
    except NoItemsError:
        return None


def _probability(frames: SearchResult, grid: GeoBox, chunk: int, model: str) -> xr.DataArray:
    """Water probability of one pass on ``grid``, computed with the radar around it in view."""
    from floodxr.data import stac
    from floodxr.segment import BLENDED_HALO, segment

    # real pixels beyond the grid's edge, not a reflection, for the windows at the edge
    margin = OPTIONS["halo"] or BLENDED_HALO
    # big chunks for the network (each chunk recomputes a step of context on every side); the
    # writes use ``chunk``
    cube = stac.load(
        frames,
        kind="s1",
        bands=S1_BANDS,
        like=template(grid.pad(margin), chunk),
        chunks=max(chunk, LOAD_CHUNK),
        mosaic=True,
    )
    probability = segment(cube, model=model)
    ny, nx = grid.shape
    return probability.isel(y=slice(margin, margin + ny), x=slice(margin, margin + nx))


def _settings(
    model_id: str,
    resolution: float,
    catalog: Any,
    reference: Reference,
    chunk: int,
    layers: dict[str, Any],
) -> dict[str, Any]:
    from floodxr.data import stac
    from floodxr.data.search import resolve_collection

    cat = stac.get_catalog(catalog)
    # the catalogue's profile, or what the API says of its Sentinel-1 collection
    collection = resolve_collection(cat, "s1", None)
    return {
        "model": model_id,
        "resolution": float(resolution),
        "catalog": cat.url,
        "collection": collection.id,
        "reference": reference.record() if reference is not None else None,
        "chunk": int(chunk),
        "tile": OPTIONS["tile"],
        "halo": OPTIONS["halo"],
        "engine": OPTIONS["engine"],
        "layers": layers,
    }


def run(
    basins: Any,
    *,
    datetime: Any,
    store: str | Path,
    catalog: Any = "planetary-computer",
    model: str = "student",
    resolution: float = 10.0,
    reference_dates: Any = None,
    reference_mask: str | Path | xr.DataArray | None = None,
    client: Client | None = None,
    workers: int | None = None,
    table: str | Path | None = None,
    id_column: str = "id",
    chunk: int = 1024,
    progress: bool | None = None,
    polygons: bool = False,
    reference: Any = None,
    exclusion: bool = True,
    reference_water: bool = True,
    dem: Any = None,
    landcover: Any = None,
    occurrence: Any = None,
    occurrence_min: float = 50.0,
    engine: str | None = None,
    threads: int | None = None,
    hand: Any = None,
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
    reference_dates : flood = water minus reference water; the reference from a STAC interval
        before the flood (water where at least half of their passes saw water)
    reference_mask : or from a water mask (a GeoTIFF path or a DataArray with a CRS: 1 water,
        0 dry, nodata unknown)
    client : a ``distributed.Client`` (any scheduler); default a LocalCluster of ``workers``
        worker processes (:func:`start_cluster`), closed at the end
    table : the area table (CSV); default ``STORE.areas.csv`` beside the store
    id_column : the basins' id property
    chunk : chunk side in pixels (Zarr chunks and the unit of work)
    progress : show a progress bar of finished units (default: ``set_options(progress=)``)
    polygons : also write each unit computed now as flood polygons (water polygons without a
        reference), ``STORE.polygons/<basin>/<time>.parquet`` beside the store
    reference : deprecated: dates or a mask, told apart by whether a file of that name exists;
        use ``reference_dates`` / ``reference_mask``
    exclusion, reference_water, dem, landcover, occurrence, occurrence_min : the exclusion
        flags and the reference water, as :func:`floodxr.mapping.map_floods` makes them: by
        default from the catalogue's ``cop-dem-glo-30``, ``esa-worldcover`` and ``jrc-gsw``
        (the reference water from the occurrence when neither reference is given)
    engine : how the network runs (``set_options(engine=)``); None: the option's
    threads : threads per worker process of the LocalCluster started here (default 1)
    hand : a precomputed height above nearest drainage to read instead of computing it

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
    ...                  catalog=catalog, store=store, reference_dates="2019-09-01/2019-09-15",
    ...                  client=client, progress=False)
    >>> result.computed
    ['lake/2019-09-13T05:59:50Z', 'lake/2019-09-25T05:59:50Z']
    >>> result.areas[["water_km2", "flood_km2"]].round(1).values.tolist()
    [[3.1, 0.0], [5.8, 2.7]]

    Over the Planetary Computer (needs the internet)::

        result = floodxr.basin.run("basins.geojson", datetime="2019-09-01/2019-09-30",
                                   store="valencia.zarr",
                                   reference_dates="2019-08-01/2019-08-31")
        result.areas.plot(x="time", y="flood_km2")
    """
    parsed, weights, parsed_reference = check_inputs(
        basins,
        datetime=datetime,
        store=store,
        model=model,
        resolution=resolution,
        reference_dates=reference_dates,
        reference_mask=reference_mask,
        chunk=chunk,
        id_column=id_column,
        reference=reference,
    )
    from floodxr import ancillary
    from floodxr.options import checked_run_options, set_options

    number(occurrence_min, "occurrence_min (percent)", above=0)
    run_options = checked_run_options(engine, threads)
    if client is not None and threads is not None:
        raise InvalidOptionError(
            "threads= sets the workers of the LocalCluster run() starts; with client= the "
            "cluster's own workers are used: pass one of them"
        )
    if parsed_reference is not None and not reference_water:
        raise InvalidOptionError(
            "a reference was given with reference_water=False (--no-reference-water); drop one"
        )
    sources = {
        "dem": ancillary.resolve("dem", dem if exclusion else False, catalog),
        "landcover": ancillary.resolve("landcover", landcover if exclusion else False, catalog),
        "hand": ancillary.resolve("hand", hand if exclusion else False, catalog),
    }
    if reference_water and parsed_reference is None:
        found = ancillary.resolve("occurrence", occurrence, catalog)
        if found is not None:
            parsed_reference = ReferenceOccurrence(found, float(occurrence_min))
    store_path = Path(store)
    table_path = Path(table) if table else store_path.with_suffix(".areas.csv")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    state = Store(store_path)
    layers = {k: None if v is None else v.record() for k, v in sources.items()}
    with set_options(**run_options):
        settings = _settings(digest, resolution, catalog, parsed_reference, chunk, layers)
    state.check_settings(settings)
    state.save()  # before any group exists: a store is never without its manifest
    own_client = client is None
    if client is None:
        client = start_cluster(workers, threads_per_worker=threads or 1)
    try:
        name = ship_model(client, weights, digest)
        with set_options(**run_options):
            result = _run(
                parsed,
                state,
                client,
                name,
                datetime=datetime,
                catalog=catalog,
                resolution=resolution,
                reference=parsed_reference,
                chunk=chunk,
                progress=OPTIONS["progress"] if progress is None else progress,
                sources=sources,
            )
    finally:
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    areas = report(store_path)
    atomic_csv(areas, table_path)
    _write_composites(state, [b.id for b in parsed if b.id not in result["empty"]], datetime)
    if polygons:
        _write_polygons(store_path, result["computed"])
    return BasinRun(store=store_path, table=table_path, areas=areas, **result)


def _run(
    basins: list[Basin],
    state: Store,
    client: Client,
    model: str,
    *,
    datetime: Any,
    catalog: Any,
    resolution: float,
    reference: Reference,
    chunk: int,
    progress: bool,
    sources: dict[str, Any],
) -> dict[str, list[str]]:
    from floodxr.options import set_options
    from floodxr.segment import water_cut

    computed: list[str] = []
    skipped: list[str] = []
    empty: list[str] = []
    pending: list[tuple[_Unit, Any]] = []
    references: list[tuple[Basin, Any]] = []
    for basin in basins:
        grid = basin_grid(basin, resolution)
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
        passes = _passes(found)
        known = state.times(basin.id)
        state.add_times(basin, grid, [t for t, _ in passes if t not in known], chunk)
        times = known + [t for t, _ in passes if t not in known]
        target_geometry = basin.projected(basin.epsg)
        if reference is not None and basin.id not in state.manifest["references"]:
            state.add_reference(basin, grid, chunk)
            # the reference layer is a water frequency (or 1 / 0): reference water from 0.5 on
            ref_target = Target(
                str(state.path), basin.id, target_geometry, grid, None, False, REFERENCE_FREQUENCY
            )
            with set_options(torch_threads=1):
                graph = _reference_graph(basin, grid, reference, catalog, model, chunk)
            references.append((basin, unit_graph(graph, ref_target, chunk)))
        for when, items in passes:
            unit = _Unit(basin, when, tuple(items))
            if unit.key in state.manifest["units"]:
                skipped.append(unit.key)
                continue
            target = Target(
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
                probability = _probability(items, grid, chunk, model)
            target = replace(target, cut=water_cut(probability))
            flags = _exclusion(grid, chunk, sources, items, catalog)
            pending.append((unit, unit_graph(probability, target, chunk, flags)))
    state.save()
    if references:
        done = _compute(
            client, [(f"{b.id}/reference", g) for b, g in references], progress, "reference water"
        )
        for basin, _ in references:
            water, _, observed, _ = done[f"{basin.id}/reference"]
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


def _exclusion(
    grid: GeoBox, chunk: int, sources: dict[str, Any], items: Any, catalog: Any
) -> xr.DataArray | None:
    """The pass's exclusion flags on the basin's grid (lazy; HAND block by block)."""
    from floodxr import ancillary

    if all(source is None for source in sources.values()):
        return None
    states = {str(i.properties.get("sat:orbit_state", "")).lower() for i in items}
    orbit = states.pop() if len(states) == 1 else None
    if orbit not in ("ascending", "descending"):
        orbit = None
        if sources["dem"] is not None:
            warnings.warn(
                f"items {[i.id for i in items]} give no single sat:orbit_state; radar shadow "
                "and layover are not excluded (HAND and land cover are)",
                FloodxrWarning,
                stacklevel=4,
            )
    return ancillary.exclusion(
        template(grid, chunk),
        dem=sources["dem"],
        landcover=sources["landcover"],
        hand=sources["hand"],
        orbit_state=orbit,
        catalog=catalog,
    )


def _record(state: Store, unit: _Unit, areas: np.ndarray) -> None:
    entry: dict[str, Any] = {
        "basin": unit.basin.id,
        "time": _iso(unit.time),
        "items": [item.id for item in unit.items],
    }
    entry |= {k: (None if np.isnan(v) else float(v)) for k, v in zip(AREAS, areas, strict=True)}
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
    basin: Basin,
    grid: GeoBox,
    reference: ReferenceDates | ReferenceMask | ReferenceOccurrence,
    catalog: Any,
    model: str,
    chunk: int,
) -> xr.DataArray:
    """The reference layer on the grid, lazily: a water frequency over the reference passes, or
    1 water / 0 dry (a mask, an occurrence); NaN unknown."""
    if isinstance(reference, ReferenceMask):
        return _mask_on_grid(reference, grid, chunk)
    if isinstance(reference, ReferenceOccurrence):
        from floodxr import ancillary

        codes = ancillary.occurrence_reference(
            template(grid, chunk),
            occurrence=reference.source,
            catalog=catalog,
            minimum=reference.minimum,
        )
        return codes.where(codes != NODATA).astype("float32")
    found = _search(basin, reference.datetime, catalog)
    if found is None:
        raise NoItemsError(
            f"basin {basin.id!r}: no Sentinel-1 acquisition in the reference dates "
            f"{reference.datetime!r}; widen them or pass a water mask"
        )
    from floodxr.product import water_frequency_block
    from floodxr.segment import water_cut

    layers = [_probability(items, grid, chunk, model) for _, items in _passes(found)]
    stack = xr.concat(layers, dim="time").chunk({"time": -1})
    frequency = dsa.map_blocks(
        functools.partial(water_frequency_block, cut=water_cut(layers[0])),
        stack.data,
        drop_axis=0,
        dtype="float32",
    )
    return stack.isel(time=0, drop=True).copy(data=frequency)


def _mask_on_grid(reference: ReferenceMask, grid: GeoBox, chunk: int) -> xr.DataArray:
    """A water mask reprojected (nearest) onto the basin's grid, checked to hold 1 and 0 only."""
    from rasterio.enums import Resampling

    source = reference.mask
    if not isinstance(source, xr.DataArray):
        import rioxarray

        opened = rioxarray.open_rasterio(source, masked=True)
        if not isinstance(opened, xr.DataArray):
            raise BasinInputError(f"reference {str(source)!r} holds several rasters; give one")
        source = opened.squeeze("band", drop=True)
    if source.rio.crs is None:
        raise BasinInputError(
            "the reference mask has no CRS; write one with mask.rio.write_crs(...)"
        )
    # its transform from its coordinates (a sliced mask keeps its parent's GeoTransform)
    on_grid = (
        oriented(masked(source))[0]
        .rio.write_nodata(np.nan)
        .rio.reproject(
            f"EPSG:{grid.crs.epsg}",  # type: ignore[union-attr]
            shape=tuple(grid.shape),
            transform=grid.affine,
            resampling=Resampling.nearest,
            nodata=np.nan,
        )
    )
    seen = np.unique(on_grid.values[np.isfinite(on_grid.values)])
    if not np.isin(seen, (0.0, 1.0)).all():
        raise BasinInputError(
            f"the reference mask holds values other than 1 (water) and 0 (dry), e.g. "
            f"{seen[~np.isin(seen, (0.0, 1.0))][:5].tolist()}; recode it, and declare its "
            "nodata value (mask.rio.write_nodata(255))"
        )
    values = np.where(np.isnan(on_grid.values), np.nan, on_grid.values > 0)
    return template(grid, chunk).copy(data=dsa.from_array(values.astype("float32"), chunks=chunk))


def _passes(found: SearchResult) -> list[tuple[Any, SearchResult]]:
    """The passes of a search (:func:`floodxr.data.search.passes`), each with its first frame's
    time (UTC, naive, ns): what ``load(mosaic=True)`` merges into one scene."""
    from floodxr.data.search import passes, time_order

    out: list[tuple[Any, SearchResult]] = []
    for frames in passes(found):
        first = time_order(frames[0])[0].astimezone(dt.timezone.utc).replace(tzinfo=None)
        out.append((np.datetime64(first, "ns"), found.subset(frames)))
    return out


def _write_composites(state: Store, basin_ids: list[str], datetime: Any) -> None:
    """Each basin's event composite over the run's dates, into its group (replacing an earlier
    one), its extent's area into the manifest."""
    import dask

    from floodxr.basin.results import composite
    from floodxr.product import COMPOSITE

    for basin_id in basin_ids:
        event = composite(state.path, basin_id, datetime)
        if not event.attrs["passes"]:
            continue
        seen = event["max_flood"] != NODATA
        flood_km2, observed_km2 = dask.compute(
            event["max_flood"].where(seen, NODATA).astype("uint8").flood.area_km2(),
            seen.astype("uint8").flood.area_km2(),
        )
        # the group holds the coordinates already: only the composite's arrays are added
        layers = event[list(COMPOSITE)]
        layers = layers.drop_vars(list(layers.coords))
        chunk = int(state.manifest["settings"]["chunk"])
        layers = layers.chunk({"y": chunk, "x": chunk})
        for name in COMPOSITE:
            fill = layers[name].attrs.pop("_FillValue", None)
            layers[name].encoding = {} if fill is None else {"_FillValue": fill}
            layers[name].attrs |= {"grid_mapping": "spatial_ref"}
        layers.attrs = {}
        layers.to_zarr(state.path, group=basin_id, mode="a", consolidated=False)
        state.manifest.setdefault("composites", {})[basin_id] = {
            "datetime": str(datetime),
            "passes": int(event.attrs["passes"]),
            "first_pass": int(event.attrs["first_pass"]),
            "last_pass": int(event.attrs["last_pass"]),
            "flood_km2": float(flood_km2),
            "observed_km2": float(observed_km2),
        }
        state.save()


def _write_polygons(store: Path, units: list[str]) -> None:
    """Each unit's polygons, derived from the store; a recomputed unit rewrites its own file."""
    from floodxr.basin.results import unit_polygons
    from floodxr.writers import output_folder, to_vector

    for key in units:
        basin_id, when = key.split("/", 1)
        folder = output_folder(store.with_suffix(".polygons") / basin_id)
        stamp = when.rstrip("Z").replace("-", "").replace(":", "")
        to_vector(unit_polygons(store, basin_id, when), folder / f"{stamp}.parquet", overwrite=True)
