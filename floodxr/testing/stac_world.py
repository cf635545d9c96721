"""A STAC world on your own disk: COGs and STAC items (:mod:`floodxr.testing.stac` serves it).

:func:`write_stac_world` turns the real Sen1Floods11 chips of a data folder into Cloud-Optimized
GeoTIFFs with STAC items, and adds synthetic neighbours shaped like Microsoft Planetary
Computer's collections (linear-power ``sentinel-1-rtc`` in two UTM zones, ``sentinel-2-l2a``).
:class:`StacServer` serves it with `stac-fastapi-static`_ (the STAC API) and Starlette's
range-capable static files (the COGs) from one uvicorn process on loopback, so that
pystac-client and GDAL talk real HTTP to it. Install ``floodxr[loopback]`` for the server.

What the catalog holds, and where each number comes from:

``sen1floods11-s1`` / ``sen1floods11-s2``
    One item per chip, pixels copied from the chip (S1 in dB, S2 L1C digital numbers). Dates are
    the event's ``s1_date`` / ``s2_date`` from ``Sen1Floods11_Metadata.geojson``; times of day
    follow the satellites' local mean solar time (Sentinel-1 ascending 18:00, descending 06:00;
    Sentinel-2 10:30) at the chip's longitude. Orbit direction and relative orbit are the
    event's. Cloud cover is not in the metadata: S2 items carry :data:`CHIP_CLOUD_COVER`
    (assigned), and :data:`DECOYS` copy India_900498's S2 pixels at other times and cloud
    covers. Items use ``proj:epsg`` (projection extension v1).
``sentinel-1-rtc`` / ``sentinel-2-l2a``
    Synthetic scenes on the zone 30/31 boundary at 0° E (Valencia), two dates 12 days apart on
    one relative orbit, two overlapping frames per date, each frame in its own UTM zone as the
    Planetary Computer stores them; S1 in linear gamma0 power with nodata -32768, S2 as L2A
    digital numbers with the +1000 offset of processing baseline 04.00. Water is
    :func:`synthetic_water` of longitude and latitude, so the truth is known on any grid.
    Items use ``proj:code`` (projection extension v2). A place for each reason a pixel is
    excluded (:func:`synthetic_landcover`, :data:`PATCHES`): sand as dark as water, a town,
    a forest, and the cliff of :func:`synthetic_elevation`, in radar shadow (as dark as water)
    on these descending passes.
``cop-dem-glo-30`` / ``jrc-gsw`` / ``esa-worldcover``
    The terrain (:func:`synthetic_elevation`), the water occurrence (100 % where the first pass
    saw water) and the land cover (:func:`synthetic_landcover`) over the synthetic scenes, in
    lon/lat as the Planetary Computer serves them.

.. _stac-fastapi-static: https://github.com/hadrien-f/stac-fastapi-static
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

from floodxr.data import sen1floods11
from floodxr.grid import snapped
from floodxr.testing import LAND_DB, WATER_DB

__all__ = [
    "CHIP_CLOUD_COVER",
    "CLIFF_LON",
    "PATCHES",
    "synthetic_elevation",
    "synthetic_landcover",
    "DECOYS",
    "SYNTHETIC_BASINS",
    "SYNTHETIC_BBOX",
    "SYNTHETIC_DATES",
    "StacWorld",
    "iter_items",
    "synthetic_water",
    "synthetic_water_km2",
    "write_stac_world",
]

#: Cloud cover (%) assigned to the S2 chip items (the metadata has none).
CHIP_CLOUD_COVER: Mapping[str, float] = {
    "India_900498": 3.0,
    "Spain_7370579": 1.5,
    "USA_430764": 6.0,
}


#: Sentinel-2 decoys copied from India_900498's S2 chip: (time after its S1 item, cloud cover %).
#: The real S2 chip is 19.5 h before the S1 chip; the decoys sit inside a ±36 h window but too
#: cloudy, and just outside it.
DECOYS: Mapping[str, tuple[dt.timedelta, float]] = {
    "India_900498_S2_cloudy": (dt.timedelta(hours=2), 40.0),
    "India_900498_S2_late": (dt.timedelta(hours=37), 2.0),
}


#: lon/lat box of the synthetic scenes: it straddles the UTM zone 30 / 31 boundary at 0° E.
SYNTHETIC_BBOX = (-0.06, 39.00, 0.06, 39.08)


#: Acquisition times of the synthetic Sentinel-1 passes (descending, relative orbit 110).
SYNTHETIC_DATES = (
    dt.datetime(2019, 9, 13, 5, 59, 50, tzinfo=dt.timezone.utc),
    dt.datetime(2019, 9, 25, 5, 59, 50, tzinfo=dt.timezone.utc),
)


#: Two basins over the synthetic scenes, as a GeoJSON FeatureCollection (ids in ``id``):
#: ``west`` (centroid in UTM zone 30, the lake and the river) and ``east`` (zone 31, the river).
#: Each is covered by frames of both zones on both dates.
SYNTHETIC_BASINS: Mapping[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"id": basin_id},
            "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
        }
        for basin_id, ring in (
            (
                "west",
                [
                    [-0.055, 39.006],
                    [-0.008, 39.004],
                    [-0.004, 39.030],
                    [-0.012, 39.046],
                    [-0.040, 39.044],
                    [-0.056, 39.030],
                ],
            ),
            (
                "east",
                [
                    [0.004, 39.036],
                    [0.030, 39.034],
                    [0.055, 39.045],
                    [0.052, 39.076],
                    [0.020, 39.077],
                    [0.002, 39.060],
                ],
            ),
        )
    ],
}


#: Cloud cover (%) of the synthetic Sentinel-2 scene of each date: the second is too cloudy.
SYNTHETIC_CLOUD_COVER = (4.0, 35.0)


_S1_SOLAR_HOUR = {"ASCENDING": 18.0, "DESCENDING": 6.0}


_S2_SOLAR_HOUR = 10.5


_S2_ASSETS = {"B02": 2, "B03": 3, "B04": 4, "B08": 8}  # asset key -> band of an S2Hand chip


_S2_WATER = {"B02": 900, "B03": 800, "B04": 600, "B08": 300}


_S2_LAND = {"B02": 500, "B03": 800, "B04": 700, "B08": 3000}


_RES = 10.0


@dataclass(frozen=True)
class StacWorld:
    """Where :func:`write_stac_world` put things."""

    root: Path
    catalog: Path
    assets: Path
    asset_base: str


def synthetic_water(lon: np.ndarray, lat: np.ndarray, date_index: int = 0) -> np.ndarray:
    """The true water (0/1) of the synthetic scenes at ``lon``/``lat`` on the ``date_index`` pass.

    A meandering river crossing 0° E and a lake that grows between the two passes (a flood).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.testing.stac import synthetic_water
    >>> synthetic_water(np.array([-0.035, 0.05]), np.array([39.03, 39.03])).tolist()  # lake, land
    [1, 0]
    """
    lon, lat = np.asarray(lon, "float64"), np.asarray(lat, "float64")
    centre = 0.008 * np.sin((lat - 39.0) / 0.08 * 3 * np.pi)
    river = np.abs(lon - centre) < 0.006
    radius = 0.012 + 0.008 * date_index
    lake = ((lon + 0.035) / radius) ** 2 + ((lat - 39.03) / (0.7 * radius)) ** 2 < 1
    return (river | lake).astype("uint8")


#: Where the synthetic terrain's cliff rises (lon, degrees): 65 degrees up to the east.
CLIFF_LON = (0.045, 0.05)
_M_PER_DEG = (86_400.0, 111_000.0)  # metres per degree of longitude / latitude at 39 N


def synthetic_elevation(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Elevation (m) of the synthetic scenes' terrain at ``lon``/``lat``: a valley whose floor is
    the river of :func:`synthetic_water` (sides rising 2 %, the floor 0.5 m per km northward), a
    flat-floored basin holding the lake at its largest, and a cliff rising 65 degrees eastward
    between ``CLIFF_LON`` (radar shadow on descending passes, layover on ascending ones).

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.testing.stac import synthetic_elevation
    >>> synthetic_elevation(np.array([0.0, 0.03]), np.array([39.0, 39.0])).round(1).tolist()
    [20.0, 71.8]
    """
    lon, lat = np.asarray(lon, "float64"), np.asarray(lat, "float64")
    centre = 0.008 * np.sin((lat - 39.0) / 0.08 * 3 * np.pi)
    north_km = (lat - 39.0) * _M_PER_DEG[1] / 1000
    z = 20.0 + 0.02 * np.abs(lon - centre) * _M_PER_DEG[0] + 0.5 * north_km
    basin = ((lon + 0.035) / 0.021) ** 2 + ((lat - 39.03) / 0.0147) ** 2 < 1
    z = np.where(basin, 20.0 + 0.5 * 0.03 * _M_PER_DEG[1] / 1000, z)
    rise = np.clip(
        (lon - CLIFF_LON[0]) * _M_PER_DEG[0], 0, (CLIFF_LON[1] - CLIFF_LON[0]) * _M_PER_DEG[0]
    )
    return z + np.tan(np.deg2rad(65.0)) * rise


