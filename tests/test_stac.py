"""STAC search, loading and pairing against a real STAC API server on 127.0.0.1 (see conftest).

The server (stac-fastapi-static under uvicorn) serves COGs of the real Sen1Floods11 chips and
synthetic Planetary-Computer-like scenes in two UTM zones; pystac-client, stackstac and GDAL talk
real HTTP to it. Faults come from tests/fault_proxy.py, a proxy that fails or stalls on purpose.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
from fault_proxy import FaultProxy
from pyproj import Transformer

import floodxr
from floodxr.data import pairing, stac
from floodxr.data import sen1floods11 as s11
from floodxr.data.item_grid import epsg_of
from floodxr.errors import (
    AssetReadError,
    InvalidOptionError,
    MissingAssetError,
    NoItemsError,
    StacApiError,
    UnitsError,
    UnpairedScenesWarning,
)
from floodxr.testing.stac import DECOYS, SYNTHETIC_BBOX, free_port, synthetic_water

STORED = Path(__file__).parent / "data" / "stac"
PASSES = "2019-09-01/2019-09-30"  # both synthetic passes
S1_CHIPS = [
    "Ghana_83483",
    "Ghana_97059",
    "India_900498",
    "Mekong_333434",
    "Nigeria_812045",
    "Paraguay_34417",
    "Spain_6860600",
    "Spain_7370579",
    "Sri-Lanka_534068",
]


def chip_catalog(url: str) -> stac.Catalog:
    """The loopback server's chip collections, described as a user describes any STAC API."""
    return stac.Catalog(
        name="loopback",
        url=url,
        s1=stac.Collection("sen1floods11-s1", {"vv": "vv", "vh": "vh"}, units="dB"),
        s2=stac.Collection(
            "sen1floods11-s2",
            {b: b for b in ("B02", "B03", "B04", "B08")},
            units="reflectance",
            nodata=0,
        ),
    )


def pc_catalog(url: str) -> stac.Catalog:
    return stac.get_catalog("planetary-computer").with_url(url)


def lonlat_bbox(da):
    return tuple(da.rio.transform_bounds("EPSG:4326"))


def truth_on(cube, date_index: int) -> np.ndarray:
    to_geo = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    x, y = np.meshgrid(cube.x.values, cube.y.values)
    lon, lat = to_geo.transform(x, y)
    return synthetic_water(lon, lat, date_index)


def dark_land_on(cube) -> np.ndarray:
    """Where the world puts land as dark as water (the sand, the cliff's shadow), with a
    pixel's margin: single-date radar cannot tell it from water (the exclusion layer's job)."""
    from floodxr.testing.stac import CLIFF_LON, PATCHES

    to_geo = Transformer.from_crs(cube.rio.crs, "EPSG:4326", always_xy=True)
    x, y = np.meshgrid(cube.x.values, cube.y.values)
    lon, lat = to_geo.transform(x, y)
    west, south, east, north = PATCHES[60]
    margin = 3e-4
    sand = (lon > west - margin) & (lon < east + margin) & (lat > south - margin)
    sand &= lat < north + margin
    return sand | ((lon > CLIFF_LON[0] - margin) & (lon < CLIFF_LON[1] + margin))


# ----------------------------------------------------------------------------- real chips


@pytest.mark.parametrize("chip", S1_CHIPS)
def test_search_load_segment_equals_the_chip(loopback, shared_data, chip):
    """search → load → .flood.segment → IoU equals the IoU computed from the GeoTIFF chip."""
    opened = s11.open_chip(shared_data, chip)
    s1, label = opened.s1, opened.label
    event = s11.event_of(chip, s11.read_events(shared_data / "Sen1Floods11_Metadata.geojson"))
    day = event["s1_date"].replace("/", "-")
    items = stac.search_s1(lonlat_bbox(s1), f"{day}/{day}", catalog=chip_catalog(loopback.url))
    assert f"{chip}_S1" in [i.id for i in items]
    cube = stac.load_s1(
        items, bounds=s1.rio.bounds(), crs=4326, resolution=s1.rio.resolution()[0], mosaic=True
    )
    assert cube.sizes["time"] == 1
    scene = cube.isel(time=0)
    np.testing.assert_array_equal(scene.values, s1.values)  # the same pixels
    floodxr.testing.assert_geo_equal(scene, s1)  # on the same grid
    via_stac = floodxr.metrics.confusion(scene.flood.segment(model="otsu", output="mask"), label)
    direct = floodxr.metrics.confusion(s1.flood.segment(model="otsu", output="mask"), label)
    assert via_stac == direct


