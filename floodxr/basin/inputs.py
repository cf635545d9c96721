"""What a basin run is given: basin polygons, each basin's grid, the reference, the checks.

A basin's grid is the UTM zone of its centroid, north-up, pixel edges on multiples of the
resolution (:func:`floodxr.grid.snapped`). The reference for flood is typed: dates before the
flood (:class:`ReferenceDates`) or a water mask (:class:`ReferenceMask`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import xarray as xr
from odc.geo.geobox import GeoBox

from floodxr._valid import number
from floodxr.errors import BasinInputError, InvalidOptionError
from floodxr.grid import snapped, utm_epsg

__all__ = [
    "Basin",
    "Reference",
    "ReferenceDates",
    "ReferenceMask",
    "check_inputs",
    "read_basins",
    "reference_of",
]


@dataclass(frozen=True)
class Basin:
    """One basin: an id and a lon/lat polygon (EPSG:4326)."""

    id: str
    geometry: Any

    @property
    def epsg(self) -> int:
        """The UTM zone of the basin's centroid."""
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
class ReferenceDates:
    """A STAC interval before the flood: water where at least half of its passes saw water."""

    datetime: Any

    def record(self) -> dict[str, str]:
        from floodxr.data.search import format_datetime

        return {"dates": str(format_datetime(self.datetime))}


@dataclass(frozen=True)
class ReferenceMask:
    """A water mask: a raster file (GeoTIFF, ...) or a DataArray with a CRS; 1 water, 0 dry,
    nodata unknown."""

    mask: Path | xr.DataArray

    def record(self) -> dict[str, str]:
        if isinstance(self.mask, xr.DataArray):
            return {"mask": dask.base.tokenize(self.mask)}
        return {"mask": hashlib.sha256(self.mask.read_bytes()).hexdigest()}


@dataclass(frozen=True)
class ReferenceOccurrence:
    """A surface-water occurrence layer (percent): water from ``minimum`` on."""

    source: Any  # floodxr.ancillary.Source
    minimum: float

    def record(self) -> dict[str, str]:
        return {"occurrence": self.source.record(), "minimum": f"{self.minimum:g}"}


Reference = ReferenceDates | ReferenceMask | ReferenceOccurrence | None


def reference_of(
    *,
    dates: Any = None,
    mask: str | Path | xr.DataArray | None = None,
    legacy: Any = None,
) -> Reference:
    """The run's reference from ``reference_dates=`` / ``reference_mask=`` (or the deprecated
    ``reference=``, which guessed from whether a file of that name exists), checked."""
    if sum(v is not None for v in (dates, mask, legacy)) > 1:
        raise InvalidOptionError(
            "give one reference: reference_dates= (a STAC interval) or reference_mask= (a water "
            "mask file or DataArray)"
        )
    if legacy is not None:
        warnings.warn(
            "reference= is deprecated: pass reference_dates='START/END' or reference_mask=PATH "
            "(the old name goes in the next release)",
            FutureWarning,
            stacklevel=3,
        )
        if isinstance(legacy, xr.DataArray) or _looks_like_a_file(legacy):
            mask = legacy
        else:
            dates = legacy
    if mask is not None:
        return _mask_reference(mask)
    if dates is not None:
        from floodxr.data.search import format_datetime

        try:
            format_datetime(dates)
        except InvalidOptionError as err:
            what = "is neither an existing water-mask file nor" if legacy else "is not"
            raise BasinInputError(f"reference {dates!r} {what} a STAC interval ({err})") from err
        return ReferenceDates(dates)
    return None


_RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".nc", ".zarr", ".img", ".jp2")


def _looks_like_a_file(value: Any) -> bool:
    return isinstance(value, Path) or (
        isinstance(value, str)
        and (Path(value).suffix.lower() in _RASTER_SUFFIXES or Path(value).exists())
    )


def _mask_reference(mask: Any) -> ReferenceMask:
    if isinstance(mask, xr.DataArray):
        return ReferenceMask(mask)
    if not isinstance(mask, (str, Path)):
        raise BasinInputError(
            f"reference_mask must be a raster path or a DataArray, got {type(mask).__name__}"
        )
    path = Path(mask)
    if not path.is_file():
        raise BasinInputError(
            f"reference {str(path)!r}: no such file; give an existing water-mask GeoTIFF "
            "(1 water, 0 dry) or a STAC interval of pre-flood dates like "
            "'2019-08-01/2019-08-31'"
        )
    return ReferenceMask(path)


