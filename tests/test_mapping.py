"""floodxr map: one command from a bounding box to COGs, polygons, pictures and areas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from pyproj import Transformer

from floodxr.errors import InvalidOptionError
from floodxr.testing.stac import synthetic_water

FLOODXR = str(Path(sys.executable).with_name("floodxr"))
BOX = ["-0.05", "39.02", "-0.02", "39.04"]
BOX_FLOATS = tuple(float(v) for v in BOX)
HILLS = (0.02, 39.03, 0.056, 39.05)  # the sand, the cliff and high valley sides


def map_hills(loopback, out, **options):
    """``floodxr map`` of :data:`HILLS` on the flooded pass, quietly, with ``options``."""
    from floodxr.mapping import map_floods

    return map_floods(HILLS, "2019-09-25", catalog=loopback.url, out=out, progress=False, **options)


def truth_on(path: Path, date_index: int) -> np.ndarray:
    with rasterio.open(path) as src:
        rows, cols = np.mgrid[0 : src.height, 0 : src.width] + 0.5
        x, y = src.transform * (cols, rows)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return synthetic_water(lon, lat, date_index)


@pytest.fixture(scope="module")
def mapped(valencia_map):
    return valencia_map


def test_every_pass_gets_its_maps_polygons_picture_and_a_row(mapped):
    out, done = mapped
    areas = pd.read_csv(out / "areas.csv")
    assert len(areas) == 2 and "water_km2" in done.stdout  # the pass, and the composite
    assert areas.id[1] == "composite of 1 passes (flood)"
    assert areas.flood_km2[1] == pytest.approx(areas.flood_km2[0], rel=1e-9)
    areas = areas.iloc[:1]
    stamp = pd.Timestamp(areas.time[0]).strftime("%Y%m%dT%H%M%S")
    for name in (
        "probability.tif",
        "likelihood.tif",
        "exclusion.tif",
        "water.tif",
        "flood.tif",
        "advisory.tif",
        "polygons.parquet",
        "water_polygons.parquet",
        "footprint.parquet",
        "overlay.png",
    ):
        assert (out / f"{stamp}_{name}").is_file(), name
    assert (out / "reference_water.tif").is_file()
    with rasterio.open(out / f"{stamp}_water.tif") as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and src.nodata == 255
        water = src.read(1)
    truth = truth_on(out / f"{stamp}_water.tif", 1)
    seen = water != 255
    iou = ((water == 1) & truth & seen).sum() / (((water == 1) | truth) & seen).sum()
    assert iou > 0.95 and seen.mean() > 0.99
    # flood = water that the reference pass (the first date) saw dry
    with rasterio.open(out / f"{stamp}_flood.tif") as src:
        flood = src.read(1)
    before = truth_on(out / f"{stamp}_water.tif", 0)
    truth_flood = truth & ~before
    assert ((flood == 1) & truth_flood).sum() / ((flood == 1) | truth_flood).sum() > 0.8
    polygons = gpd.read_parquet(out / f"{stamp}_polygons.parquet")
    assert polygons.area_km2.sum() == pytest.approx(areas.flood_km2[0], rel=0.005)
    assert areas.flood_km2[0] < areas.water_km2[0] <= areas.observed_km2[0]
    water_polygons = gpd.read_parquet(out / f"{stamp}_water_polygons.parquet")
    assert water_polygons.area_km2.sum() == pytest.approx(areas.water_km2[0], rel=0.005)
    footprint = gpd.read_parquet(out / f"{stamp}_footprint.parquet")
    assert footprint.area_km2.sum() == pytest.approx(areas.observed_km2[0], rel=1e-6)
    assert footprint.geometry.area.sum() / 1e6 == pytest.approx(areas.observed_km2[0], rel=0.01)


def test_inputs_are_checked_before_any_request(tmp_path, capsys):
    from floodxr.cli import main

    closed = "http://127.0.0.1:9"  # nothing listens: a request would fail differently
    cases = [
        (["--bbox", "39.02", "-0.05", "39.04", "92.0"], "lon/lat order"),
        (["--bbox", *BOX, "--datetime", "2019-13-45"], "ISO 8601"),
        (["--bbox", *BOX, "--model", "unet"], "unknown model 'unet'"),
        (["--bbox", *BOX, "--reference", "last summer"], "last summer"),
        (["--bbox", *BOX, "--model", "otsu"], "streams chunks"),
        (["--bbox", *BOX, "--threads", "0"], "threads must be a whole number >= 1"),
        (["--bbox", *BOX, "--occurrence-min", "-5"], "occurrence_min"),
    ]
    for args, message in cases:
        full = ["--datetime", "2019-09", *args] if "--datetime" not in args else args
        # in this process: the checks are the same, without an interpreter start-up each
        status = main(["map", *full, "--catalog", closed, "--out", str(tmp_path / "out")])
        stderr = capsys.readouterr().err
        assert status == 2 and message in stderr, (args, stderr)
        assert "cannot connect" not in stderr


def test_an_earlier_map_is_never_overwritten_silently(mapped, capsys):
    from floodxr.cli import main

    out, _ = mapped
    before = (out / "areas.csv").read_bytes()
    status = main(
        ["map", "--bbox", *BOX, "--datetime", "2019-09-20/2019-09-30"]
        + ["--catalog", "http://127.0.0.1:9", "--out", str(out)]
    )
    assert status == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "areas.csv").read_bytes() == before


def test_help_explains_every_option_with_an_example():
    done = subprocess.run([FLOODXR, "map", "--help"], capture_output=True, text=True, timeout=60)
    text = " ".join(done.stdout.split())
    options = "--bbox --datetime --catalog --collection --model --reference --resolution --out"
    options += " --no-exclusion --no-reference-water --dem --landcover --occurrence --engine"
    for option in [*options.split(), "--threads", "--overwrite", "--no-progress"]:
        assert option in text
    assert "example: floodxr map --bbox" in text


def read_layer(out: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """A layer's pixels, each pixel's lon/lat, and the file's tags."""
    with rasterio.open(out / name) as src:
        rows, cols = np.mgrid[0 : src.height, 0 : src.width] + 0.5
        x, y = src.transform * (cols, rows)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(x, y)
        return src.read(1), lon, lat, src.tags()


