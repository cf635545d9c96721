import warnings

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from skimage.filters import threshold_otsu

import floodxr
from floodxr import threshold
from floodxr.data import sen1floods11 as s11
from floodxr.errors import FloodxrWarning, InvalidOptionError, MissingBandError
from floodxr.testing import assert_geo_equal, synthetic_scene

from conftest import CHUNKINGS, chunked


def _skimage_threshold(values: np.ndarray) -> float:
    return float(threshold_otsu(values[np.isfinite(values)]))


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("band", ["vv", "vh"])
def test_otsu_threshold_equals_skimage(scene, chunking, band):
    value = threshold.otsu_threshold(chunked(scene.s1, chunking), band=band)
    assert value.dims == ()
    assert float(value) == _skimage_threshold(scene.s1.sel(band=band).values)


@pytest.mark.parametrize("chunking", [None, 100])
def test_otsu_threshold_equals_skimage_on_real_chips(shared_data, chunking):
    for chip_id in ("India_900498", "Nigeria_812045", "Mekong_333434"):
        s1 = s11.open_s1(shared_data / "S1Hand" / f"{chip_id}_S1Hand.tif", chunks=chunking)
        vh = s1.sel(band="vh").values
        assert float(threshold.otsu_threshold(s1, band="vh")) == _skimage_threshold(vh)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_otsu_mask_values_dtype_and_geo(scene, chunking):
    s1 = chunked(scene.s1, chunking).copy()
    s1 = s1.where(~((s1.x == s1.x[3]) & (s1.y == s1.y[5])))  # one NaN pixel in every band
    mask = threshold.otsu(s1, band="vh")
    assert mask.dtype == np.uint8 and mask.dims == ("y", "x") and mask.name == "water"
    assert mask.rio.nodata == threshold.NODATA
    values = mask.values
    vh = s1.sel(band="vh").values
    expected = np.where(vh < _skimage_threshold(vh), 1, 0)
    expected[5, 3] = threshold.NODATA
    np.testing.assert_array_equal(values, expected)
    assert_geo_equal(mask, scene.s1)
    assert float((values == scene.water.values).mean()) > 0.95


def test_numpy_and_dask_masks_agree(scene):
    methods = {
        "otsu": threshold.otsu,
        "otsu_tiled": lambda s1: threshold.otsu_tiled(s1, tile_size=32),
    }
    results = {}
    for chunking in CHUNKINGS:
        for name, method in methods.items():
            results[name, chunking] = method(chunked(scene.s1, chunking))
    for (name, _), mask in results.items():
        xr.testing.assert_identical(mask.compute(), results[name, None])


def test_thresholds_per_scene_along_time():
    scenes = [synthetic_scene((96, 96), seed=s).s1 for s in (1, 2, 3)]
    scenes[1] = scenes[1] - 3.0  # a darker acquisition gets its own threshold
    cube = xr.concat(scenes, dim="time").assign_coords(time=[10, 20, 30])
    for data in (cube, cube.chunk({"time": 1, "y": 32, "x": 32})):
        thresholds = threshold.otsu_threshold(data, band="vh")
        assert thresholds.dims == ("time",)
        np.testing.assert_array_equal(thresholds["time"], [10, 20, 30])
        expected = [_skimage_threshold(s.sel(band="vh").values) for s in scenes]
        np.testing.assert_array_equal(thresholds.values, expected)
        mask = threshold.otsu(data, band="vh")
        assert mask.dims == ("time", "y", "x")
        np.testing.assert_array_equal(
            mask.isel(time=1).values, threshold.otsu(scenes[1], band="vh").values
        )


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("fill", [np.nan, -np.inf, -12.5])
def test_scene_without_threshold_gives_all_nodata(scene, chunking, fill):
    """All-NaN, all -inf and constant scenes have no threshold: every pixel is nodata."""
    s1 = chunked(xr.full_like(scene.s1, fill), chunking)
    for method in (threshold.otsu, threshold.otsu_tiled):
        mask = method(s1, band="vh")
        assert (mask.values == threshold.NODATA).all()
    assert np.isnan(float(threshold.otsu_threshold(s1, band="vh")))


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_minus_inf_pixels_are_nodata_and_ignored(scene, chunking):
    s1 = scene.s1.copy()
    s1.values[:, :10, :] = -np.inf
    mask = threshold.otsu(chunked(s1, chunking), band="vh")
    assert (mask.values[:10] == threshold.NODATA).all()
    assert float(threshold.otsu_threshold(s1, band="vh")) == _skimage_threshold(
        s1.sel(band="vh").values
    )


