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

from floodxr.testing.stac import synthetic_water

FLOODXR = str(Path(sys.executable).with_name("floodxr"))
BOX = ["-0.05", "39.02", "-0.02", "39.04"]


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
    assert len(areas) == 1 and "water_km2" in done.stdout
    stamp = pd.Timestamp(areas.time[0]).strftime("%Y%m%dT%H%M%S")
    for name in ("probability.tif", "water.tif", "flood.tif", "polygons.parquet", "overlay.png"):
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


def test_inputs_are_checked_before_any_request(tmp_path, capsys):
    from floodxr.cli import main

    closed = "http://127.0.0.1:9"  # nothing listens: a request would fail differently
    cases = [
        (["--bbox", "39.02", "-0.05", "39.04", "92.0"], "lon/lat order"),
        (["--bbox", *BOX, "--datetime", "2019-13-45"], "ISO 8601"),
        (["--bbox", *BOX, "--model", "unet"], "unknown model 'unet'"),
        (["--bbox", *BOX, "--reference", "last summer"], "last summer"),
        (["--bbox", *BOX, "--model", "otsu"], "streams chunks"),
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
    for option in [*options.split(), "--overwrite", "--no-progress"]:
        assert option in text
    assert "example: floodxr map --bbox" in text