@pytest.fixture(scope="module")
def world_map(loopback, tmp_path_factory):
    """The whole synthetic world's flooded pass mapped with the defaults: the DEM, land cover
    and water occurrence the loopback catalogue serves."""
    from floodxr.mapping import map_floods
    from floodxr.testing.stac import SYNTHETIC_BBOX

    out = tmp_path_factory.mktemp("world") / "map"
    result = map_floods(SYNTHETIC_BBOX, "2019-09-25", catalog=loopback.url, out=out, progress=False)
    return out, result, next(iter(result.files)).split("_")[0]


def test_each_exclusion_reason_lies_where_the_world_puts_it(world_map):
    from floodxr.product import FLAGS
    from floodxr.testing.stac import CLIFF_LON, PATCHES, synthetic_landcover

    out, _, stamp = world_map
    exclusion, lon, lat, tags = read_layer(out, f"{stamp}_exclusion.tif")
    assert "16 low_backscatter" in tags["floodxr_flags"]
    assert tags["floodxr_dem"] == "collection cop-dem-glo-30"
    assert tags["floodxr_landcover"].startswith("collection esa-worldcover")
    cover = synthetic_landcover(lon, lat)
    # each patch, one pixel in from its edges (the land cover is on another grid)
    for code, bit in ((60, "low_backscatter"), (50, "no_sensitivity"), (10, "no_sensitivity")):
        west, south, east, north = PATCHES[code]
        inside = (lon > west + 2e-4) & (lon < east - 2e-4) & (lat > south + 2e-4)
        inside &= lat < north - 2e-4
        assert inside.sum() > 1000 and (exclusion[inside] & FLAGS[bit]).all(), code
    near = np.zeros(lon.shape, bool)  # within a land-cover pixel of a patch
    for west, south, east, north in PATCHES.values():
        across = (lon > west - 2e-4) & (lon < east + 2e-4)
        near |= across & (lat > south - 2e-4) & (lat < north + 2e-4)
    elsewhere = np.isin(cover, (40, 80)) & ~near & ((exclusion & FLAGS["no_data"]) == 0)
    assert not (exclusion[elsewhere] & (FLAGS["no_sensitivity"] | FLAGS["low_backscatter"])).any()
    # the cliff's face (descending pass, looking west) is shadow wherever the radar saw it
    radar = (exclusion & FLAGS["no_data"]) == 0
    face = (lon > CLIFF_LON[0] + 0.001) & (lon < CLIFF_LON[1] - 0.001) & radar
    assert face.sum() > 1000 and (exclusion[face] & FLAGS["shadow"]).mean() > 0.99
    assert not (exclusion[radar & (lon < CLIFF_LON[0] - 0.003)] & FLAGS["shadow"]).any()


