import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

import floodxr
from floodxr import preprocess
from floodxr.data import sen1floods11 as s11
from floodxr.errors import FloodxrError, MissingBandError, UnitsError
from floodxr.testing import assert_geo_equal

from conftest import CHUNKINGS, chunked


def _linear(scene: xr.Dataset) -> xr.DataArray:
    power = 10 ** (scene.s1 / 10)
    power.attrs = {"units": "linear"}
    return power


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_to_db_from_db_round_trip_keeps_grid(scene, chunking):
    power = chunked(_linear(scene), chunking)
    db = preprocess.to_db(power)
    assert db.attrs["units"] == "dB"
    assert isinstance(db.data, dsa.Array) == (chunking is not None)
    np.testing.assert_allclose(db.values, scene.s1.values, rtol=1e-5, atol=1e-4)
    back = preprocess.from_db(db)
    assert back.attrs["units"] == "linear"
    np.testing.assert_allclose(back.values, power.values, rtol=1e-5)
    assert_geo_equal(db, scene.s1)
    assert_geo_equal(back, scene.s1)


def test_to_db_zero_power_is_minus_inf_and_dataset_works(scene):
    power = _linear(scene).copy()
    power[0, 0, 0] = 0.0
    db = preprocess.to_db(power.to_dataset(dim="band"))
    assert np.isneginf(db["vv"].values[0, 0])
    assert set(db.data_vars) == {"vv", "vh"}


def test_to_db_refuses_data_marked_db(scene):
    with pytest.raises(UnitsError, match="already in dB"):
        preprocess.to_db(scene.s1)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_to_db_refuses_negative_values_lazily(scene, chunking, no_compute):
    values = scene.s1.copy()
    values.attrs = {}
    if chunking is None:
        with pytest.raises(UnitsError, match="negative values"):
            preprocess.to_db(values)
        return
    lazy = preprocess.to_db(chunked(values, chunking))  # no compute: the check waits
    with pytest.raises(UnitsError, match="negative values"), dask_sync():
        lazy.compute()


def dask_sync():
    import dask

    return dask.config.set(scheduler="synchronous")


def test_from_db_refuses_linear_data(scene):
    with pytest.raises(UnitsError, match="already linear"):
        preprocess.from_db(_linear(scene))


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_normalize_paper_ranges(scene, chunking):
    s1 = chunked(scene.s1, chunking)
    out = preprocess.normalize(s1)
    expected_vv = np.clip((scene.s1.sel(band="vv").values + 20) / 20, 0, 1)
    expected_vh = np.clip((scene.s1.sel(band="vh").values + 30) / 30, 0, 1)
    np.testing.assert_allclose(out.sel(band="vv").values, expected_vv, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.sel(band="vh").values, expected_vh, rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32 and out.dims == scene.s1.dims
    assert_geo_equal(out, scene.s1)


def test_normalize_keeps_nan_and_scales_s2():
    da = xr.DataArray(
        np.array([[np.nan, -5.0, 1500.0, 4000.0]]), dims=("band", "x"), coords={"band": ["B03"]}
    )
    np.testing.assert_array_equal(preprocess.normalize(da).values, [[np.nan, 0.0, 0.5, 1.0]])


def test_normalize_custom_and_unknown_ranges(scene):
    out = preprocess.normalize(scene.s1, ranges={"vv": (-40.0, 10.0)})
    vv = scene.s1.sel(band="vv").values
    np.testing.assert_allclose(out.sel(band="vv").values, np.clip((vv + 40) / 50, 0, 1), rtol=1e-5)
    odd = scene.s1.assign_coords(band=["vv", "hh"])
    with pytest.raises(MissingBandError, match="'hh'"):
        preprocess.normalize(odd)


def test_normalize_refuses_linear_s1(scene):
    with pytest.raises(UnitsError, match="to_db"):
        preprocess.normalize(_linear(scene))


@pytest.mark.parametrize("chunking", [None, 100])
def test_indices_on_real_s2_chip(shared_data, chunking):
    s2 = s11.open_s2(shared_data / "S2Hand" / "India_900498_S2Hand.tif")
    s2 = chunked(s2, chunking)
    b3, b4, b8, b11 = (
        s2.sel(band=b).values.astype("float64") for b in ("B03", "B04", "B08", "B11")
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {
            "ndwi": (b3 - b8) / (b3 + b8),
            "mndwi": (b3 - b11) / (b3 + b11),
            "ndvi": (b8 - b4) / (b8 + b4),
        }
    for name, value in expected.items():
        index = getattr(s2.flood, name)()
        assert index.name == name and index.dims == ("y", "x")
        np.testing.assert_allclose(index.values, value, rtol=1e-5, atol=1e-6)
        assert_geo_equal(index, s2)


def test_index_zero_sum_is_nan_and_missing_band_names_fix():
    s2 = xr.DataArray(np.zeros((2, 3)), dims=("band", "x"), coords={"band": ["B03", "B08"]})
    assert np.isnan(preprocess.ndwi(s2).values).all()
    with pytest.raises(MissingBandError, match=r"missing \('B11',\)"):
        preprocess.mndwi(s2)
    lower = s2.assign_coords(band=["b03", "b08"])
    with pytest.raises(MissingBandError, match="rename"):
        preprocess.ndwi(lower)


def test_weak_labels_encoding_and_methods():
    s2 = xr.DataArray(
        np.array(
            [
                [900.0, 500.0, np.nan, 300.0],  # B03
                [300.0, 300.0, 300.0, 300.0],  # B04
                [200.0, 2500.0, 300.0, 400.0],  # B08
                [100.0, 1800.0, 300.0, 500.0],
            ]
        ),  # B11
        dims=("band", "x"),
        coords={"band": ["B03", "B04", "B08", "B11"]},
    )
    labels = preprocess.weak_labels(s2)
    np.testing.assert_array_equal(labels.values, [1, 0, -1, 0])
    assert labels.dtype == np.int8 and labels.rio.nodata == -1
    np.testing.assert_array_equal(preprocess.weak_labels(s2, method="ndwi").values, [1, 0, -1, 0])
    np.testing.assert_array_equal(
        preprocess.weak_labels(s2, method="ndwi", ndwi_min=-0.2).values, [1, 0, -1, 1]
    )
    with pytest.raises(FloodxrError, match="unknown weak-label method 'otsu'"):
        preprocess.weak_labels(s2, method="otsu")


def test_weak_labels_agree_with_hand_labels_on_real_chips(shared_data):
    """S2 weak labels are a real signal: they overlap the hand labels of both S2 chips."""
    for chip_id in ("India_900498", "Spain_7370579"):
        chip = s11.open_chip(shared_data, chip_id)
        weak = chip.s2.flood.weak_labels()
        assert_geo_equal(weak, chip.s1)
        score = floodxr.metrics.confusion((weak == 1).where(weak >= 0), chip.label)
        assert score.iou > 0.5, (chip_id, score)


def test_everything_stays_lazy(scene, no_compute):
    s1 = scene.s1.chunk({"y": 40, "x": 40})
    s2 = xr.concat([s1.sel(band="vv")] * 4, dim="band").assign_coords(
        band=["B03", "B04", "B08", "B11"]
    )
    results = [
        preprocess.from_db(s1),
        preprocess.normalize(s1),
        preprocess.ndwi(s2),
        preprocess.mndwi(s2),
        preprocess.ndvi(s2),
        preprocess.weak_labels(s2),
        preprocess.to_db(preprocess.from_db(s1)),
    ]
    for result in results:
        assert isinstance(result.data, dsa.Array)