def test_student_on_a_stac_cube_finds_the_synthetic_water(loopback, tiny_student):
    """Two frames per pass in zones 30 and 31, mosaicked onto one grid, segmented by a network."""
    items = stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=pc_catalog(loopback.url))
    assert len(items) == 4 and {epsg_of(i) for i in items} == {32630, 32631}
    cube = stac.load_s1(items, mosaic=True, chunks=512)
    assert cube.sizes["time"] == 2 and str(cube.rio.crs) == "EPSG:32631"  # the zone of 0.0° E
    assert cube.attrs["units"] == "dB" and cube.chunks[-1][0] == 512
    probability = cube.flood.segment(model=tiny_student, tile=256, halo=32)
    for t in range(2):
        truth = truth_on(cube, t)
        scene = probability.isel(time=t)
        valid = np.isfinite(scene.values)
        assert valid.mean() > 0.6  # both frames landed, the rest is outside the footprints
        judged = valid & ~dark_land_on(cube)
        iou = floodxr.metrics.iou(scene.where(judged), cube.isel(time=0, band=0).copy(data=truth))
        assert iou > 0.85, (t, iou)


def test_mosaic_merges_the_frames_of_a_pass_only(loopback):
    items = stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=pc_catalog(loopback.url))
    separate = stac.load_s1(items, chunks=512)
    merged = stac.load_s1(items, chunks=512, mosaic=True)
    assert separate.sizes["time"] == 4 and merged.sizes["time"] == 2
    a, b = separate.isel(time=0).values, separate.isel(time=1).values
    expected = np.where(np.isnan(a), b, a)  # first valid pixel, in time order
    np.testing.assert_array_equal(merged.isel(time=0).values, expected)
    assert "+" in str(merged["id"].values[0])


def test_orbit_filter_and_max_items(loopback):
    cat = pc_catalog(loopback.url)
    assert len(stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=cat, orbit="descending")) == 4
    assert len(stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=cat, orbit=110, max_items=3)) == 3
    with pytest.raises(NoItemsError, match="sat:orbit_state = ascending"):
        stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=cat, orbit="ascending")


# ----------------------------------------------------------------------------- pairing


def test_pairing_finds_each_chips_partner_and_nothing_else(loopback, shared_data):
    cat = chip_catalog(loopback.url)
    india = s11.open_chip(shared_data, "India_900498").s1
    items = stac.search_s1(lonlat_bbox(india), "2016-08-01/2016-08-31", catalog=cat)
    window = dt.timedelta(hours=36)
    pairs = pairing.pair_s2(items, window=window)
    assert [(p.s1.id, [s.id for s in p.s2]) for p in pairs.pairs] == [
        ("India_900498_S1", ["India_900498_S2"])
    ]
    # the decoys: one in the window but cloudy, one clear but outside the window
    assert DECOYS["India_900498_S2_cloudy"][0] <= window < DECOYS["India_900498_S2_late"][0]
    spain = s11.open_chip(shared_data, "Spain_7370579").s1
    items = stac.search_s1(lonlat_bbox(spain), "2019-09-17/2019-09-17", catalog=cat)
    pairs = pairing.pair_s2(items, window=window)
    assert [(p.s1.id, [s.id for s in p.s2]) for p in pairs.pairs] == [
        ("Spain_7370579_S1", ["Spain_7370579_S2"])
    ]


def test_scenes_without_partner_are_reported(loopback, shared_data):
    """Within the paper's 12 h no chip has a partner (their S2 is 19.5 h / 28.5 h away)."""
    cat = chip_catalog(loopback.url)
    spain = s11.open_chip(shared_data, "Spain_7370579").s1
    items = stac.search_s1(lonlat_bbox(spain), "2019-09-17/2019-09-17", catalog=cat)
    with pytest.warns(UnpairedScenesWarning, match="Spain_7370579_S1"):
        pairs = pairing.pair_s2(items)
    assert len(pairs) == 0 and [i.id for i in pairs.unpaired] == ["Spain_7370579_S1"]
    with pytest.raises(NoItemsError, match="unpaired"):
        pairing.load_pair(pairs)