def test_water_flood_likelihood_and_areas_match_the_truth(world_map):
    from floodxr.grid import block_area_km2

    out, result, stamp = world_map
    water, lon, lat, _ = read_layer(out, f"{stamp}_water.tif")
    exclusion, *_ = read_layer(out, f"{stamp}_exclusion.tif")
    truth = synthetic_water(lon, lat, 1).astype(bool)
    # excluded pixels say nothing: none of the sand, the town or the cliff's shadow is water
    assert (water[exclusion != 0] == 255).all() and (water[exclusion == 0] != 255).all()
    mapped = water != 255
    assert mapped.sum() > 100_000
    iou = ((water == 1) & truth & mapped).sum() / (((water == 1) | truth) & mapped).sum()
    assert iou > 0.95
    # reference water = the occurrence (the first pass's water); flood = water outside it
    reference, *_ = read_layer(out, "reference_water.tif")
    before = synthetic_water(lon, lat, 0).astype(bool)
    known = reference != 255
    assert ((reference[known] == 1) == before[known]).mean() > 0.99
    flood, *_ = read_layer(out, f"{stamp}_flood.tif")
    assert (flood[(water == 1) & (reference == 1)] == 0).all()
    assert (flood[(water == 1) & (reference == 0)] == 1).all()
    assert (flood[(water == 255) | (reference == 255)] == 255).all()
    # likelihood is the probability in percent
    likelihood, *_ = read_layer(out, f"{stamp}_likelihood.tif")
    probability, *_ = read_layer(out, f"{stamp}_probability.tif")
    valid = np.isfinite(probability)
    assert (likelihood[valid] == np.rint(probability[valid] * 100)).all()
    assert (likelihood[~valid] == 255).all()
    # the area table measures these very pixels
    with rasterio.open(out / f"{stamp}_water.tif") as src:
        rows, cols = range(src.height), range(src.width)
        area = np.broadcast_to(block_area_km2(src.crs, src.transform, rows, cols), water.shape)
    row = result.areas.iloc[0]
    assert row.water_km2 == pytest.approx(area[water == 1].sum(), rel=1e-9)
    assert row.flood_km2 == pytest.approx(area[flood == 1].sum(), rel=1e-9)
    assert row.observed_km2 == pytest.approx(area[valid].sum(), rel=1e-9)
    assert row.excluded_km2 == pytest.approx(area[valid & (exclusion != 0)].sum(), rel=1e-9)
    # the two frames leave two corners of the box unseen; the contrast is strong
    assert row.partial_coverage and not row.weak_contrast and not row.rough_water
    advisory, *_ = read_layer(out, f"{stamp}_advisory.tif")
    assert (advisory[water != 255] == 4).all() and (advisory[water == 255] == 255).all()


def test_exclusion_and_reference_water_can_be_turned_off(world_map, loopback, tmp_path):
    from floodxr.mapping import map_floods

    out, result, stamp = world_map
    plain = map_floods(
        BOX_FLOATS,
        "2019-09-25",
        catalog=loopback.url,
        out=tmp_path / "plain",
        progress=False,
        exclusion=False,
        reference_water=False,
        engine="onnx-int8",
        threads=1,
    )
    names = sorted(p.name.split("_", 1)[1] for p in next(iter(plain.files.values())))
    assert "flood.tif" not in names and "exclusion.tif" in names
    exclusion, *_ = read_layer(tmp_path / "plain", f"{stamp}_exclusion.tif")
    assert set(np.unique(exclusion)) <= {0, 32}  # only where the radar has no data
    assert plain.areas.excluded_km2[0] == 0 and np.isnan(plain.areas.flood_km2[0])
    assert not (tmp_path / "plain" / "reference_water.tif").exists()
    _, _, _, tags = read_layer(tmp_path / "plain", f"{stamp}_water.tif")
    assert tags["floodxr_dem"] == "none" and "floodxr_reference_water" not in tags


def test_the_event_composite_is_a_plain_reduction_of_the_passes(loopback, tmp_path):
    from floodxr.mapping import map_floods

    out = tmp_path / "event"
    result = map_floods(
        BOX_FLOATS, "2019-09-01/2019-09-30", catalog=loopback.url, out=out, progress=False
    )
    stamps = sorted(k for k in result.files if k != "composite")
    assert len(stamps) == 2
    flood = np.stack([read_layer(out, f"{s}_flood.tif")[0] for s in stamps])
    dates = np.array([int(s[:8]) for s in stamps])
    flooded, seen = flood == 1, flood != 255
    got = {
        name: read_layer(out, f"composite_{name}.tif")[0]
        for name in (
            "max_flood",
            "flooded_passes",
            "observed_passes",
            "first_flooded",
            "last_flooded",
        )
    }
    expect_max = np.full(flood.shape[1:], 255)
    expect_max[seen.any(0)] = flooded.any(0)[seen.any(0)]
    assert (got["max_flood"] == expect_max).all()
    assert (got["flooded_passes"] == flooded.sum(0)).all()
    assert (got["observed_passes"] == seen.sum(0)).all()
    first = np.zeros(flood.shape[1:], int)
    last = np.zeros(flood.shape[1:], int)
    for i in reversed(range(len(stamps))):  # the earliest date flooded wins
        first[flooded[i]] = dates[i]
    for i in range(len(stamps)):  # the latest wins
        last[flooded[i]] = dates[i]
    assert (got["first_flooded"] == first).all() and (got["last_flooded"] == last).all()
    assert flooded.any(0).sum() > flooded[0].sum()  # the lake grew: the composite gained
    row = result.areas.iloc[-1]
    assert row.id.startswith("composite of 2 passes") and pd.isna(row.time)
    polygons = gpd.read_parquet(out / "composite_polygons.parquet")
    assert polygons.area_km2.sum() == pytest.approx(row.flood_km2, rel=0.005)


