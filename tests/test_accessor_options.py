import pytest
import xarray as xr

import floodxr
from floodxr import accessor, preprocess, threshold
from floodxr.errors import FloodxrError, InvalidOptionError


def test_accessor_is_registered_and_stateless(scene):
    assert isinstance(scene.s1.flood, floodxr.FloodAccessor)
    assert isinstance(scene.flood, floodxr.FloodAccessor)
    assert accessor.FloodAccessor.__slots__ == ("_obj",)
    with pytest.raises(AttributeError):
        scene.s1.flood.model = "student"


def test_accessor_forwards_to_module_functions(scene):
    s1 = scene.s1
    xr.testing.assert_identical(s1.flood.otsu(band="vv"), threshold.otsu(s1, band="vv"))
    xr.testing.assert_identical(
        s1.flood.otsu_tiled(tile_size=32), threshold.otsu_tiled(s1, tile_size=32)
    )
    xr.testing.assert_identical(s1.flood.threshold(-20.0), threshold.fixed(s1, -20.0))
    xr.testing.assert_identical(s1.flood.normalize(), preprocess.normalize(s1))
    xr.testing.assert_identical(s1.flood.from_db(), preprocess.from_db(s1))
    xr.testing.assert_identical(s1.flood.otsu_threshold(), threshold.otsu_threshold(s1))
    mask = s1.flood.otsu()
    assert mask.flood.confusion(scene.water) == floodxr.metrics.confusion(mask, scene.water)
    with pytest.raises(floodxr.errors.WrongTypeError, match=r"ds\['water'\]"):
        scene.flood.area_km2()
    with pytest.raises(floodxr.errors.WrongTypeError, match="prediction DataArray"):
        scene.flood.confusion(scene.water)


def test_public_api_is_explicit():
    assert set(floodxr.__all__) <= set(dir(floodxr))
    assert "set_options" in floodxr.__all__ and "FloodxrError" in floodxr.__all__


def test_set_options_validates_and_restores():
    before = floodxr.get_options()
    with pytest.raises(InvalidOptionError, match=r"unknown option 'tiles'; valid options are \["):
        floodxr.set_options(tiles=3)
    with pytest.raises(InvalidOptionError, match="otsu_tile_size.*got 2"):
        floodxr.set_options(otsu_tile_size=2)
    with pytest.raises(InvalidOptionError, match="otsu_bimodality"):
        floodxr.set_options(otsu_bimodality=1.0)
    with pytest.raises(InvalidOptionError, match="progress"):
        floodxr.set_options(progress="yes")
    with pytest.raises(InvalidOptionError, match="multiple of 16.*use 96"):
        floodxr.set_options(tile=100)
    with pytest.raises(InvalidOptionError, match="'device' must be"):
        floodxr.set_options(device="tpu")
    with pytest.raises(InvalidOptionError, match="'engine' must be one of"):
        floodxr.set_options(engine="tensorrt")
    with pytest.raises(InvalidOptionError, match="torch_threads"):
        floodxr.set_options(torch_threads=0)
    with floodxr.set_options(otsu_bins=32, progress=False):
        assert floodxr.get_options()["otsu_bins"] == 32
    assert floodxr.get_options() == before
    token = floodxr.set_options(otsu_bins=100)
    try:
        assert floodxr.get_options()["otsu_bins"] == 100
    finally:
        token.__exit__()
    assert floodxr.get_options() == before


def test_every_error_is_a_floodxr_error():
    errors = [getattr(floodxr.errors, name) for name in floodxr.errors.__all__]
    for error in errors:
        assert issubclass(error, FloodxrError) != issubclass(error, floodxr.FloodxrWarning)
    assert str(floodxr.errors.MissingBandError("no 'vh'")) == "no 'vh'"
