"""One command for one flood map: search, load, segment every pass, write the outputs.

:func:`map_floods` (``floodxr map``) checks its inputs before any request, searches the STAC
API for the Sentinel-1 passes over a bounding box, and for each pass, lazily and chunk by chunk,
writes into one folder:

``<time>_probability.tif``
    the water probability (float32 COG, NaN nodata);
``<time>_likelihood.tif``
    the same in percent, 0-100 (uint8 COG, 255 nodata), as GFM's likelihood values;
``<time>_exclusion.tif``
    why a pixel says nothing, one bit per reason (uint8 COG, 0 mapped;
    :data:`floodxr.product.FLAGS`: shadow, layover, HAND, no sensitivity, low backscatter, no
    data), from the DEM and land cover the catalogue offers (:mod:`floodxr.ancillary`);
``<time>_water.tif``
    the observed water (uint8 COG: 1 water, 0 not water, 255 nodata: no radar or excluded);
``<time>_flood.tif``
    with reference water: the observed flood (water where the reference is dry), same coding;
``<time>_polygons.parquet``
    the flood polygons (the water polygons without reference water), GeoParquet with
    ``area_km2``; ``<time>_water_polygons.parquet`` the water polygons beside them;
``<time>_footprint.parquet``
    the outline of what the pass's radar saw;
``<time>_advisory.tif``
    the pass's advisory flags per pixel (uint8 bits, 255 nodata;
    :data:`floodxr.product.ADVISORY_BITS`): weak contrast and partial coverage on every mapped
    pixel, rough water where the reference water was not seen as water;
``<time>_overlay.png``
    the VH backscatter with the water (or flood) on top;

``reference_water.tif`` (1 water, 0 dry, 255 unknown: from the Sentinel-1 passes of
``reference`` dates, else from the catalogue's water occurrence) and one ``areas.csv``: per
pass its time, frames, ``water_km2``, ``flood_km2``, ``observed_km2`` (the area the pass
saw), ``excluded_km2`` (the part of it excluded) and the advisory flags
(:func:`floodxr.product.advisories`), and a last row for the event composite over the passes
(``composite_<layer>.tif``: the maximum flood extent, the passes that saw each pixel flooded and
that saw it, the first and last date flooded; ``composite_polygons.parquet``; from the water
layers without reference water). ``<time>`` is the pass's UTC start, ``YYYYmmddTHHMMSS``.
Every COG's metadata names the model and the layers used. Every file is written under a
hidden name and renamed when whole, and ``<time>_areas.json`` (``composite_areas.json``)
marks a pass (the composite) finished. ``floodxr-map.json`` records the request: the same
request run again in the same folder (after a kill or Ctrl-C) keeps the finished passes and
maps the rest; another request there is refused unless ``overwrite``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import numpy as np
import xarray as xr

from floodxr._valid import number
from floodxr.bands import NODATA
from floodxr.errors import FloodxrWarning, InvalidOptionError, NoItemsError, OutputExistsError
from floodxr.grid import align
from floodxr.product import REFERENCE_FREQUENCY, water_frequency_block
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

    def explore(
        self, time: str | None = None, *, tiles: str | None = "OpenStreetMap", **kwargs: Any
    ) -> Any:
        """A pass's flood polygons and likelihood on an interactive map (folium, in
        Jupyter): ``time`` a pass's stamp (``"20190925T055950"``; default the last pass), or
        ``"composite"`` for the event's maximum extent. :func:`floodxr.explore.explore`."""
        import geopandas as gpd

        from floodxr.explore import explore

        passes = [k for k in self.files if k != "composite"]
        if not passes:
            raise NoItemsError(f"{str(self.out)!r} holds no pass to show")
        stamp = passes[-1] if time is None else str(time)
        if stamp not in self.files:
            raise InvalidOptionError(f"no pass {stamp!r} in this map; it has {sorted(self.files)}")
        paths = {p.name: p for p in self.files[stamp]}
        polygons = next(p for n, p in paths.items() if n.endswith("polygons.parquet"))
        if stamp == "composite":
            raster = _read(self.out / "composite_flooded_passes.tif")
            raster = (raster > 0).astype("uint8") * 100  # flooded at least once
        else:
            raster = _read(next(p for n, p in paths.items() if n.endswith("_likelihood.tif")))
        return explore(
            polygons=gpd.read_parquet(polygons),
            likelihood=raster.rio.write_crs(raster.rio.crs),
            tiles=tiles,
            **kwargs,
        )


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
    exclusion: bool = True,
    reference_water: bool = True,
    dem: Any = None,
    landcover: Any = None,
    occurrence: Any = None,
    occurrence_min: float = 50.0,
    engine: str | None = None,
    threads: int | None = None,
    hand: Any = None,
) -> FloodMap:
    """Map water and flood, with GFM's layers, for every Sentinel-1 pass over ``bbox``.

    Parameters
    ----------
    bbox : (west, south, east, north) in degrees
    datetime : the passes to map, a STAC interval like ``"2019-09-01/2019-09-30"``
    out : the folder to write into (created)
    catalog, collection : where to search (:func:`floodxr.data.stac.search_s1`)
    model : a registered model or a checkpoint path
    reference : dates before the flood: the reference water is where at least half of their
        passes saw water (as GFM builds its own from a Sentinel-1 time series);
        without them it is the water occurrence's
    resolution : pixel size in metres (UTM); None: the items' own
    overwrite : replace files of an earlier run
    progress : show progress bars (default: ``set_options(progress=)``)
    exclusion : exclude shadow, layover, high ground (HAND), no-sensitivity and low-backscatter
        land cover (:func:`floodxr.terrain.flags`); False: map every pixel the radar saw
    reference_water : split flood from reference water; False: map water only
    dem, landcover, occurrence : where these layers come from (:func:`floodxr.ancillary.resolve`):
        None: the catalogue's ``cop-dem-glo-30``, ``esa-worldcover`` and ``jrc-gsw`` when it
        offers them; a collection id; a raster file; False: not used
    hand : a precomputed height above nearest drainage (a collection id or a raster file, in
        metres): HAND is then read, not computed from the DEM (which still gives shadow and
        layover)
    occurrence_min : occurrence (percent) from which a pixel is reference water
    engine : how the network runs (``set_options(engine=)``); None: the option's
    threads : threads computing (dask and the network together); None: all cores

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.mapping import map_floods
    >>> from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic
    >>> with serve_synthetic() as (catalog, _):
    ...     result = map_floods((-0.05, 39.02, -0.02, 39.04), "2019-09-20/2019-09-30",
    ...                         catalog=catalog, out=tempfile.mkdtemp(),
    ...                         reference="2019-09-01/2019-09-15", progress=False)
    >>> result.areas[["water_km2", "flood_km2"]].round(1).values.tolist()  # the pass, the event
    [[6.2, 3.0], [nan, 3.0]]
    >>> sorted(p.name.split("_", 1)[1] for p in next(iter(result.files.values())))
    ['advisory.tif', 'exclusion.tif', 'flood.tif', 'footprint.parquet', 'likelihood.tif',
     'overlay.png', 'polygons.parquet', 'probability.tif', 'water.tif', 'water_polygons.parquet']
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from floodxr import ancillary, models
    from floodxr.data import stac
    from floodxr.data.catalogs import get_catalog
    from floodxr.options import OPTIONS, checked_run_options, set_options

    box, folder = check_inputs(
        bbox,
        datetime,
        out=out,
        catalog=catalog,
        model=model,
        reference=reference,
        resolution=resolution,
    )
    number(occurrence_min, "occurrence_min (percent)", above=0)
    run_options = checked_run_options(engine, threads)
    choices = {
        "dem": _choice(dem) if exclusion else False,
        "landcover": _choice(landcover) if exclusion else False,
        "hand": _choice(hand) if exclusion else False,
        "occurrence": _choice(occurrence) if reference_water and reference is None else False,
    }
    folder = output_folder(folder)
    table = folder / "areas.csv"
    request = {
        "bbox": list(box),
        "datetime": str(datetime),
        "reference": None if reference is None or not reference_water else str(reference),
        "catalog": get_catalog(catalog).url,
        "collection": None if collection is None else str(collection),
        "model": str(models.resolve(model).resolve()),
        # a checkpoint retrained in place is another model: its finished passes are not ours
        "model_sha256": hashlib.sha256(models.resolve(model).read_bytes()).hexdigest(),
        "engine": run_options.get("engine") or OPTIONS["engine"],
        "resolution": resolution,
        "layers": choices,
        "occurrence_min": float(occurrence_min),
    }
    resume = _resumable(folder, request, overwrite)
    remove_partials(folder)  # left by a killed run of this map (the folder is ours from here)
    with atomic(folder / RECORD, overwrite=True) as partial:  # refused above unless ours
        partial.write_text(json.dumps(request, indent=1) + "\n")
    sources = {k: ancillary.resolve(k, v, catalog) for k, v in choices.items()}  # type: ignore[arg-type]
    found = stac.search_s1(box, datetime, catalog=catalog, collection=collection)
    cube = stac.load_s1(found, bbox=box, resolution=resolution, mosaic=True, chunks=2048)
    rows, files = [], {}
    show = OPTIONS["progress"] if progress is None else progress
    # a re-run of the same request replaces only the files of passes it had not finished
    replace = overwrite or resume
    tags = {"floodxr_model": request["model"], "floodxr_model_sha256": request["model_sha256"]}
    tags |= {f"floodxr_{k}": "none" if v is None else v.record() for k, v in sources.items()}
    with set_options(progress=show, **run_options), _threads(threads):
        before = None
        if request["reference"] is not None:
            before = _reference(
                stac, box, reference, catalog, collection, cube, model, folder, replace, resume
            )
            tags["floodxr_reference_water"] = f"Sentinel-1 passes {reference}"
        elif sources["occurrence"] is not None:
            before = _occurrence(
                cube, sources["occurrence"], catalog, occurrence_min, folder, replace, resume
            )
            tags["floodxr_reference_water"] = (
                f"occurrence >= {occurrence_min:g} % ({sources['occurrence'].record()})"
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
                pass_ = _Pass(scene, folder, stamp, model, before, replace, tags)
                written, areas = pass_.run(sources, catalog)
                # the pass's last file: once it is there, every file of the pass is whole
                with atomic(done, overwrite=True) as partial:
                    partial.write_text(
                        json.dumps({"files": [p.name for p in written], "areas": areas})
                    )
            files[stamp] = written
            rows.append({"time": pd.Timestamp(scene.time.values), "id": str(scene.id.values)})
            rows[-1] |= areas
        kind = "flood" if before is not None else "water"
        done = folder / "composite_areas.json"
        record = json.loads(done.read_text()) if resume and done.is_file() else {}
        if record.get("passes") == sorted(files):
            files["composite"] = [folder / n for n in record["files"]]
            areas = record["areas"]
        else:
            passes = sorted(files)
            files["composite"], areas = _composite(folder, files, kind, replace, tags)
            with atomic(done, overwrite=True) as partial:  # last: the composite is whole
                partial.write_text(
                    json.dumps(
                        {
                            "passes": passes,
                            "files": [p.name for p in files["composite"]],
                            "areas": areas,
                        }
                    )
                )
        rows.append({"time": pd.NaT, "id": f"composite of {len(files) - 1} passes ({kind})"})
        rows[-1] |= areas
    frame = pd.DataFrame(rows)
    with atomic(table, overwrite=True) as partial:  # refused above unless overwrite or ours
        frame.to_csv(partial, index=False)
    return FloodMap(out=folder, areas=frame, files=files)


def _choice(value: Any) -> Any:
    """A layer option as the request records it: None (the catalogue's default), an id, or
    a file's absolute path; False: not used."""
    if value is False:
        return False
    if isinstance(value, (str, Path)) and Path(value).is_file():
        return str(Path(value).resolve())
    if isinstance(value, Path):
        raise InvalidOptionError(f"no file {str(value)!r}; give an existing raster file")
    if value is not None and not isinstance(value, str):
        raise InvalidOptionError(
            f"a layer must be a collection id or a raster file, got {type(value).__name__}"
        )
    return value


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """Dask's threaded scheduler with ``threads`` workers (None: as configured)."""
    if threads is None:
        yield
        return
    with dask.config.set(scheduler="threads", num_workers=threads):
        yield


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
    0 dry, 255 unseen) and read back lazily: water where at least half of the passes in
    ``reference`` saw water (:func:`floodxr.product.water_frequency_block`). A resumed map
    reads the one it wrote (written whole or not at all)."""
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
    cut = water_cut(probability)
    frequency = xr.apply_ufunc(
        lambda stack: water_frequency_block(np.moveaxis(stack, -1, 0), cut),
        probability,
        input_core_dims=[["time"]],
        dask="parallelized",
        output_dtypes=["float32"],
    )
    reference_water = _mask(frequency.notnull(), frequency >= REFERENCE_FREQUENCY)
    to_cog(reference_water, path, overwrite=overwrite)
    return _read(path)


def _occurrence(
    cube: xr.DataArray,
    source: Any,
    catalog: Any,
    minimum: float,
    folder: Path,
    overwrite: bool,
    resume: bool,
) -> xr.DataArray:
    """Reference water from the water occurrence on the passes' grid, written once as
    ``reference_water.tif`` (1 water, 0 dry, 255 unknown) and read back lazily."""
    from floodxr import ancillary
    from floodxr.writers import to_cog

    path = folder / "reference_water.tif"
    if not (resume and path.is_file()):
        like = cube.isel(time=0, band=0, drop=True)
        codes = ancillary.occurrence_reference(
            like, occurrence=source, catalog=catalog, minimum=minimum
        )
        to_cog(codes, path, overwrite=overwrite, tags={"floodxr_source": source.record()})
    return _read(path)


@dataclasses.dataclass(frozen=True)
class _Pass:
    """One pass of a map: its scene, where its files go, and what it is mapped with."""

    scene: xr.DataArray
    folder: Path
    stamp: str
    model: str
    before: xr.DataArray | None
    overwrite: bool
    tags: dict[str, str]

    def names(self) -> dict[str, Path]:
        names = {
            kind: self.folder / f"{self.stamp}_{kind}.{suffix}"
            for kind, suffix in (
                ("probability", "tif"),
                ("likelihood", "tif"),
                ("exclusion", "tif"),
                ("water", "tif"),
                ("flood", "tif"),
                ("advisory", "tif"),
                ("polygons", "parquet"),
                ("water_polygons", "parquet"),
                ("footprint", "parquet"),
                ("overlay", "png"),
            )
        }
        if self.before is None:  # the polygons are the water's
            del names["flood"], names["water_polygons"]
        return names

    def run(self, sources: dict[str, Any], catalog: Any) -> tuple[list[Path], dict[str, Any]]:
        from floodxr import ancillary
        from floodxr.product import areas, describe_flags, pass_layers
        from floodxr.writers import to_vector

        names = self.names()
        existing = [str(p) for p in names.values() if p.exists()]
        if existing and not self.overwrite:
            raise OutputExistsError(f"{existing} exist already; pass overwrite=True (--overwrite)")
        # the network runs once: the probability is written, the rest is read back from it
        segmented = self.scene.flood.segment(model=self.model)
        cut = water_cut(segmented)
        self._cog(segmented, names["probability"], {"floodxr_cut": cut})
        probability = _read(names["probability"], masked=True)
        terrain = ancillary.exclusion(
            probability,
            dem=sources["dem"],
            landcover=sources["landcover"],
            hand=sources["hand"],
            orbit_state=self._orbit_state() if sources["dem"] is not None else None,
            catalog=catalog,
        )
        # the terrain is computed once, into the exclusion layer, and read back for the rest
        first = pass_layers(probability, cut=cut, exclusion=terrain)
        self._cog(first["exclusion"], names["exclusion"], {"floodxr_flags": describe_flags()})
        layers = pass_layers(
            probability, cut=cut, exclusion=_read(names["exclusion"]), reference=self.before
        )
        for kind in ("likelihood", "water", "flood"):
            if kind in names:
                self._cog(layers[kind], names[kind], {"floodxr_cut": cut})
        measured: dict[str, Any] = areas(layers)
        water = _read(names["water"])  # one lazy handle for the polygons, picture and flags
        shown = _read(names["flood"]) if self.before is not None else water
        to_vector(shown.flood.to_polygons(), names["polygons"], overwrite=self.overwrite)
        if "water_polygons" in names:
            to_vector(water.flood.to_polygons(), names["water_polygons"], overwrite=self.overwrite)
        to_vector(_footprint(names["probability"]), names["footprint"], overwrite=self.overwrite)
        flags = self._picture(shown, water, names["overlay"])
        measured |= flags
        self._cog(self._advisory(water, flags), names["advisory"], flags)
        return list(names.values()), measured

    def _advisory(self, water: xr.DataArray, flags: dict[str, bool]) -> xr.DataArray:
        """The pass's advisory flags per pixel (:func:`floodxr.product.advisory_codes`)."""
        from floodxr.product import advisory_codes

        inputs = [water]
        if self.before is not None:
            inputs.append(align(self.before, water, "the reference water").fillna(NODATA))
        codes = xr.apply_ufunc(
            lambda w, r=None: advisory_codes(w, r, flags),
            *inputs,
            dask="parallelized",
            output_dtypes=["uint8"],
        )
        return codes.rio.write_nodata(NODATA).rio.write_crs(water.rio.crs)

    def _cog(self, layer: xr.DataArray, path: Path, extra: dict[str, Any]) -> None:
        from floodxr.writers import to_cog

        to_cog(layer, path, overwrite=self.overwrite, tags=self.tags | extra)

    def _orbit_state(self) -> str | None:
        state = self.scene.coords.get("sat:orbit_state")
        value = None if state is None else str(np.asarray(state.values).ravel()[0]).lower()
        if value not in ("ascending", "descending"):
            warnings.warn(
                f"pass {self.stamp}: its items give no sat:orbit_state ({value!r}); radar "
                "shadow and layover are not excluded (HAND and land cover are)",
                FloodxrWarning,
                stacklevel=4,
            )
            return None
        return value

    def _picture(self, shown: xr.DataArray, water: xr.DataArray, path: Path) -> dict[str, Any]:
        """The overlay picture, and the pass's advisories from the same subsample."""
        import matplotlib

        from floodxr.product import advisories

        matplotlib.use("Agg")
        scene = self.scene
        step = max(1, -(-max(scene.sizes["y"], scene.sizes["x"]) // PICTURE_PX))
        every = {"y": slice(None, None, step), "x": slice(None, None, step)}
        small = scene.isel(every).compute()
        what = "flood" if self.before is not None else "water"
        axis = small.flood.plot(
            shown.isel(every), title=f"Sentinel-1 {self.stamp} UTC with {what} (floodxr)"
        )
        with atomic(path, overwrite=True) as partial:  # refused in run() unless overwrite
            axis.figure.savefig(partial, dpi=110)
        import matplotlib.pyplot as plt

        plt.close(axis.figure)
        reference = None
        if self.before is not None:
            reference = np.asarray(align(self.before, water, "the reference water").isel(every))
            reference = np.where(np.isfinite(reference), reference, NODATA)
        return advisories(
            np.asarray(small.sel(band="vh").values),
            np.asarray(water.isel(every).values),
            reference=reference,
        )


def _composite(
    folder: Path, files: dict[str, list[Path]], kind: str, overwrite: bool, tags: dict[str, str]
) -> tuple[list[Path], dict[str, Any]]:
    """The event composite of the passes' ``kind`` layers (:func:`floodxr.product.composite`):
    its COGs, the polygons of the maximum extent, and its areas."""
    import pandas as pd

    from floodxr.product import COMPOSITE, composite
    from floodxr.writers import to_cog, to_vector

    layers = [
        _read(next(p for p in paths if p.name.endswith(f"_{kind}.tif"))) for paths in files.values()
    ]
    times = [pd.Timestamp(datetime_of(stamp)) for stamp in files]
    stack = xr.concat(layers, dim=pd.Index(times, name="time"), join="exact")
    made = composite(stack)
    written = []
    for name in COMPOSITE:
        path = folder / f"composite_{name}.tif"
        to_cog(made[name], path, overwrite=overwrite, tags=tags | {"floodxr_layer": kind})
        written.append(path)
    extent = _read(folder / "composite_max_flood.tif")
    polygons = folder / "composite_polygons.parquet"
    to_vector(extent.flood.to_polygons(), polygons, overwrite=overwrite)
    seen = extent != NODATA
    flood_km2, observed_km2 = dask.compute(
        extent.flood.area_km2(), _mask(seen, seen).flood.area_km2()
    )
    areas = {"flood_km2": float(flood_km2), "observed_km2": float(observed_km2)}
    return [*written, polygons], areas


def datetime_of(stamp: str) -> str:
    """A pass's ``YYYYmmddTHHMMSS`` file stamp as ISO 8601."""
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}"


def _footprint(probability_path: Path) -> Any:
    """The outline of what a pass's radar saw (where it has a probability), one row."""
    seen = _read(probability_path, masked=True).notnull()
    outline = _mask(xr.ones_like(seen, dtype=bool), seen).flood.to_polygons()
    merged = outline.dissolve()
    merged["area_km2"] = [float(outline.area_km2.sum())]
    return merged[["geometry", "area_km2"]]


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