def test_load_pair_puts_s2_on_exactly_the_s1_grid(loopback, shared_data):
    chip = s11.open_chip(shared_data, "India_900498")
    items = stac.search_s1(
        lonlat_bbox(chip.s1), "2016-08-12/2016-08-12", catalog=chip_catalog(loopback.url)
    )
    pairs = pairing.pair_s2(items, window=dt.timedelta(hours=36))
    cube = pairing.load_pair(pairs)
    assert list(cube.band.values) == ["vv", "vh", "B02", "B03", "B04", "B08"]
    floodxr.testing.assert_geo_equal(cube.isel(time=0), chip.s1)
    values = cube.isel(time=0).values
    np.testing.assert_array_equal(values[:2], chip.s1.values)
    np.testing.assert_array_equal(values[2:], chip.s2.sel(band=["B02", "B03", "B04", "B08"]))
    assert str(cube["s2_id"].values[0]) == "India_900498_S2"
    assert cube["s2_time"].values[0] < cube["time"].values[0]


def test_pairing_on_the_synthetic_passes_with_the_papers_defaults(loopback):
    """Pass 1 has a 4 % cloudy S2 4.5 h later; pass 2's S2 has 35 % cloud: unpaired."""
    items = stac.search_s1(SYNTHETIC_BBOX, PASSES, catalog=pc_catalog(loopback.url))
    with pytest.warns(UnpairedScenesWarning, match="2 of 4"):
        pairs = pairing.pair_s2(items)
    assert len(pairs) == 2 and all(p.s1.datetime.day == 13 for p in pairs.pairs)
    cube = pairing.load_pair(pairs, chunks=512)
    assert str(cube.rio.crs) == "EPSG:32631"
    truth = truth_on(cube, 0)
    nir = cube.isel(time=0).sel(band="B08").values
    # the +1000 of processing baseline 04.00 is removed: water ~300, land ~3000 (x 1e-4)
    assert abs(np.nanmedian(nir[truth == 1]) - 300) < 30
    assert abs(np.nanmedian(nir[truth == 0]) - 3000) < 300


# ----------------------------------------------------------------------------- faults


def test_transient_500s_are_retried(loopback):
    with FaultProxy(loopback.url, fail=2) as proxy, floodxr.set_options(http_backoff=0.05):
        items = stac.search_s1(
            SYNTHETIC_BBOX, "2019-09-01/2019-09-30", catalog=pc_catalog(proxy.url)
        )
    assert len(items) == 4 and len(proxy.seen) >= 3


def test_a_server_that_keeps_failing_raises_a_named_error(loopback):
    with (
        FaultProxy(loopback.url, fail=-1) as proxy,
        floodxr.set_options(http_backoff=0.05, http_retries=2),
    ):
        with pytest.raises(StacApiError, match=f"{proxy.url}.*500.*http_retries"):
            stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=pc_catalog(proxy.url))
    assert len(proxy.seen) == 3  # the first try and two retries


def test_a_stalling_server_times_out(loopback):
    with (
        FaultProxy(loopback.url, stall=5) as proxy,
        floodxr.set_options(http_timeout=0.5, http_retries=1, http_backoff=0.05),
    ):
        began = time.monotonic()
        with pytest.raises(StacApiError, match="no answer within 0.5 s"):
            stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=pc_catalog(proxy.url))
        assert time.monotonic() - began < 4


def test_an_unreachable_api_raises_a_named_error():
    url = f"http://127.0.0.1:{free_port()}"
    with floodxr.set_options(http_retries=1, http_backoff=0.05):
        with pytest.raises(StacApiError, match=f"{url}.*cannot connect"):
            stac.search_s1(SYNTHETIC_BBOX, "2019-09", catalog=pc_catalog(url))


def test_asset_reads_retry_500s_and_time_out_on_stalls(loopback):
    with (
        FaultProxy(loopback.url, fail=2, prefix="/assets") as proxy,
        floodxr.set_options(http_backoff=0.05),
    ):
        items = stac.search_s1(SYNTHETIC_BBOX, "2019-09-13", catalog=pc_catalog(proxy.url))
        assert all(proxy.url in a.href for i in items for a in i.assets.values())
        values = stac.load_s1(items, bands=["vv"]).values
    assert np.isfinite(values).mean() > 0.3 and len(proxy.seen) > 2
    with (
        FaultProxy(loopback.url, stall=30, prefix="/assets") as proxy,
        floodxr.set_options(http_timeout=1, http_retries=0),
    ):
        items = stac.search_s1(SYNTHETIC_BBOX, "2019-09-13", catalog=pc_catalog(proxy.url))
        began = time.monotonic()
        with pytest.raises(AssetReadError, match="/assets/sentinel-1-rtc.*timed out.*drop its"):
            stac.load_s1(items, bands=["vv"]).values  # noqa: B018 - computing is the test
        assert time.monotonic() - began < 20