def basin_grid(basin: Basin, resolution: float) -> GeoBox:
    """The basin's grid: its UTM zone, its projected bounds grown to whole pixels."""
    return snapped(basin.projected(basin.epsg).bounds, f"EPSG:{basin.epsg}", resolution)


#: Basin ids that name a Zarr group and a file everywhere (no separators, no '..', no ':').
_NAMEABLE = re.compile(r"(?![.\- ])[\w .+=,()\-]{1,200}(?<! )")


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
    elif hasattr(basins, "columns") and (
        "geometry" in getattr(basins, "columns", ()) or hasattr(basins, "active_geometry_name")
    ):
        frame = basins
        crs = getattr(frame, "crs", None)
        if crs is not None and hasattr(frame, "to_crs"):
            frame = frame.to_crs(4326)
        if id_column not in frame.columns:
            raise BasinInputError(
                f"the basins table has no id column {id_column!r} (columns: "
                f"{[str(c) for c in frame.columns]}); pass id_column= naming one"
            )
        # a GeoDataFrame's active geometry, whatever its column is called
        geometries = frame.geometry if hasattr(frame, "active_geometry_name") else frame["geometry"]
        pairs = list(zip(frame[id_column], geometries, strict=True))
    elif isinstance(basins, Mapping):
        pairs = list(basins.items())
    else:
        raise BasinInputError(
            f"basins must be a GeoJSON path, a GeoDataFrame or a mapping {{id: geometry}}, got "
            f"{type(basins).__name__}"
        )
    out: list[Basin] = []
    seen: set[str] = set()
    for index, (raw_id, geometry) in enumerate(pairs):
        if raw_id is None or (isinstance(raw_id, float) and math.isnan(raw_id)):
            raise BasinInputError(
                f"basin {index} has no id ({raw_id!r} in column {id_column!r}); give every "
                "basin an id, or pass id_column= (--id-column) naming a column that has them"
            )
        basin_id = str(raw_id)
        if not _NAMEABLE.fullmatch(basin_id):
            raise BasinInputError(
                f"basin id {basin_id!r} cannot name a Zarr group or a file: ids are 1 to 200 "
                "letters, digits, spaces and '_-.+=,()', not starting with '.', '-' or a space; "
                "rename the basin (e.g. replace '/' and '\\' with '_')"
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


def check_inputs(
    basins: Any,
    *,
    datetime: Any,
    store: str | Path,
    model: str = "student",
    resolution: float = 10.0,
    reference_dates: Any = None,
    reference_mask: str | Path | xr.DataArray | None = None,
    chunk: int = 1024,
    id_column: str = "id",
    reference: Any = None,
) -> tuple[list[Basin], Path, Reference]:
    """Check a basin run's inputs before any cluster starts or any request is sent.

    Returns the parsed basins, the model's weights path and the reference; raises a named error
    otherwise (:func:`~floodxr.basin.run` calls it first; ``floodxr basin`` calls it before
    starting its cluster). ``reference=`` is the deprecated, guessing form of
    ``reference_dates=`` / ``reference_mask=``.

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
    from floodxr.data.search import check_reference_before, format_datetime
    from floodxr.segment import THRESHOLD_MODELS

    if model in THRESHOLD_MODELS:
        raise InvalidOptionError(
            f"model {model!r} thresholds whole scenes, which basin runs cut into chunks; use a "
            f"network model (e.g. 'student') or run segment() per scene"
        )
    if isinstance(chunk, bool) or not (isinstance(chunk, int) and chunk >= 64):
        raise InvalidOptionError(f"chunk must be an integer of at least 64 px, got {chunk!r}")
    number(resolution, "resolution (metres)", above=0)
    format_datetime(datetime)
    parsed_reference = reference_of(dates=reference_dates, mask=reference_mask, legacy=reference)
    if isinstance(parsed_reference, ReferenceDates):
        check_reference_before(parsed_reference.datetime, datetime, overlap=True)
    store_path = Path(store)
    if store_path.exists() and not store_path.is_dir():
        raise BasinInputError(f"store {str(store_path)!r} is a file; a store is a folder")
    if not isinstance(model, (str, Path)) or not str(model).strip():
        raise InvalidOptionError(f"model must be a name or a checkpoint path, got {model!r}")
    parsed = read_basins(basins, id_column=id_column)
    return parsed, models.resolve(model), parsed_reference
