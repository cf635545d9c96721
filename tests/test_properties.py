"""Property-based tests (hypothesis): generated arrays through the public entry points.

Each example is a small Sentinel-1 raster with a random mix of what real inputs carry: NaN,
+-inf and a declared nodata value (in ``_FillValue``, ``nodata`` or via ``rio.write_nodata``),
float32 or float64, north-up or flipped rows, numpy or dask in any chunking, a projected or a
geographic CRS, dB or linear units (in attrs or only in the values). The invariants: a named
floodxr error, or a result whose invalid pixels are marked; lazy in, lazy out; CRS and
coordinates kept. Examples are derandomised, so every machine runs the same ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import dask
import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.filters import threshold_otsu

import floodxr
from floodxr import errors, metrics, threshold
from floodxr.data import sen1floods11 as s11

PROPERTIES = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class Example:
    da: xr.DataArray
    invalid: np.ndarray  # (band, y, x): pixels that must come out as nodata
    linear: bool  # linear power (in attrs, or only in the values)
    evidence: str  # "attrs"; "scene" (enough valid values in the scene), "block" (in each
    #  chunk too), or "none" (too few valid values to tell dB from linear)
    lazy: bool

    def refused(self, scope: str) -> bool | None:
        """Must linear power be refused by a check over ``scope`` ("scene" or "block")?
        None: either answer is right (too little evidence for this check)."""
        if not self.linear:
            return False
        if self.evidence == "attrs" or self.evidence == "block":
            return True
        if self.evidence == "scene" and (scope == "scene" or not self.lazy):
            return True
        return None


def _forbidden(*args: object, **kwargs: object) -> None:
    raise AssertionError("a lazy floodxr call computed a dask graph")


@st.composite
def s1_rasters(draw: st.DrawFn, *, min_side: int = 4) -> Example:
    # sizes from degenerate to "enough pixels to tell dB from linear power" (>= 256 per band)
    side = st.one_of(st.integers(min_side, 40), st.sampled_from([24, 32, 40]))
    ny, nx = draw(side), draw(side)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    water = rng.random((ny, nx)) < draw(st.floats(0.0, 1.0))
    means = np.where(water, [[[-16.0]], [[-24.0]]], [[[-8.0]], [[-14.0]]])
    values = (means + rng.normal(0, 2.0, (2, ny, nx))).astype(
        draw(st.sampled_from(["float32", "float64"]))
    )
    nodata = draw(st.sampled_from([None, -9999.0, -32768.0, 0.0]))
    invalid = np.zeros(values.shape, bool)
    for kind in draw(st.sets(st.sampled_from(["nan", "inf", "-inf", "nodata"]))):
        where = rng.random(values.shape) < draw(st.sampled_from([0.01, 0.1, 0.5]))
        if kind == "nodata" and nodata is None:
            continue
        values[where] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "nodata": nodata}[kind]
        invalid |= where
    if nodata is not None:
        invalid |= values == nodata
    units = draw(st.sampled_from(["dB", None, "linear", "linear-values", "linear-values"]))
    if units in ("linear", "linear-values"):
        with np.errstate(over="ignore", invalid="ignore"):
            power = np.power(10.0, values / 10.0)
        values = np.where(invalid, values, power).astype(values.dtype)
    geographic = draw(st.booleans())
    res, x0, y0 = (1e-4, 10.0, 45.0) if geographic else (10.0, 500_000.0, 5_000_000.0)
    da = xr.DataArray(
        values,
        dims=("band", "y", "x"),
        coords={
            "band": ["vv", "vh"],
            "y": y0 - res * (np.arange(ny) + 0.5),
            "x": x0 + res * (np.arange(nx) + 0.5),
        },
    )
    da = da.rio.write_crs("EPSG:4326" if geographic else "EPSG:32633")
    if units in ("dB", "linear"):
        da.attrs["units"] = units
    if nodata is not None:
        how = draw(st.sampled_from(["_FillValue", "nodata", "rio"]))
        da = (
            da.rio.write_nodata(nodata, encoded=False)
            if how == "rio"
            else da.assign_attrs({how: nodata})
        )
    if draw(st.booleans()):
        da = da.isel(y=slice(None, None, -1))
        invalid = invalid[:, ::-1, :]
    chunking = draw(st.sampled_from([None, "whole", 3, 8, 16]))
    if chunking is not None:
        size = -1 if chunking == "whole" else chunking
        da = da.chunk({"band": -1, "y": size, "x": size})
    # the dB check looks at the valid values of each band the method reads: vh (and vv)
    per_band = (~invalid).sum(axis=(1, 2))
    side = {None: max(ny, nx), "whole": max(ny, nx)}.get(chunking, chunking)
    if units == "linear":
        evidence = "attrs"
    elif per_band.min() >= 256 and (chunking in (None, "whole")):
        evidence = "block"
    elif per_band.min() >= 256:
        evidence = "scene" if side * side < 256 else "none"
    else:
        evidence = "none"
    return Example(
        da, invalid, units in ("linear", "linear-values"), evidence, chunking is not None
    )


def outcome(example: Example, call, scope: str) -> xr.DataArray | None:
    """The result of ``call`` computed, or None when floodxr refused linear power (rightly).

    ``scope``: the dB check runs over the whole scene ("scene": the Otsu family, which reduces
    the scene anyway) or over each chunk ("block": per-pixel methods, which must not read the
    input twice)."""
    must = example.refused(scope)
    try:
        # dask in: nothing may compute until asked; numpy in is computed (numpy out)
        with dask.config.set(scheduler=_forbidden) if example.lazy else contextlib.nullcontext():
            result = call(example.da)
        assert isinstance(result.data, dsa.Array) == example.lazy, "lazy in must be lazy out"
        computed = result.compute()
    except errors.UnitsError:
        assert must is not False, "dB data refused"
        return None
    assert must is not True, "linear power slipped through"
    return computed


def check_geo(result: xr.DataArray, source: xr.DataArray) -> None:
    assert result.rio.crs == source.rio.crs
    np.testing.assert_array_equal(result["y"].values, source["y"].values)
    np.testing.assert_array_equal(result["x"].values, source["x"].values)


MASKS = {
    "otsu": lambda da: da.flood.otsu(band="vh"),
    "otsu_tiled": lambda da: da.flood.otsu_tiled(band="vh", tile_size=8),
    "threshold": lambda da: da.flood.threshold(-19.0, band="vh"),
}


@pytest.mark.parametrize("method", sorted(MASKS))
@PROPERTIES
@given(example=s1_rasters())
def test_masks_mark_every_invalid_pixel_and_keep_the_grid(method, example):
    with _quiet():
        mask = outcome(example, MASKS[method], "block" if method == "threshold" else "scene")
    if mask is None:
        return
    assert mask.dtype == np.uint8 and mask.dims == ("y", "x")
    assert set(np.unique(mask.values)) <= {0, 1, 255}
    assert (mask.values[example.invalid[1]] == 255).all()
    check_geo(mask, example.da)


@PROPERTIES
@given(example=s1_rasters())
def test_the_otsu_threshold_is_scikit_images_on_the_valid_pixels(example):
    with _quiet():
        found = outcome(example, lambda da: threshold.otsu_threshold(da, band="vh"), "scene")
    if found is None:
        return
    values = np.asarray(example.da.sel(band="vh").values, dtype="float64")
    valid = values[~example.invalid[1]]
    if np.unique(valid).size < 2:
        assert np.isnan(float(found))
        return
    low, high = valid.min(), valid.max()
    assert abs(float(found) - threshold_otsu(valid)) <= (high - low) / 256 + 1e-9


@PROPERTIES
@given(example=s1_rasters(min_side=16))
def test_segment_gives_nan_exactly_where_any_band_is_invalid(example, tiny_student):
    # segment checks blocks of its own (chunks grown to the network's step, plus a halo)
    probability = outcome(example, lambda da: da.flood.segment(model=tiny_student), "scene")
    if probability is None:
        return
    values = probability.values
    assert values.dtype == np.float32 and probability.dims == ("y", "x")
    np.testing.assert_array_equal(np.isnan(values), example.invalid.any(axis=0))
    finite = values[np.isfinite(values)]
    assert ((finite >= 0) & (finite <= 1)).all()
    check_geo(probability, example.da)


@PROPERTIES
@given(example=s1_rasters())
def test_normalize_scales_valid_pixels_and_blanks_the_rest(example):
    scaled = outcome(example, lambda da: da.flood.normalize(), "block")
    if scaled is None:
        return
    values = scaled.values
    np.testing.assert_array_equal(np.isnan(values), example.invalid)
    assert ((values[~example.invalid] >= 0) & (values[~example.invalid] <= 1)).all()


@st.composite
def predictions_and_labels(draw: st.DrawFn):
    ny, nx = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    label = rng.choice(np.array([-1, 0, 1], "int8"), (ny, nx))
    kind = draw(st.sampled_from(["mask", "probability", "bool"]))
    if kind == "mask":
        prediction = rng.choice(np.array([0, 1, 255], "uint8"), (ny, nx))
    elif kind == "bool":
        prediction = rng.random((ny, nx)) < 0.5
    else:
        prediction = rng.random((ny, nx)).astype("float32")
        prediction[rng.random((ny, nx)) < 0.2] = draw(st.sampled_from([np.nan, np.inf]))
    coords = {"y": np.arange(ny, 0, -1) + 0.5, "x": np.arange(nx) + 0.5}
    pred = xr.DataArray(prediction, dims=("y", "x"), coords=coords)
    truth = xr.DataArray(label, dims=("y", "x"), coords=coords)
    chunks = draw(st.sampled_from([None, 4]))
    if chunks:
        pred, truth = pred.chunk(chunks), truth.chunk(chunks)
    return pred, truth, prediction, label


@PROPERTIES
@given(pair=predictions_and_labels())
def test_confusion_counts_only_pixels_valid_in_both(pair):
    pred, truth, prediction, label = pair
    counts = metrics.confusion(pred, truth)
    if prediction.dtype.kind == "f":
        valid_prediction, water = np.isfinite(prediction), prediction >= 0.5
    elif prediction.dtype == bool:
        valid_prediction, water = np.ones(prediction.shape, bool), prediction
    else:
        valid_prediction, water = prediction != 255, prediction == 1
    valid = valid_prediction & (label >= 0)
    assert counts.valid == int(valid.sum())
    assert counts.tp == int((water & (label == 1) & valid).sum())
    assert counts.fn == int((~water & (label == 1) & valid).sum())
    assert np.isnan(counts.iou) or 0 <= counts.iou <= 1


@PROPERTIES
@given(example=s1_rasters())
def test_written_masks_read_back_north_up_with_their_nodata(example, tmp_path_factory):
    with _quiet():
        mask = outcome(example, MASKS["threshold"], "block")
    if mask is None:
        return
    path = floodxr.writers.to_cog(
        MASKS["threshold"](example.da), tmp_path_factory.mktemp("cog") / "water.tif"
    )
    north = mask.sortby("y", ascending=False)
    with rasterio.open(path) as src:
        assert src.nodata == 255 and src.transform.e < 0
        np.testing.assert_array_equal(src.read(1), north.values)
        top = float(north["y"][0]) - src.transform.e / 2
        assert abs(src.transform.f - top) < 1e-9 * max(1.0, abs(top))


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(example=s1_rasters(), chunks=st.sampled_from([None, 5, 16]))
def test_the_sen1floods11_reader_gives_back_what_was_written(example, chunks, tmp_path_factory):
    rows = example.da["y"].values
    flipped = rows.size > 1 and rows[0] < rows[-1]
    values = example.da.sortby("y", ascending=False).values.astype("float32")
    values[example.invalid[:, ::-1, :] if flipped else example.invalid] = np.nan  # the format's
    ny, nx = values.shape[1:]
    path = tmp_path_factory.mktemp("chip") / "X_S1Hand.tif"
    transform = rasterio.transform.from_origin(10.0, 45.0, 1e-4, 1e-4)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=ny,
        width=nx,
        count=2,
        dtype="float32",
        crs="EPSG:4326",
        transform=transform,
        nodata=np.nan,
    ) as dst:
        dst.write(values)
    s1 = s11.open_s1(path, chunks=chunks)
    assert isinstance(s1.data, dsa.Array) == (chunks is not None)
    np.testing.assert_array_equal(s1.values, values)
    assert s1.rio.crs.to_epsg() == 4326 and s1.rio.transform() == transform


class _quiet:
    """Silence floodxr's advisory warnings (no bimodal tile) that random rasters provoke."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", errors.FloodxrWarning)
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


def test_properties_cover_the_units_both_ways():
    """The generator does produce refused (linear) and accepted (dB) rasters."""
    seen: dict[str, int] = {}

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(example=s1_rasters())
    def collect(example):
        key = f"{'linear' if example.linear else 'dB'}/{example.evidence}"
        seen[key] = seen.get(key, 0) + 1

    collect()
    assert all(seen.get(k, 0) >= 3 for k in ("dB/block", "linear/attrs", "linear/block")), str(seen)