#: The land-cover patches of the synthetic scenes: ESA WorldCover class -> (west, south, east,
#: north) in degrees, each clear of the river, the lake and the two basins, inside the frames.
PATCHES: Mapping[int, tuple[float, float, float, float]] = {
    60: (0.022, 39.0305, 0.044, 39.0335),  # bare sand: as dark as water
    50: (-0.019, 39.062, -0.011, 39.072),  # built-up: bright
    10: (-0.019, 39.050, -0.011, 39.058),  # tree cover
}
#: Mean backscatter (dB) of the patches' surfaces (sand: Bazzi et al. 2019 report -20 to -25 dB
#: VV on dry sand seas; towns: double bounce).
_PATCH_DB: Mapping[int, Mapping[str, float]] = {
    60: {"vv": -22.0, "vh": -29.0},
    50: {"vv": -3.0, "vh": -10.0},
    10: {"vv": -7.0, "vh": -13.0},
}


def synthetic_landcover(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """ESA WorldCover classes of the synthetic scenes: cropland (40), permanent water (80)
    where the first pass saw water, and the :data:`PATCHES`.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.testing.stac import synthetic_landcover
    >>> lon, lat = np.array([0.03, -0.035, 0.05]), np.array([39.032, 39.03, 39.01])
    >>> synthetic_landcover(lon, lat).tolist()  # sand, the lake, cropland
    [60, 80, 40]
    """
    lon, lat = np.asarray(lon, "float64"), np.asarray(lat, "float64")
    classes = np.where(synthetic_water(lon, lat, 0) == 1, 80, 40)
    for code, (west, south, east, north) in PATCHES.items():
        inside = (lon >= west) & (lon <= east) & (lat >= south) & (lat <= north)
        classes = np.where(inside, code, classes)
    return classes.astype("uint8")


def _surface_db(lon: np.ndarray, lat: np.ndarray, water: np.ndarray, band: str) -> np.ndarray:
    """Mean backscatter (dB) of a descending pass: water, land, the patches, the cliff's
    shadow."""
    mean_db = np.where(water == 1, WATER_DB[band], LAND_DB[band])
    classes = synthetic_landcover(lon, lat)
    for code, levels in _PATCH_DB.items():
        mean_db = np.where((classes == code) & (water == 0), levels[band], mean_db)
    shadow = (lon > CLIFF_LON[0]) & (lon < CLIFF_LON[1])  # looking west at a face rising east
    return np.where(shadow, WATER_DB[band], mean_db)


def _terrain_items(out: Path, base: str) -> list[dict[str, Any]]:
    """A 1-arcsecond DEM (``cop-dem-glo-30``, as Copernicus GLO-30), a surface-water
    occurrence (``jrc-gsw``: 100 % where the first pass saw water) and the land cover
    (``esa-worldcover`` at 1/12000 degree, as ESA WorldCover) over the synthetic scenes."""
    west, south, east, north = SYNTHETIC_BBOX
    step = 1 / 3600
    transform = Affine(step, 0, west, 0, -step, north)
    shape = (round((north - south) / step), round((east - west) / step))
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    lon, lat = west + cols * step, north - rows * step
    layers = {
        "cop-dem-glo-30": ("data", synthetic_elevation(lon, lat).astype("float32"), -32767.0),
        "jrc-gsw": ("occurrence", (synthetic_water(lon, lat, 0) * 100).astype("uint8"), 255),
    }
    fine = 1 / 12000
    cover_transform = Affine(fine, 0, west, 0, -fine, north)
    cover_shape = (round((north - south) / fine), round((east - west) / fine))
    rows, cols = np.mgrid[0 : cover_shape[0], 0 : cover_shape[1]] + 0.5
    cover = synthetic_landcover(west + cols * fine, north - rows * fine)
    grids = {"esa-worldcover": (cover_transform, cover_shape)}
    layers["esa-worldcover"] = ("map", cover, 0)
    items = []
    for collection, (key, values, nodata) in layers.items():
        grid, size = grids.get(collection, (transform, shape))
        relative = f"{collection}/{collection}-synthetic.tif"
        _write_cog(out / relative, values, "EPSG:4326", grid, nodata)
        asset = _asset(f"{base}/{relative}", key, **{"raster:bands": [{"nodata": nodata}]})
        props = _proj(grid, size, 4326, "epsg")
        when = dt.datetime(2021, 4, 22, tzinfo=dt.timezone.utc)
        items.append(
            _item(f"{collection}-synthetic", collection, when, SYNTHETIC_BBOX, props, {key: asset})
        )
    return items


def synthetic_water_km2(geometry: Any, date_index: int = 0, *, spacing: float = 2.0) -> float:
    """The true water area (km²) of :func:`synthetic_water` inside a lon/lat polygon.

    Counted on a ``spacing``-metre lattice of a Lambert azimuthal equal-area projection centred
    on the polygon, so the area is ellipsoidal and independent of any UTM grid.

    Examples
    --------
    >>> from shapely.geometry import shape
    >>> from floodxr.testing.stac import SYNTHETIC_BASINS, synthetic_water_km2
    >>> west = shape(SYNTHETIC_BASINS["features"][0]["geometry"])
    >>> 2.0 < synthetic_water_km2(west, 0, spacing=10) < synthetic_water_km2(west, 1, spacing=10)
    True
    """
    import shapely
    from rasterio.features import geometry_mask
    from shapely.geometry import shape

    geom = shape(geometry) if isinstance(geometry, Mapping) else geometry
    centre = geom.centroid
    laea = f"+proj=laea +lat_0={centre.y} +lon_0={centre.x} +datum=WGS84 +units=m"
    to_laea = Transformer.from_crs("EPSG:4326", laea, always_xy=True)
    flat = shapely.transform(
        shapely.segmentize(geom, max_segment_length=1e-4), to_laea.transform, interleaved=False
    )
    west, south, east, north = flat.bounds
    shape_ = (int(np.ceil((north - south) / spacing)), int(np.ceil((east - west) / spacing)))
    grid = Affine(spacing, 0, west, 0, -spacing, north)
    inside = geometry_mask([flat], out_shape=shape_, transform=grid, invert=True)
    rows, cols = np.nonzero(inside)
    x, y = west + (cols + 0.5) * spacing, north - (rows + 0.5) * spacing
    lon, lat = Transformer.from_crs(laea, "EPSG:4326", always_xy=True).transform(x, y)
    return float(synthetic_water(lon, lat, date_index).sum() * spacing**2 / 1e6)


def _write_cog(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "COG",
        "width": data.shape[-1],
        "height": data.shape[-2],
        "count": 1,
        "dtype": data.dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
        "blocksize": 256,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _solar_time(date: str, solar_hour: float, lon: float) -> dt.datetime:
    """The UTC time on ``date`` (a UTC date, as Earth Engine gives them) at which the local mean
    solar time at ``lon`` is ``solar_hour``."""
    day = dt.datetime.strptime(date, "%Y/%m/%d").replace(tzinfo=dt.timezone.utc)
    return day + dt.timedelta(hours=(solar_hour - lon / 15.0) % 24)


def _item(
    item_id: str,
    collection: str,
    when: dt.datetime,
    bbox: tuple[float, ...],
    properties: dict[str, Any],
    assets: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    west, south, east, north = bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
        "id": item_id,
        "collection": collection,
        "bbox": list(bbox),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"datetime": _format_time(when), **properties},
        "assets": assets,
        "links": [],
    }


def _asset(href: str, title: str, **extra: Any) -> dict[str, Any]:
    return {
        "href": href,
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "title": title,
        "roles": ["data"],
        **extra,
    }


def _proj(transform: Affine, shape: tuple[int, int], epsg: int, style: str) -> dict[str, Any]:
    crs = {"proj:epsg": epsg} if style == "epsg" else {"proj:code": f"EPSG:{epsg}"}
    return crs | {"proj:transform": list(transform)[:6], "proj:shape": list(shape)}


def _chip_items(data_dir: Path, out: Path, base: str) -> list[dict[str, Any]]:
    events = sen1floods11.read_events(data_dir / "Sen1Floods11_Metadata.geojson")
    items = []
    for kind, folder in (("s1", "S1Hand"), ("s2", "S2Hand")):
        for path in sorted((data_dir / folder).glob("*.tif")):
            chip = path.name.rsplit("_", 1)[0]
            event = sen1floods11.event_of(chip, events)
            with rasterio.open(path) as src:
                pixels, transform, crs = src.read(), src.transform, src.crs
                bounds, shape = tuple(src.bounds), (src.height, src.width)
            lon = (bounds[0] + bounds[2]) / 2
            collection = f"sen1floods11-{kind}"
            props: dict[str, Any] = _proj(transform, shape, int(crs.to_epsg()), "epsg")
            if kind == "s1":
                when = _solar_time(event["s1_date"], _S1_SOLAR_HOUR[event["orbit"]], lon)
                props |= {
                    "platform": "sentinel-1",
                    "constellation": "sentinel-1",
                    "sat:orbit_state": event["orbit"].lower(),
                    "sat:relative_orbit": int(event["rel_orbit_num"]),
                    "sar:instrument_mode": "IW",
                    "sar:product_type": "GRD",
                    "sar:polarizations": ["VV", "VH"],
                }
                layers = {"vv": pixels[0], "vh": pixels[1]}
                nodata = float("nan")
            else:
                when = _solar_time(event["s2_date"], _S2_SOLAR_HOUR, lon)
                props |= {
                    "platform": "sentinel-2",
                    "eo:cloud_cover": CHIP_CLOUD_COVER[chip],
                    "s2:processing_baseline": "02.07",
                }
                layers = {key: pixels[band - 1] for key, band in _S2_ASSETS.items()}
                nodata = 0
            item_id = f"{chip}_{kind.upper()}"
            assets = {}
            for key, layer in layers.items():
                relative = f"{collection}/{item_id}_{key}.tif"
                _write_cog(out / relative, layer, str(crs), transform, nodata)
                assets[key] = _asset(f"{base}/{relative}", key.upper() if kind == "s1" else key)
            bbox = (bounds[0], bounds[1], bounds[2], bounds[3])
            items.append(_item(item_id, collection, when, bbox, props, assets))
    by_id = {i["id"]: i for i in items}
    if {"India_900498_S1", "India_900498_S2"} <= set(by_id):
        s1_time = _parse_time(by_id["India_900498_S1"]["properties"]["datetime"])
        for item_id, (shift, cloud) in DECOYS.items():
            decoy = json.loads(json.dumps(by_id["India_900498_S2"]))
            decoy["id"] = item_id
            decoy["properties"]["datetime"] = _format_time(s1_time + shift)
            decoy["properties"]["eo:cloud_cover"] = cloud
            items.append(decoy)
    return items


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _format_time(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utm_grid(bbox: tuple[float, float, float, float], epsg: int) -> tuple[Affine, tuple[int, int]]:
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    xs, ys = to_utm.transform(
        [bbox[0], bbox[2], bbox[0], bbox[2]], [bbox[1], bbox[1], bbox[3], bbox[3]]
    )
    box = snapped((min(xs), min(ys), max(xs), max(ys)), f"EPSG:{epsg}", _RES)
    return box.affine, tuple(box.shape)  # type: ignore[return-value]


def _lonlat(transform: Affine, shape: tuple[int, int], epsg: int) -> tuple[np.ndarray, ...]:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
    x, y = transform * (cols, rows)
    to_geo = Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4326", always_xy=True)
    return to_geo.transform(x, y)


def _synthetic_items(out: Path, base: str, seed: int) -> list[dict[str, Any]]:
    west, south, east, north = SYNTHETIC_BBOX
    mid_lat = (south + north) / 2
    # two frames of one pass: the southern one in zone 30, the northern one in zone 31
    frames = {
        "A": ((west, south, 0.02, mid_lat + 0.01), 32630),
        "B": ((-0.02, mid_lat - 0.01, east, north), 32631),
    }
    rng = np.random.default_rng(seed)
    items = []
    for index, when in enumerate(SYNTHETIC_DATES):
        for frame, (bbox, epsg) in frames.items():
            transform, shape = _utm_grid(bbox, epsg)
            lon, lat = _lonlat(transform, shape, epsg)
            water = synthetic_water(lon, lat, index)
            outside = (lon < bbox[0]) | (lon > bbox[2]) | (lat < bbox[1]) | (lat > bbox[3])
            stamp = when.strftime("%Y%m%dT%H%M%S")
            item_id = f"S1A_IW_GRDH_1SDV_{stamp}_{frame}_rtc"
            assets = {}
            for band in ("vv", "vh"):
                mean_db = _surface_db(lon, lat, water, band)
                power = 10 ** (mean_db / 10) * rng.gamma(4.4, 1 / 4.4, size=shape)
                power = power.astype("float32")
                power[outside] = -32768.0  # the footprint's nodata border, as in RTC products
                relative = f"sentinel-1-rtc/{item_id}_{band}.tif"
                _write_cog(out / relative, power, f"EPSG:{epsg}", transform, -32768.0)
                assets[band] = _asset(
                    f"{base}/{relative}",
                    f"{band.upper()}: gamma0 terrain normalized backscatter (linear power)",
                )
            props = {
                "platform": "SENTINEL-1A",
                "constellation": "Sentinel-1",
                "sat:orbit_state": "descending",
                "sat:relative_orbit": 110,
                "sar:instrument_mode": "IW",
                "sar:product_type": "GRD",
                "sar:polarizations": ["VV", "VH"],
                **_proj(transform, shape, epsg, "code"),
            }
            frame_time = when + dt.timedelta(seconds=25 if frame == "B" else 0)
            items.append(_item(item_id, "sentinel-1-rtc", frame_time, bbox, props, assets))
        s2_time = when + dt.timedelta(hours=4, minutes=31)  # 10:30 local solar time at 0° E
        transform, shape = _utm_grid(SYNTHETIC_BBOX, 32631)
        lon, lat = _lonlat(transform, shape, 32631)
        water = synthetic_water(lon, lat, index)
        item_id = f"S2B_MSIL2A_{s2_time.strftime('%Y%m%dT%H%M%S')}_T31SBJ"
        assets = {}
        for key in _S2_ASSETS:
            value = np.where(water == 1, _S2_WATER[key], _S2_LAND[key]) * rng.normal(1, 0.05, shape)
            digital = (np.clip(value, 1, 20000) + 1000).astype("uint16")  # baseline 04.00 offset
            relative = f"sentinel-2-l2a/{item_id}_{key}.tif"
            _write_cog(out / relative, digital, "EPSG:32631", transform, 0)
            assets[key] = _asset(f"{base}/{relative}", f"Band {key}")
        props = {
            "platform": "Sentinel-2B",
            "eo:cloud_cover": SYNTHETIC_CLOUD_COVER[index],
            "s2:processing_baseline": "04.00",
            **_proj(transform, shape, 32631, "code"),
        }
        items.append(_item(item_id, "sentinel-2-l2a", s2_time, SYNTHETIC_BBOX, props, assets))
    return items


def _collection(collection_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    boxes = np.array([i["bbox"] for i in items])
    times = sorted(i["properties"]["datetime"] for i in items)
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": collection_id,
        "description": f"floodxr loopback test collection {collection_id}",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[*boxes[:, :2].min(0).tolist(), *boxes[:, 2:].max(0).tolist()]]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "links": [],
    }


def write_stac_world(
    root: str | Path, *, data_dir: str | Path, asset_base: str | None = None, seed: int = 0
) -> StacWorld:
    """Write COGs and a static STAC catalog (best-practice layout) under ``root``.

    Parameters
    ----------
    root : an empty or new folder
    data_dir : a Sen1Floods11 folder (``S1Hand``, ``S2Hand``, metadata geojson)
    asset_base : URL (or folder) under which ``root / "assets"`` will be served; default the
        folder itself, which GDAL reads without a server
    seed : seed of the synthetic speckle and reflectance noise

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> world = write_stac_world(tempfile.mkdtemp(), data_dir=SAMPLE_DIR)
    >>> sorted(p.name for p in world.catalog.parent.iterdir() if p.is_dir())
    ['cop-dem-glo-30', 'esa-worldcover', 'jrc-gsw', 'sen1floods11-s1', 'sen1floods11-s2',
     'sentinel-1-rtc', 'sentinel-2-l2a']
    """
    root = Path(root)
    assets = root / "assets"
    base = asset_base.rstrip("/") if asset_base else assets.resolve().as_posix()
    items = _chip_items(Path(data_dir), assets, base) + _synthetic_items(assets, base, seed)
    items += _terrain_items(assets, base)
    catalog = write_catalog(root / "stac", items)
    return StacWorld(root=root, catalog=catalog, assets=assets, asset_base=base)


def write_catalog(stac: Path, items: list[dict[str, Any]], item_assets: bool = False) -> Path:
    """A static STAC catalog (best-practice layout) of ``items`` under ``stac``; with
    ``item_assets`` each collection describes its assets (the first item's, without hrefs)."""
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_collection.setdefault(item["collection"], []).append(item)
    catalog: dict[str, Any] = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "floodxr-loopback",
        "description": "floodxr's test world: Sen1Floods11 chips and synthetic scenes",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}],
    }
    for collection_id, members in sorted(by_collection.items()):
        collection: dict[str, Any] = _collection(collection_id, members)
        if item_assets:
            collection["item_assets"] = {
                key: {k: v for k, v in asset.items() if k != "href"}
                for key, asset in members[0]["assets"].items()
            }
        collection["links"] = [
            {"rel": "root", "href": "../catalog.json"},
            {"rel": "parent", "href": "../catalog.json"},
        ]
        for item in members:
            item["links"] = [
                {"rel": "root", "href": "../../catalog.json"},
                {"rel": "parent", "href": "../collection.json"},
                {"rel": "collection", "href": "../collection.json"},
            ]
            path = stac / collection_id / item["id"] / f"{item['id']}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(item, indent=1))
            collection["links"].append(
                {
                    "rel": "item",
                    "href": f"./{item['id']}/{item['id']}.json",
                    "type": "application/geo+json",
                }
            )
        (stac / collection_id).mkdir(parents=True, exist_ok=True)
        (stac / collection_id / "collection.json").write_text(json.dumps(collection, indent=1))
        catalog["links"].append(
            {
                "rel": "child",
                "href": f"./{collection_id}/collection.json",
                "type": "application/json",
            }
        )
    (stac / "catalog.json").write_text(json.dumps(catalog, indent=1))
    return stac / "catalog.json"


def iter_items(world: StacWorld) -> Iterator[dict[str, Any]]:
    """Every item JSON of ``world``, in collection then id order.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> world = write_stac_world(tempfile.mkdtemp(), data_dir=SAMPLE_DIR)
    >>> sorted({item["collection"] for item in iter_items(world)})
    ['cop-dem-glo-30', 'esa-worldcover', 'jrc-gsw', 'sen1floods11-s1', 'sen1floods11-s2',
     'sentinel-1-rtc', 'sentinel-2-l2a']
    """
    for path in sorted((world.catalog.parent).glob("*/*/*.json")):
        yield json.loads(path.read_text())
