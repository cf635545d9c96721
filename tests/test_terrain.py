"""Terrain and permanent-water masks from layers served by the loopback STAC API.

The synthetic world's DEM (``cop-dem-glo-30``) is :func:`synthetic_elevation`: a valley along
the river with 2 % sides, a flat basin under the lake and a 65 degree cliff; its surface-water
occurrence (``jrc-gsw``) is 100 % where the first pass saw water.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from test_stac import pc_catalog

from floodxr import terrain
from floodxr.data import stac
from floodxr.data.load import load_layer
from floodxr.data.synthetic import paired_scene
from floodxr.errors import InvalidGridError, InvalidOptionError
from floodxr.testing.stac import CLIFF_LON, SYNTHETIC_BBOX, synthetic_elevation, synthetic_water


@pytest.fixture(scope="module")
def scene(loopback):
    """The second (flooded) descending pass, its DEM and occurrence on its grid, and truth."""
    catalog = pc_catalog(loopback.url)
    found = stac.search_s1(SYNTHETIC_BBOX, "2019-09-25", catalog=catalog)
    s1 = stac.load_s1(found, mosaic=True).isel(time=0)
    dem = load_layer("cop-dem-glo-30", like=s1, catalog=catalog).compute()
    occurrence = load_layer("jrc-gsw", like=s1, catalog=catalog, resampling="nearest").compute()
    x, y = np.meshgrid(s1.x.values, s1.y.values)
    lon, lat = Transformer.from_crs(s1.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return {
        "s1": s1,
        "orbit": str(s1["sat:orbit_state"].values),
        "dem": dem,
        "occurrence": occurrence,
        "lon": lon,
        "lat": lat,
    }


def test_the_dem_arrives_on_the_scene_grid_with_its_heights(scene):
    dem, lon, lat = scene["dem"], scene["lon"], scene["lat"]
    assert dem.shape == scene["s1"].shape[1:] and dem.rio.crs == scene["s1"].rio.crs
    west, south, east, north = SYNTHETIC_BBOX  # the DEM's own extent; NaN beyond it
    inside = (
        (lon > west + 0.001) & (lon < east - 0.001) & (lat > south + 0.001) & (lat < north - 0.001)
    )
    assert np.isfinite(dem.values[inside]).all() and np.isnan(dem.values[lon < west - 0.001]).all()
    away = inside & ((lon < CLIFF_LON[0] - 0.002) | (lon > CLIFF_LON[1] + 0.002))
    error = np.abs(dem.values - synthetic_elevation(lon, lat))[away]
    assert np.median(error) < 0.5 and np.percentile(error, 99) < 3.0


def test_the_cliff_is_shadow_and_the_high_valley_sides_are_excluded(scene):
    dem, lon, lat = scene["dem"], scene["lon"], scene["lat"]
    assert scene["orbit"] == "descending"  # looking west: the cliff rising east is in shadow
    flags = terrain.shadow_layover(dem, orbit_state=scene["orbit"])
    cliff = (lon > CLIFF_LON[0] + 0.0005) & (lon < CLIFF_LON[1] - 0.0005)
    assert (flags.values[cliff] == 1).mean() > 0.95
    assert (flags.values[lon < CLIFF_LON[0] - 0.002] == 0).mean() > 0.99
    ascending = terrain.shadow_layover(dem, orbit_state="ascending")
    assert (ascending.values[cliff] == 2).mean() > 0.95  # looking east: layover
    excluded = dem.flood.exclusion(orbit_state=scene["orbit"]).values
    water = synthetic_water(lon, lat, 1) == 1
    known = np.isfinite(dem.values)  # the DEM ends at the world's box: unknown terrain beyond
    assert excluded[~known].all()  # a map says nothing where the terrain is unknown
    assert excluded[water & known].mean() < 0.01  # the river and the flooded lake stay mappable
    # valley sides 30 m above the river, away from the DEM's edges (HAND needs the whole
    # catchment) and from the streams that run off the plateau above the cliff
    inner = (lat > 39.012) & (lat < 39.068) & (lon > -0.05) & (lon < 0.02)
    high = inner & (synthetic_elevation(lon, lat) - 20.0 > 30.0)
    assert high.sum() > 10_000 and excluded[high].mean() > 0.98


def test_excluded_pixels_become_nodata_and_water_splits_into_permanent_and_flood(scene):
    s1, lon, lat = scene["s1"], scene["lon"], scene["lat"]
    water = s1.flood.segment(output="mask").compute()
    excluded = scene["dem"].flood.exclusion(orbit_state=scene["orbit"])
    kept = water.flood.exclude(excluded)
    assert (kept.values[excluded.values] == 255).all()
    np.testing.assert_array_equal(kept.values[~excluded.values], water.values[~excluded.values])
    classes = kept.flood.split_water(occurrence=scene["occurrence"])
    truth_now, truth_before = synthetic_water(lon, lat, 1) == 1, synthetic_water(lon, lat, 0) == 1
    for code, truth in (
        (terrain.PERMANENT, truth_before),
        (terrain.FLOOD, truth_now & ~truth_before),
    ):
        found = classes.values == code
        assert (found & truth).sum() / (found | truth).sum() > 0.8, code
    before = xr_mask(truth_before, water)
    same = kept.flood.split_water(permanent=before)
    assert ((same.values == terrain.FLOOD) == (classes.values == terrain.FLOOD)).mean() > 0.99


def xr_mask(values, like):
    return like.copy(data=values.astype("uint8"))


def test_terrain_needs_a_projected_dem_and_one_grid(scene):
    with pytest.raises(InvalidOptionError, match="projected grid"):
        terrain.hand(scene["dem"].rio.reproject("EPSG:4326"))
    with pytest.raises(InvalidOptionError, match="'ascending' or 'descending'"):
        terrain.shadow_layover(scene["dem"], orbit_state="left")
    mask = scene["s1"].flood.otsu()
    # a layer is laid on the map by its coordinates: a corner of it excludes the rest (unknown)
    part = mask.flood.exclude(scene["dem"][100:110, 200:210] < -1000).values
    assert (part[100:110, 200:210] == mask.values[100:110, 200:210]).all()
    assert (part[:100] == 255).all() and (part[110:] == 255).all() and (part[:, :200] == 255).all()
    far = scene["dem"].assign_coords(x=scene["dem"].x + 100_000.0)  # 100 km east: no overlap
    with pytest.raises(InvalidGridError, match="does not overlap the map"):
        mask.flood.exclude(far > 0)
    with pytest.raises(InvalidGridError, match="reproject_match"):
        mask.flood.exclude(scene["dem"].rio.reproject("EPSG:3857") > 0)
    with pytest.raises(InvalidOptionError, match="permanent= .* or occurrence="):
        scene["s1"].flood.otsu().flood.split_water()


def test_the_exclusion_mask_removes_shadow_false_positives_of_the_synthetic_world():
    """benchmarks/terrain_exclusion.py measures it on 12 scenes; three hilly ones here."""
    before = after = water_px = water_lost = 0
    for seed in (5000, 5004, 5009):
        scene = paired_scene((192, 192), seed=seed)
        assert scene.attrs["hilly"]
        s1 = scene.image.sel(band=["vv", "vh"]).assign_attrs(units="dB")
        found = s1.flood.segment(model="student").values >= 0.5
        water = scene.water.values == 1
        excluded = scene.dem.flood.exclusion(
            orbit_state=scene.attrs["orbit_state"],
            incidence_deg=scene.attrs["incidence_deg"],
            hand_max_m=None,
        ).values
        false = found & scene.radar_shadow.values & ~water
        before, after = before + false.sum(), after + (false & ~excluded).sum()
        water_px, water_lost = water_px + water.sum(), water_lost + (water & excluded).sum()
    assert before > 500 and after < 0.35 * before
    # its cost: water the mask hides, here mostly a river on a hillside whose DEM is not flat
    assert water_lost < 0.12 * water_px
