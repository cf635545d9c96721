import math

import numpy as np
import pytest
import xarray as xr
from pyproj import Proj, Transformer

import floodxr
from floodxr.errors import ShapeMismatchError
from floodxr.metrics import (
    Calibration,
    Confusion,
    aggregate_iou,
    calibration,
    confusion,
    mean_iou,
    pixel_area_km2,
    water_area_km2,
)

from conftest import CHUNKINGS, chunked


def _grid(values, dtype):
    return xr.DataArray(np.array(values, dtype=dtype), dims=("y", "x"))


@pytest.mark.parametrize("chunking", [None, "whole", 1])
def test_confusion_masks_invalid_labels_and_nodata_predictions(chunking):
    pred = chunked(_grid([[1, 1, 0, 0, 255, 1]], "uint8"), chunking)
    label = chunked(_grid([[1, 0, 1, 0, 1, -1]], "int8"), chunking)
    counts = confusion(pred, label)
    assert counts == Confusion(tp=1, fp=1, fn=1, tn=1)
    assert counts.iou == pytest.approx(1 / 3)
    assert counts.precision == 0.5 and counts.recall == 0.5 and counts.f1 == 0.5
    assert counts.accuracy == 0.5


def test_confusion_of_probabilities_and_booleans():
    label = _grid([[1, 0, 1, 0]], "int8")
    probability = _grid([[0.9, 0.6, np.nan, 0.1]], "float32")
    assert confusion(probability, label) == Confusion(tp=1, fp=1, fn=0, tn=1)
    assert confusion(probability, label, threshold=0.7) == Confusion(tp=1, fp=0, fn=0, tn=2)
    assert confusion(_grid([[True, False, False, False]], bool), label) == Confusion(1, 0, 1, 2)


def test_scores_are_nan_without_water():
    counts = confusion(_grid([[0, 0]], "uint8"), _grid([[0, -1]], "int8"))
    assert counts.union == 0 and math.isnan(counts.iou) and math.isnan(counts.precision)
    assert counts.accuracy == 1.0


def test_aggregate_and_mean_iou_follow_sen1floods11():
    chips = [Confusion(tp=10, fp=10), Confusion(tp=1, fn=3), Confusion(tn=50)]
    assert aggregate_iou(chips) == pytest.approx(11 / 24)
    assert mean_iou(chips) == pytest.approx((0.5 + 0.25) / 2)
    assert math.isnan(mean_iou([Confusion(tn=3)])) and math.isnan(aggregate_iou([]))


def test_grids_must_match_exactly():
    pred = xr.DataArray(
        np.ones((2, 2), "uint8"), dims=("y", "x"), coords={"y": [0, 1], "x": [0, 1]}
    )
    shifted = pred.assign_coords(x=[0, 1 + 1e-9]).astype("int8")
    with pytest.raises(ShapeMismatchError, match="reproject_match"):
        confusion(pred, shifted)
    with pytest.raises(ShapeMismatchError):
        confusion(pred, xr.DataArray(np.ones((2, 3), "int8"), dims=("y", "x")))


def test_pixel_area_geographic_matches_spherical_estimate(shared_data):
    label = floodxr.data.sen1floods11.open_label(
        shared_data / "LabelHand" / "India_900498_LabelHand.tif"
    )
    area = pixel_area_km2(label)
    transform = label.rio.transform()
    lat = np.deg2rad(label.y.values)
    radius = 6371.0088
    spherical = radius**2 * np.deg2rad(transform.a) * np.deg2rad(-transform.e) * np.cos(lat)
    np.testing.assert_allclose(area.values[:, 0], spherical, rtol=5e-3)
    assert area.dims == ("y", "x") and area.shape == label.shape


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_water_area_of_projected_mask(scene, chunking):
    water = chunked(scene.water, chunking)
    area = water_area_km2(water)
    assert area.attrs["units"] == "km2"
    # 10 m UTM pixels, each divided by the projection's areal scale at the scene's centre
    x, y = scene.rio.transform() * (scene.sizes["x"] / 2, scene.sizes["y"] / 2)
    lon, lat = Transformer.from_crs(scene.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)
    scale = Proj(scene.rio.crs).get_factors(lon, lat).areal_scale
    assert 0.9991 < scale < 1.002  # UTM: 0.9996² on the central meridian
    assert float(area) == pytest.approx(int(scene.water.sum()) * 100 / scale / 1e6)


def test_pixel_area_needs_a_crs():
    with pytest.raises(floodxr.errors.MissingDimensionError, match="write_crs"):
        pixel_area_km2(_grid([[1]], "uint8"))


def test_calibration_counts_bins_and_pools_scenes():
    # 0.25 is water one time in four, 0.75 three times in four: calibrated, ECE 0
    probability = _grid([[0.25] * 4 + [0.75] * 4], "float32")
    label = _grid([[1, 0, 0, 0, 1, 1, 1, 0]], "int8")
    honest = calibration(probability, label)
    assert honest.count[2] == honest.count[7] == 4 and honest.ece == 0
    # saying 0.95 where half is water is off by 0.45 on those pixels
    sure = calibration(
        _grid([[0.95, 0.95, np.nan, 0.95]], "float32"), _grid([[1, 0, 1, -1]], "int8")
    )
    assert sum(sure.count) == 2 and sure.ece == pytest.approx(0.45)
    pooled = honest + sure
    assert sum(pooled.count) == 10 and pooled.ece == pytest.approx(2 * 0.45 / 10)
    assert math.isnan(Calibration().ece)
    curve = pooled.curve()
    assert curve["water_fraction"][2] == 0.25 and curve["mean_probability"][0] is None
    with pytest.raises(floodxr.errors.InvalidLabelError, match="outside \\[0, 1\\]"):
        calibration(_grid([[1.5]], "float32"), _grid([[1]], "int8"))