def test_no_result_names_the_query(loopback):
    with pytest.raises(NoItemsError, match=r"sentinel-1-rtc.*1999-01-01.*widen"):
        stac.search_s1(SYNTHETIC_BBOX, "1999-01-01/1999-01-31", catalog=pc_catalog(loopback.url))


def test_missing_asset_names_item_and_asset(loopback):
    items = stac.search_s1(SYNTHETIC_BBOX, "2019-09-13", catalog=pc_catalog(loopback.url))
    del items.items[0].assets["vh"]
    with pytest.raises(MissingAssetError, match=rf"{items.items[0].id}.*\['vh'\].*bands=\('vv',\)"):
        stac.load_s1(items)
    assert stac.load_s1(items, bands=["vv"]).sizes["band"] == 1


def test_bad_arguments_are_named():
    with pytest.raises(InvalidOptionError, match="unknown catalog 'nasa'"):
        stac.search_s1(SYNTHETIC_BBOX, "2019", catalog="nasa")
    with pytest.raises(InvalidOptionError, match="bbox"):
        stac.search_s1(None, "2019")
    with pytest.raises(InvalidOptionError, match="orbit"):
        stac.search_s1(SYNTHETIC_BBOX, "2019", orbit="sideways")


# ----------------------------------------------------------------------------- providers


def stored(name: str) -> list[pystac.Item]:
    return [pystac.Item.from_dict(json.loads((STORED / f"{name}.json").read_text()))]


def test_planetary_computer_items_load_as_db_on_their_utm_grid(no_compute):
    cube = stac.load_s1(stored("planetary-computer_sentinel-1-rtc"), chunks=4096)
    assert cube.dims == ("time", "band", "y", "x") and list(cube.band.values) == ["vv", "vh"]
    assert str(cube.rio.crs) == "EPSG:32630" and cube.shape[-2:] == (21998, 26306)
    assert cube.rio.transform().c == 467410.0 and cube.attrs["units"] == "dB"
    s2 = stac.load_s2(stored("planetary-computer_sentinel-2-l2a"), like=cube.isel(time=0))
    floodxr.testing.assert_geo_equal(s2.isel(time=0), cube.isel(time=0))


@pytest.mark.parametrize("provider", ["earth-search", "copernicus"])
def test_other_providers_s2_items_are_recognised(provider, no_compute):
    """Earth Search calls the bands blue/green/red/nir, CDSE B02_10m...; both use proj:code or
    proj:epsg. The profile is found from the collection id and the asset keys."""
    cube = stac.load_s2(stored(f"{provider}_sentinel-2-l2a"), bbox=(-0.3, 39.0, -0.2, 39.1))
    assert list(cube.band.values) == ["B02", "B03", "B04", "B08"]
    assert str(cube.rio.crs) == "EPSG:32630" and cube.rio.resolution() == (10.0, -10.0)
    assert cube.rio.transform().c % 10 == 0  # on the tile's own 10 m grid


@pytest.mark.parametrize("provider", ["earth-search", "copernicus"])
def test_uncalibrated_grd_is_refused_with_the_fix(provider):
    with pytest.raises(UnitsError, match="planetary-computer"):
        stac.load_s1(stored(f"{provider}_sentinel-1-grd"))


def test_proj_code_and_proj_epsg_items_give_the_same_cube(no_compute):
    item = stored("planetary-computer_sentinel-1-rtc")[0]
    as_code = item.clone()
    as_code.properties.pop("proj:epsg", None)
    as_code.properties["proj:code"] = "EPSG:32630"
    a, b = stac.load_s1([item]), stac.load_s1([as_code])
    floodxr.testing.assert_geo_equal(a, b)


def test_raster_bands_scaling_gives_the_same_reflectance(loopback):
    """Earth Search style (raster:bands scale 1e-4, offset -0.1) and Planetary Computer style
    (digital numbers + processing baseline) descriptions of the same files agree."""
    items = stac.search_s2(SYNTHETIC_BBOX, "2019-09-13", catalog=pc_catalog(loopback.url))
    as_pc = stac.load_s2(items, chunks=512).values
    for item in items:
        for asset in item.assets.values():
            asset.extra_fields["raster:bands"] = [{"scale": 0.0001, "offset": -0.1}]
    earth_search_like = stac.Collection(
        "sentinel-2-l2a",
        {b: b for b in ("B02", "B03", "B04", "B08")},
        units="reflectance",
        nodata=0,
        rescale=True,
        scale=10_000,
    )
    as_es = stac.load_s2(items, chunks=512, collection=earth_search_like).values
    np.testing.assert_allclose(as_es, as_pc, atol=0.01)
    assert np.isfinite(as_pc).mean() > 0.9
