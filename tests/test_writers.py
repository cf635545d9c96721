import numpy as np
import pytest
import rasterio
import xarray as xr

import floodxr
from floodxr.errors import MissingDimensionError, OutputExistsError, WrongTypeError
from floodxr.testing import synthetic_scene


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene((700, 600), seed=3)


@pytest.mark.parametrize("kind", ["mask", "probability"])
def test_to_cog_streams_chunks_and_keeps_geo(scene, tiny_student, tmp_path, kind):
    lazy = scene.s1.chunk({"y": 256, "x": 256})
    result = lazy.flood.segment(model=tiny_student, output=kind, tile=128, halo=32)
    path = result.flood.to_cog(tmp_path / "out.tif", blocksize=256)
    expected = result.values
    with rasterio.open(path) as src:
        written = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.transform == scene.s1.rio.transform()
        assert src.profile["tiled"] and src.overviews(1)[0] == 2
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.dtypes[0] == ("uint8" if kind == "mask" else "float32")
        if kind == "mask":
            assert src.nodata == 255
        else:
            assert np.isnan(src.nodata)
    np.testing.assert_array_equal(written, expected)
    assert not list(tmp_path.glob("*partial*"))


def test_to_cog_refuses_to_overwrite_and_time_cubes(scene, tmp_path):
    mask = scene.s1.flood.otsu()
    path = mask.flood.to_cog(tmp_path / "water.tif")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        mask.flood.to_cog(path)
    assert mask.flood.to_cog(path, overwrite=True) == path
    cube = xr.concat([mask, mask], dim="time")
    with pytest.raises(MissingDimensionError, match="one file per time"):
        cube.flood.to_cog(tmp_path / "cube.tif")
    with pytest.raises(WrongTypeError):
        scene.flood.to_cog(tmp_path / "ds.tif")


def test_to_zarr_round_trip(scene, tiny_student, tmp_path):
    cube = xr.concat([scene.s1, scene.s1 - 1.0], dim="time").chunk({"time": 1, "y": 200, "x": 200})
    probability = cube.flood.segment(model=tiny_student, tile=128, halo=32)
    store = probability.flood.to_zarr(tmp_path / "out.zarr")
    back = xr.open_zarr(store, decode_coords="all", consolidated=False)
    assert back.water_probability.rio.crs.to_epsg() == 32633
    np.testing.assert_array_equal(back.water_probability.values, probability.values)
    floodxr.testing.assert_geo_equal(back.water_probability, scene.s1)
    with pytest.raises(OutputExistsError):
        probability.flood.to_zarr(store)
    assert probability.isel(time=[0]).flood.to_zarr(store, overwrite=True) == store
    assert xr.open_zarr(store, consolidated=False).sizes["time"] == 1


@pytest.mark.parametrize("group", [1, 2, 5])
def test_block_regions_tile_the_array_once(group):
    da = xr.DataArray(np.zeros((3, 50, 70)), dims=("time", "y", "x")).chunk(
        {"time": 2, "y": 20, "x": 30}
    )
    seen = np.zeros(da.shape, int)
    regions = list(floodxr.writers.block_regions(da, group))
    for region in regions:
        seen[region["time"], region["y"], region["x"]] += 1
    assert (seen == 1).all()
    assert len(regions) == 2 * 3 * -(-3 // group)
    assert list(floodxr.writers.block_regions(da.compute())) == [{}]
