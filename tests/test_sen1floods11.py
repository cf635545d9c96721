import filecmp
import warnings

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr

from floodxr.data import sen1floods11 as s11
from floodxr.errors import (
    ChipNotFoundError,
    DataLayoutError,
    MissingChipsWarning,
    UnknownEventError,
)
from floodxr.testing import assert_geo_equal

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


def _raw(path):
    with rasterio.open(path) as src:
        return src.read(), src.transform, src.crs


@pytest.mark.parametrize("chip", S1_CHIPS)
def test_open_s1_matches_rasterio(shared_data, chip):
    path = shared_data / "S1Hand" / f"{chip}_S1Hand.tif"
    raw, transform, crs = _raw(path)
    s1 = s11.open_s1(path)
    assert s1.dims == ("band", "y", "x") and s1.band.values.tolist() == ["vv", "vh"]
    assert s1.dtype == np.float32 and s1.attrs["units"] == "dB"
    assert s1.rio.crs == crs and s1.rio.transform() == transform
    np.testing.assert_array_equal(s1.values, raw)  # NaN where the file has NaN


def test_open_s2_masks_zero_as_nan(shared_data):
    path = shared_data / "S2Hand" / "USA_430764_S2Hand.tif"
    raw, transform, _ = _raw(path)
    s2 = s11.open_s2(path)
    assert s2.band.values.tolist() == [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B8A",
        "B09",
        "B10",
        "B11",
        "B12",
    ]
    assert s2.dtype == np.float32 and s2.rio.transform() == transform
    np.testing.assert_array_equal(np.isnan(s2.values), raw == 0)
    np.testing.assert_array_equal(s2.values[raw != 0], raw[raw != 0])


@pytest.mark.parametrize("chip", S1_CHIPS)
def test_open_label_keeps_invalid(shared_data, chip):
    path = shared_data / "LabelHand" / f"{chip}_LabelHand.tif"
    raw, _, _ = _raw(path)
    label = s11.open_label(path)
    assert label.dtype == np.int8 and label.dims == ("y", "x") and label.rio.nodata == -1
    np.testing.assert_array_equal(label.values, raw[0])


def test_open_chip_puts_all_rasters_on_one_grid(shared_data):
    chip = s11.open_chip(shared_data, "India_900498")
    assert chip.event == "India" and chip.s2 is not None and chip.label is not None
    for other in (chip.s2, chip.label):
        assert_geo_equal(other, chip.s1)
        xr.align(other, chip.s1.sel(band="vv", drop=True), join="exact", exclude=["band"])
    without_s2 = s11.open_chip(shared_data, "Ghana_97059")
    assert without_s2.s2 is None and without_s2.label is not None


@pytest.mark.parametrize("chunks", [128, {"y": 100, "x": 512}])
def test_lazy_chips_equal_eager(shared_data, chunks):
    lazy = s11.open_chip(shared_data, "Spain_7370579", chunks=chunks)
    eager = s11.open_chip(shared_data, "Spain_7370579")
    for name in ("s1", "s2", "label"):
        data = getattr(lazy, name)
        assert isinstance(data.data, dsa.Array)
        if "band" in data.dims:
            assert data.chunksizes["band"] == (data.sizes["band"],)
        xr.testing.assert_identical(data.compute(), getattr(eager, name))


def test_read_split_skips_and_counts_missing(shared_data):
    with pytest.warns(MissingChipsWarning, match="81 of 90 chips"):
        split = s11.read_split(shared_data, "test")
    assert sorted(split.chips) == sorted(S1_CHIPS) and len(split.missing) == 81
    assert [chip.id for chip in split.open()] == list(split.chips)
    with pytest.warns(MissingChipsWarning, match="252 of 252"):
        train = s11.read_split(shared_data, "train")
    assert len(train) == 0


def test_read_split_with_own_file(shared_data, tmp_path):
    listing = tmp_path / "mine.csv"
    listing.write_text("India_900498_S1Hand.tif,India_900498_LabelHand.tif\n\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = s11.read_split(shared_data, "mine", split_file=listing)
    assert split.chips == ("India_900498",) and split.missing == ()


def test_layout_errors_say_what_is_expected(shared_data, tmp_path):
    with pytest.raises(DataLayoutError, match="S1Hand/<chip>_S1Hand.tif"):
        s11.read_split(tmp_path / "nowhere")
    (tmp_path / "S1Hand").mkdir()
    with pytest.raises(DataLayoutError, match="no split list .*flood_test_data.csv"):
        s11.read_split(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("chip,label\n")
    with pytest.raises(DataLayoutError, match="line 1"):
        s11.read_split(tmp_path, split_file=bad)
    with pytest.raises(ChipNotFoundError, match="'Atlantis_1'"):
        s11.open_chip(shared_data, "Atlantis_1")
    with pytest.raises(DataLayoutError, match="2 bands"):
        s11.open_s2(shared_data / "S1Hand" / "India_900498_S1Hand.tif")


def test_label_on_another_grid_is_refused(shared_data, tmp_path):
    for folder in ("S1Hand", "LabelHand"):
        (tmp_path / folder).mkdir()
    s1 = s11.open_s1(shared_data / "S1Hand" / "India_900498_S1Hand.tif")
    s1.rio.to_raster(tmp_path / "S1Hand" / "X_1_S1Hand.tif")
    label = s11.open_label(shared_data / "LabelHand" / "India_900498_LabelHand.tif")
    label.isel(x=slice(1, None)).rio.to_raster(tmp_path / "LabelHand" / "X_1_LabelHand.tif")
    with pytest.raises(DataLayoutError, match="not on the grid"):
        s11.open_chip(tmp_path, "X_1")


def test_events_and_aliases(shared_data, tmp_path):
    events = s11.read_events(shared_data / "Sen1Floods11_Metadata.geojson")
    assert s11.event_of("Mekong_333434", events)["location"] == "Cambodia"
    assert s11.event_of("Sri-Lanka_534068", events)["VH_thresh"] == events["Sri-Lanka"]["VH_thresh"]
    with pytest.raises(UnknownEventError, match="'Atlantis'.*'Bolivia'"):
        s11.event_of("Atlantis_3", events)
    broken = tmp_path / "meta.geojson"
    broken.write_text('{"features": [{"properties": {}}]}')
    with pytest.raises(DataLayoutError, match="properties.location"):
        s11.read_events(broken)
    with pytest.raises(DataLayoutError, match="no event metadata"):
        s11.read_events(tmp_path / "absent.geojson")


def test_bundled_sample_is_a_copy_of_the_real_chip(shared_data):
    for relative in (
        "S1Hand/Spain_7370579_S1Hand.tif",
        "S2Hand/Spain_7370579_S2Hand.tif",
        "LabelHand/Spain_7370579_LabelHand.tif",
        "Sen1Floods11_Metadata.geojson",
        "splits/flood_test_data.csv",
    ):
        assert filecmp.cmp(s11.SAMPLE_DIR / relative, shared_data / relative, shallow=False)