def test_a_map_shows_on_an_interactive_web_map(world_map):
    import re

    out, result, stamp = world_map
    polygons = gpd.read_parquet(out / f"{stamp}_polygons.parquet")
    page = result.explore(tiles=None).get_root().render()
    # every flood polygon is a feature of the GeoJSON layer, the likelihood an image overlay
    assert page.count('"type": "Feature"') == len(polygons) > 0
    assert len(re.findall(r"L\.imageOverlay\(", page)) == 1
    assert "openstreetmap" not in page.lower()  # no tile server when tiles=None
    event = result.explore("composite", tiles=None).get_root().render()
    assert event.count('"type": "Feature"') == len(
        gpd.read_parquet(out / "composite_polygons.parquet")
    )
    with pytest.raises(InvalidOptionError, match="no pass '2001'"):
        result.explore("2001")


def test_layers_can_come_from_local_files_and_unknown_ones_are_named(world_map, loopback, tmp_path):
    _, _, stamp = world_map
    # the catalogue's own DEM and land cover, as local files: the same exclusion
    assets = loopback.world.assets
    local = map_hills(
        loopback,
        tmp_path / "local",
        dem=assets / "cop-dem-glo-30" / "cop-dem-glo-30-synthetic.tif",
        landcover=str(assets / "esa-worldcover" / "esa-worldcover-synthetic.tif"),
        reference_water=False,
    )
    served = map_hills(
        loopback,
        tmp_path / "served",
        reference_water=False,
    )
    exclusion, _, _, tags = read_layer(tmp_path / "local", f"{stamp}_exclusion.tif")
    assert tags["floodxr_dem"].startswith("file ") and tags["floodxr_occurrence"] == "none"
    catalogue, *_ = read_layer(tmp_path / "served", f"{stamp}_exclusion.tif")
    share = float(np.count_nonzero(exclusion)) / exclusion.size
    assert share > 0.05, share
    assert (exclusion == catalogue).mean() > 0.99
    assert local.areas.excluded_km2[0] == pytest.approx(served.areas.excluded_km2[0], rel=0.01)
    assert local.areas.excluded_km2[0] > 0
    with pytest.raises(InvalidOptionError, match=r"offers no collection 'no-such-dem'.*jrc-gsw"):
        map_hills(loopback, tmp_path / "unknown", dem="no-such-dem")


def test_a_precomputed_hand_layer_is_read_instead_of_computed(world_map, loopback, tmp_path):
    import rioxarray

    from floodxr import terrain
    from floodxr.data.load import load_layer
    from floodxr.writers import to_cog

    out, _, stamp = world_map
    computed = map_hills(
        loopback,
        tmp_path / "computed",
        reference_water=False,
        landcover=False,
    )
    # HAND of the whole world's DEM: the river, the drain, lies outside the box
    grid = rioxarray.open_rasterio(out / f"{stamp}_exclusion.tif").squeeze("band", drop=True)
    dem = load_layer("cop-dem-glo-30", like=grid, catalog=loopback.url).compute()
    path = to_cog(terrain.hand(dem), tmp_path / "hand.tif")
    read = map_hills(
        loopback,
        tmp_path / "read",
        reference_water=False,
        landcover=False,
        hand=path,
    )
    a, *_ = read_layer(tmp_path / "computed", f"{stamp}_exclusion.tif")
    b, _, _, tags = read_layer(tmp_path / "read", f"{stamp}_exclusion.tif")
    assert tags["floodxr_hand"].startswith("file ")
    high_a, high_b = (a & 4) != 0, (b & 4) != 0
    assert high_a.mean() > 0.2 and high_b.mean() > 0.2
    assert (high_a == high_b).mean() > 0.95  # 10 m HAND of the world against 30 m tiles
    assert ((a & 3) == (b & 3)).all()  # shadow and layover still from the DEM
    assert computed.areas.excluded_km2[0] == pytest.approx(read.areas.excluded_km2[0], rel=0.1)
