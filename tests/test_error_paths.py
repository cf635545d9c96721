"""Error paths not covered next to their feature's tests: each names the value and the fix."""

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

import floodxr
from floodxr.data import sen1floods11 as s11
from floodxr.errors import (
    ChipNotFoundError,
    DataLayoutError,
    InvalidOptionError,
    MissingBandError,
    MissingDimensionError,
    ShapeMismatchError,
    UnknownModelError,
)
from floodxr.evaluation import evaluate_split, predict


def test_reader_errors(shared_data, tmp_path):
    with pytest.raises(ChipNotFoundError, match="no file .*absent_S1Hand.tif"):
        s11.open_s1(tmp_path / "absent_S1Hand.tif")
    with pytest.raises(DataLayoutError, match="a label has 1"):
        s11.open_label(shared_data / "S1Hand" / "India_900498_S1Hand.tif")


def test_evaluation_errors():
    scene = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).scene()
    # anything that is not a baseline is a model: a registered name or a checkpoint path
    with pytest.raises(UnknownModelError, match=r"unknown model 'unet'.*or one of the methods"):
        evaluate_split(s11.SAMPLE_DIR, method="unet")
    with pytest.raises(InvalidOptionError, match="band must be 'vv' or 'vh', got 'hh'"):
        evaluate_split(s11.SAMPLE_DIR, band="hh")
    with pytest.raises(InvalidOptionError, match="needs events=read_events"):
        predict(scene, method="event-threshold")
    with pytest.raises(UnknownModelError, match="unknown model 'unet'"):
        predict(scene, method="unet")
    with pytest.raises(InvalidOptionError, match="needs a threshold in dB"):
        evaluate_split(s11.SAMPLE_DIR, method="fixed")
    with pytest.raises(MissingBandError, match="reads bands .*B02.*has \\['vv', 'vh'\\]"):
        predict(replace(scene, image=scene.image.sel(band=["vv", "vh"])), method="teacher")


def test_area_needs_spatial_dims_and_synthetic_water_needs_shape():
    with pytest.raises(MissingDimensionError, match="'y' and 'x'"):
        floodxr.metrics.water_area_km2(xr.DataArray(np.ones(3), dims="t"))
    with pytest.raises(ShapeMismatchError, match=r"expected \(8, 8\)"):
        floodxr.testing.synthetic_scene((8, 8), water=np.zeros((4, 4)))
