"""Flood polygons: .flood.to_polygons() and writers.to_vector()."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

import floodxr
from floodxr.errors import NotAMaskError, OutputExistsError, OutputPathError, WrongTypeError

from conftest import CHUNKINGS, chunked


@pytest.fixture(scope="module")
def ponds() -> xr.DataArray:
    """Many water bodies of every size, some with islands, with nodata (255) and NaN-free."""
    rng = np.random.default_rng(7)
    field = ndimage.gaussian_filter(rng.standard_normal((300, 260)), 4)
    water = (field > 0.05).astype("uint8")
    water[20:30, :] = 255  # a strip nobody saw
    scene = floodxr.testing.synthetic_scene((300, 260), seed=0, water=(water == 1))
    return scene.water.copy(data=water).rio.write_nodata(255)


@pytest.mark.parametrize("chunking", [*CHUNKINGS, 37])
def test_polygons_are_the_water_bodies_whatever_the_chunks(ponds, chunking):
    polygons = chunked(ponds, chunking).flood.to_polygons()
    # one polygon per 4-connected water body, none across the nodata strip
    _, bodies = ndimage.label(ponds.values == 1)
    assert len(polygons) == bodies > 20
    assert polygons.geom_type.eq("Polygon").all() and polygons.is_valid.all()
    assert polygons.crs.to_epsg() == ponds.rio.crs.to_epsg()
    total = float(ponds.flood.area_km2())
    assert polygons.area_km2.sum() == pytest.approx(total, rel=0.005)
    whole = ponds.flood.to_polygons()
    np.testing.assert_allclose(polygons.area_km2, whole.area_km2, rtol=1e-9)
    assert polygons.geometry.union_all().equals(whole.geometry.union_all())


def test_small_bodies_are_dropped_and_edges_can_be_simplified(ponds):
    every = ponds.flood.to_polygons()
    big = ponds.flood.to_polygons(min_area_m2=5000)
    assert 0 < len(big) < len(every)
    assert (big.area_km2 * 1e6 >= 5000).all()
    assert (every.area_km2 * 1e6 < 5000).sum() == len(every) - len(big)
    simple = ponds.flood.to_polygons(simplify=15.0)
    vertices = every.geometry.count_coordinates().sum()
    assert simple.geometry.count_coordinates().sum() < 0.7 * vertices
    assert simple.area_km2.sum() == pytest.approx(every.area_km2.sum(), rel=0.02)


def test_nodata_is_never_water_and_leading_dims_become_columns(ponds):
    as_float = ponds.astype("float32").where(ponds != 255)  # NaN nodata
    assert len(as_float.flood.to_polygons()) == len(ponds.flood.to_polygons())
    cube = xr.concat([ponds, 1 - ponds.where(ponds != 255, 1)], dim="time")
    cube = cube.assign_coords(time=np.array(["2019-09-13", "2019-09-25"], "datetime64[ns]"))
    cube = cube.astype("uint8").rio.write_crs(ponds.rio.crs)
    polygons = cube.flood.to_polygons()
    assert set(polygons.time) == set(cube.time.values)
    with pytest.raises(NotAMaskError, match="threshold it first"):
        ponds.astype("float32").__mul__(0.5).flood.to_polygons()


def test_polygons_are_written_by_suffix_and_never_overwritten(ponds, tmp_path):
    polygons = ponds.flood.to_polygons(min_area_m2=2000)

    def read(path):
        return gpd.read_parquet(path) if path.suffix == ".parquet" else gpd.read_file(path)

    for name in ("water.parquet", "water.gpkg", "water.geojson"):
        path = floodxr.writers.to_vector(polygons, tmp_path / name)
        back = read(path)
        assert len(back) == len(polygons) and back.crs.to_epsg() == polygons.crs.to_epsg()
        np.testing.assert_allclose(back.area_km2, polygons.area_km2)
        with pytest.raises(OutputExistsError, match="overwrite=True"):
            floodxr.writers.to_vector(polygons.head(1), path)
        assert len(read(path)) == len(polygons)  # untouched
    floodxr.writers.to_vector(polygons.head(1), tmp_path / "water.gpkg", overwrite=True)
    assert len(gpd.read_file(tmp_path / "water.gpkg")) == 1
    with pytest.raises(OutputPathError, match="suffix '.shp'"):
        floodxr.writers.to_vector(polygons, tmp_path / "water.shp")
    with pytest.raises(WrongTypeError, match="GeoDataFrame"):
        floodxr.writers.to_vector(ponds, tmp_path / "mask.gpkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "water.geojson",
        "water.gpkg",
        "water.parquet",
    ]


def test_a_dataset_says_which_variable_to_trace(ponds):
    with pytest.raises(WrongTypeError, match=r"ds\['water'\].flood.to_polygons"):
        ponds.to_dataset(name="water").flood.to_polygons()