def _small_lake_scene(chunks=None):
    yy, xx = np.mgrid[0:512, 0:512]
    lake = ((yy - 120) ** 2 + (xx - 130) ** 2 < 48**2).astype("int8")
    return synthetic_scene((512, 512), seed=11, water=lake, chunks=chunks)


@pytest.mark.parametrize("chunking", [None, 96, 128])
def test_tiled_otsu_finds_small_water_where_global_otsu_fails(chunking):
    scene = _small_lake_scene(chunks=chunking)
    global_iou = floodxr.metrics.iou(threshold.otsu(scene.s1), scene.water)
    tiled = threshold.otsu_tiled(scene.s1, tile_size=64)
    tiled_iou = floodxr.metrics.iou(tiled, scene.water)
    assert tiled_iou > 0.7 and tiled_iou > global_iou + 0.3, (global_iou, tiled_iou)
    assert_geo_equal(tiled, scene.s1)


def test_tiled_threshold_independent_of_chunking():
    reference = float(threshold.otsu_tiled_threshold(_small_lake_scene().s1, tile_size=64))
    for chunks in (40, 64, 100, {"y": 512, "x": 70}):
        lazy = threshold.otsu_tiled_threshold(_small_lake_scene(chunks=chunks).s1, tile_size=64)
        assert float(lazy) == reference


def test_tiled_otsu_warns_and_falls_back_without_bimodal_tiles(scene):
    land = synthetic_scene((128, 128), seed=1, water=np.zeros((128, 128), "int8"))
    with pytest.warns(FloodxrWarning, match="no bimodal tile"):
        value = float(threshold.otsu_tiled_threshold(land.s1, tile_size=32, min_score=0.9))
    assert value == _skimage_threshold(land.s1.sel(band="vh").values)


def test_fixed_threshold_scalar_and_per_scene(scene):
    mask = threshold.fixed(scene.s1, -20.0, band="vv")
    expected = (scene.s1.sel(band="vv").values < -20.0).astype("uint8")
    np.testing.assert_array_equal(mask.values, expected)
    cube = xr.concat([scene.s1, scene.s1], dim="time")
    per_scene = xr.DataArray([-20.0, -100.0], dims="time")
    masks = threshold.fixed(cube, per_scene, band="vv")
    np.testing.assert_array_equal(masks.isel(time=0).values, expected)
    assert (masks.isel(time=1).values == 0).all()
    with pytest.raises(InvalidOptionError, match="finite number"):
        threshold.fixed(scene.s1, float("nan"))


def test_dataset_with_one_variable_per_band(scene):
    ds = scene.s1.to_dataset(dim="band")
    xr.testing.assert_identical(ds.flood.otsu(band="vh"), scene.s1.flood.otsu(band="vh"))


def test_bad_inputs_name_the_value_and_the_fix(scene):
    with pytest.raises(MissingBandError, match=r"expected bands \('vh',\).*got \('vv',\)"):
        threshold.otsu(scene.s1.sel(band=["vv"]), band="vh")
    with pytest.raises(InvalidOptionError, match="tile_size must be an integer >= 8, got 4"):
        threshold.otsu_tiled(scene.s1, tile_size=4)
    with pytest.raises(InvalidOptionError, match="min_score"):
        threshold.otsu_tiled(scene.s1, min_score=1.5)
    with pytest.raises(InvalidOptionError, match="nbins"):
        threshold.otsu(scene.s1, nbins=1)
    with pytest.raises(floodxr.errors.MissingDimensionError, match="'y', 'x'"):
        threshold.otsu(scene.s1.transpose("band", "x", "y"))
    with pytest.raises(floodxr.errors.MissingDimensionError, match="'band'"):
        threshold.otsu(scene.s1.sel(band="vh"))


def test_thresholding_stays_lazy(scene, no_compute):
    s1 = scene.s1.chunk({"y": 40, "x": 40})
    for result in (
        threshold.otsu(s1),
        threshold.otsu_tiled(s1, tile_size=32),
        threshold.otsu_threshold(s1),
        threshold.fixed(s1, -20.0),
        threshold.otsu(s1).flood.area_km2(),
    ):
        assert isinstance(result.data, dsa.Array)


def test_options_drive_defaults(scene):
    with floodxr.set_options(otsu_bins=64):
        coarse = float(threshold.otsu_threshold(scene.s1))
    vh = scene.s1.sel(band="vh").values
    assert coarse == float(threshold_otsu(vh[np.isfinite(vh)], nbins=64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with floodxr.set_options(otsu_tile_size=32, otsu_bimodality=0.5):
            assert np.isfinite(float(threshold.otsu_tiled_threshold(scene.s1)))
