import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

import floodxr
from floodxr import threshold
from floodxr.data import sen1floods11 as s11
from floodxr.errors import InvalidOptionError, MissingBandError, UnitsError
from floodxr.segment import segment
from floodxr.testing import assert_geo_equal, synthetic_scene

SMALL = {"tile": 128, "halo": 32}


@pytest.fixture(scope="module")
def big_scene():
    return synthetic_scene((400, 352), seed=5)


def test_segment_finds_water_and_keeps_geo(tiny_student, big_scene):
    s1 = big_scene.s1.assign_attrs(platform="sentinel-1a")
    probability = s1.flood.segment(model=tiny_student, **SMALL)
    assert probability.attrs["platform"] == "sentinel-1a"
    assert probability.dims == ("y", "x") and probability.dtype == np.float32
    assert probability.name == "water_probability" and probability.attrs["units"] == "1"
    assert_geo_equal(probability, big_scene.s1)
    values = probability.values
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1
    assert floodxr.metrics.iou(probability, big_scene.water) > 0.9


@pytest.mark.parametrize("chunks", [64, 100, {"y": 400, "x": 120}, {"y": 37, "x": 352}])
def test_tiled_equals_whole_array(tiny_student, big_scene, chunks):
    whole = big_scene.s1.flood.segment(model=tiny_student, **SMALL)
    sizes = chunks if isinstance(chunks, dict) else {"y": chunks, "x": chunks}
    tiled = big_scene.s1.chunk(sizes).flood.segment(model=tiny_student, **SMALL)
    assert isinstance(tiled.data, dsa.Array)
    difference = np.abs(tiled.values - whole.values)
    assert float(np.nanmax(difference)) < 1e-3
    masks_differ = (tiled.values >= 0.5) != (whole.values >= 0.5)
    assert masks_differ.mean() < 1e-4
    assert float(np.nanstd(whole.values)) > 0.3  # a real map, not a constant


@pytest.mark.parametrize("chunks", [64, 100, {"y": 400, "x": 120}, {"y": 37, "x": 352}, 256])
def test_window_free_chunks_equal_the_whole_array(compact_student, big_scene, chunks):
    assert floodxr.models.read_config(compact_student).context == 69
    # 128 px window cores: several windows and chunks on the 400 px scene (the default is 512)
    whole = big_scene.s1.flood.segment(model=compact_student, tile=128)
    sizes = chunks if isinstance(chunks, dict) else {"y": chunks, "x": chunks}
    tiled = big_scene.s1.chunk(sizes).flood.segment(model=compact_student, tile=128)
    assert float(np.nanmax(np.abs(tiled.values - whole.values))) < 1e-3
    assert ((tiled.values >= 0.5) != (whole.values >= 0.5)).mean() < 1e-4
    assert floodxr.metrics.iou(whole, big_scene.water) > 0.8  # a real map, not a constant


def test_window_free_halo_the_full_context_is_exact_and_the_default_close(
    compact_student, big_scene
):
    """With the full context as halo, windows give the network's output over the whole scene;
    the default halo (32 px) differs from it near window borders only, by little."""
    from floodxr import inference
    from floodxr.preprocess import PAPER_RANGES

    model = floodxr.models.load(compact_student)
    raw = big_scene.s1.sel(band=["vv", "vh"]).values.astype("float32")
    low = np.array([PAPER_RANGES[b][0] for b in ("vv", "vh")], "float32")[:, None, None]
    high = np.array([PAPER_RANGES[b][1] for b in ("vv", "vh")], "float32")[:, None, None]

    def run(halo, window):
        plan = inference.WindowFree(window=window, halo=halo, align=8)
        padded = np.pad(raw, ((0, 0), (halo, halo), (halo, halo)), mode="symmetric")
        return inference.predict_block(
            padded,
            plan,
            model.water_probability,
            low=low,
            high=high,
            origin=(0, 0),
            sizes=raw.shape[1:],
        )

    raw = raw[:, :192, :192]
    whole = run(72, 192)
    assert float(np.abs(run(72, 64) - whole).max()) < 1e-4  # 72 px >= the 69 px context
    thin = run(32, 64)
    assert float(np.abs(thin - whole).max()) > 1e-4  # the windows' borders show ...
    assert ((thin >= 0.5) != (whole >= 0.5)).mean() < 0.01  # ... on few pixels' masks
    # segment's default halo is that thin one; halo= the context gives the whole-scene output
    default = big_scene.s1[:, :192, :192].flood.segment(model=compact_student, tile=64)
    np.testing.assert_allclose(default.values, thin, atol=1e-5)
    exact = big_scene.s1[:, :192, :192].flood.segment(model=compact_student, tile=64, halo=69)
    np.testing.assert_allclose(exact.values, whole, atol=1e-4)


def test_segment_is_lazy(tiny_student, big_scene, no_compute):
    lazy = big_scene.chunk({"y": 128, "x": 128}).s1
    for output in ("probability", "mask"):
        result = segment(lazy, model=tiny_student, output=output, **SMALL)
        assert isinstance(result.data, dsa.Array)
        assert_geo_equal(result, big_scene.s1)


def test_mask_output(tiny_student, big_scene):
    s1 = big_scene.s1.copy()
    s1[:, :3, :4] = np.nan
    mask = segment(s1.chunk({"y": 100, "x": 100}), model=tiny_student, output="mask", **SMALL)
    assert mask.dtype == np.uint8 and mask.rio.nodata == 255 and mask.name == "water"
    values = mask.values
    assert (values[:3, :4] == 255).all() and set(np.unique(values)) == {0, 1, 255}
    assert floodxr.metrics.iou(mask, big_scene.water) > 0.9


def test_nan_pixels_and_all_nan_chunks(tiny_student, big_scene):
    s1 = big_scene.s1.copy()
    s1[0, 10, 10] = np.nan  # one band missing: the pixel is invalid
    s1[:, :, 200:] = np.nan  # a whole chunk column of nodata
    result = segment(s1.chunk({"y": 100, "x": 100}), model=tiny_student, **SMALL).values
    assert np.isnan(result[10, 10]) and np.isnan(result[:, 200:]).all()
    assert np.isfinite(result[:, :200]).sum() == 400 * 200 - 1
    empty = segment(
        xr.full_like(s1, np.nan).chunk({"y": 100, "x": 100}), model=tiny_student, **SMALL
    )
    assert np.isnan(empty.values).all()


def test_time_dimension(tiny_student):
    scenes = [synthetic_scene((160, 160), seed=s).s1 for s in (1, 2)]
    cube = xr.concat(scenes, dim="time").assign_coords(time=["2020-01-01", "2020-01-13"])
    result = segment(cube.chunk({"time": 1, "y": 80, "x": 80}), model=tiny_student, **SMALL)
    assert result.dims == ("time", "y", "x") and result.sizes["time"] == 2
    for t, scene in enumerate(scenes):
        single = segment(scene, model=tiny_student, **SMALL)
        np.testing.assert_allclose(result.isel(time=t).values, single.values, atol=1e-5)


def test_dataset_input_and_band_order(tiny_student, big_scene):
    ds = big_scene.s1.to_dataset(dim="band")[["vh", "vv"]]
    from_dataset = ds.flood.segment(model=tiny_student, **SMALL)
    reordered = big_scene.s1.sel(band=["vh", "vv"]).flood.segment(model=tiny_student, **SMALL)
    expected = big_scene.s1.flood.segment(model=tiny_student, **SMALL)
    np.testing.assert_allclose(from_dataset.values, expected.values, atol=1e-6)
    np.testing.assert_allclose(reordered.values, expected.values, atol=1e-6)


def test_threshold_models_go_through_segment(big_scene):
    mask = big_scene.s1.flood.segment(model="otsu", output="mask")
    xr.testing.assert_identical(mask, threshold.otsu(big_scene.s1))
    probability = big_scene.s1.flood.segment(model="otsu-tiled")
    assert probability.dtype == np.float32 and set(np.unique(probability.values)) <= {0.0, 1.0}


def test_bad_inputs(tiny_student, big_scene):
    linear = 10 ** (big_scene.s1 / 10)
    linear.attrs["units"] = "linear"
    with pytest.raises(UnitsError, match="to_db"):
        segment(linear, model=tiny_student)
    unlabelled = linear.copy()
    unlabelled.attrs = {}
    lazy = segment(unlabelled.chunk({"y": 200, "x": 176}), model=tiny_student, **SMALL)
    with pytest.raises(UnitsError, match="linear power"), dask.config.set(scheduler="sync"):
        lazy.compute()
    with pytest.raises(MissingBandError, match=r"expected bands \('vv', 'vh'\)"):
        segment(big_scene.s1.sel(band=["vh"]), model=tiny_student)
    with pytest.raises(InvalidOptionError, match="output"):
        segment(big_scene.s1, model=tiny_student, output="logits")
    with pytest.raises(InvalidOptionError, match="multiple of 16"):
        segment(big_scene.s1, model=tiny_student, tile=100)
    with pytest.raises(InvalidOptionError, match="at least 16 x 16"):
        segment(big_scene.s1.isel(y=slice(0, 10)), model=tiny_student)
    with pytest.raises(floodxr.errors.UnknownModelError, match="available|registered"):
        segment(big_scene.s1, model="nonexistent")


@pytest.mark.parametrize("student", ["tiny_student", "compact_student"])
def test_onnx_engine_matches_torch_and_is_the_default(
    student, request, big_scene, tmp_path, monkeypatch
):
    import shutil

    from floodxr.models import checkpoint, onnx
    from floodxr.segment import _engine

    monkeypatch.setenv("FLOODXR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.safetensors"  # a fresh path: exported into this test's cache
    for source, target in zip(
        checkpoint.paths(request.getfixturevalue(student)), checkpoint.paths(model), strict=True
    ):
        shutil.copy(source, target)
    torch_result = segment(big_scene.s1, model=str(model), engine="torch", **SMALL)
    onnx_result = segment(big_scene.s1, model=str(model), engine="onnx", **SMALL)
    np.testing.assert_allclose(onnx_result.values, torch_result.values, atol=1e-4)
    # windows whose sides are not multiples of 16 (a scene's last row and column of windows):
    # the exported graph has no padding branch, the session pads as the network does
    odd = big_scene.s1.isel(y=slice(3, 190), x=slice(5, 178))
    np.testing.assert_allclose(
        segment(odd, model=str(model), engine="onnx", **SMALL).values,
        segment(odd, model=str(model), engine="torch", **SMALL).values,
        atol=1e-4,
    )
    assert list(tmp_path.glob("cache/onnx/*.onnx"))
    assert floodxr.get_options()["engine"] == "auto"
    assert _engine("auto", model, "cpu") == "onnx"
    # a model that does not export runs with torch, and says why
    monkeypatch.setattr(onnx, "_USABLE", {})
    monkeypatch.setattr(onnx, "_SESSIONS", {})
    monkeypatch.setattr(onnx, "export", lambda *a: (_ for _ in ()).throw(RuntimeError("no op")))
    shutil.rmtree(tmp_path / "cache")
    with pytest.warns(floodxr.errors.FloodxrWarning, match="with torch: .*no op"):
        assert _engine("auto", model, "cpu") == "torch"


def test_an_int8_model_is_used_when_the_checkpoint_has_one(
    compact_student, big_scene, tmp_path, monkeypatch
):
    import shutil

    import torch

    from floodxr import models
    from floodxr.models import checkpoint, onnx
    from floodxr.preprocess import normalize
    from floodxr.segment import _engine

    monkeypatch.setenv("FLOODXR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.safetensors"
    for source, target in zip(
        checkpoint.paths(compact_student), checkpoint.paths(model), strict=True
    ):
        shutil.copy(source, target)
    assert _engine("auto", model, "cpu") == "onnx"
    calibration = [normalize(synthetic_scene((128, 128), seed=s).s1).values[None] for s in range(4)]
    assert onnx.quantize(model, calibration) == tmp_path / "model.int8.onnx"
    with pytest.raises(floodxr.errors.OutputExistsError):
        onnx.quantize(model, calibration)
    assert _engine("auto", model, "cpu") == "onnx-int8"
    fp32 = segment(big_scene.s1, model=str(model), engine="onnx")
    int8 = segment(big_scene.s1, model=str(model))
    assert (
        abs(floodxr.metrics.iou(int8, big_scene.water) - floodxr.metrics.iou(fp32, big_scene.water))
        < 0.02
    )
    # a new temperature (or recorded scores) keeps the network: the int8 model still applies
    loaded = models.load(model)
    models.save(loaded.module, loaded.config.replace(temperature=0.8), model, overwrite=True)
    onnx.load_session(model, threads=1, int8=True)
    # weights changed after quantising: the int8 file is refused, not silently used
    with torch.no_grad():
        next(loaded.module.parameters()).add_(0.01)
    models.save(loaded.module, loaded.config, model, overwrite=True)
    with pytest.raises(floodxr.errors.CheckpointError, match="other weights"):
        onnx.load_session(model, threads=1, int8=True)
    with pytest.warns(floodxr.errors.FloodxrWarning, match="without its int8 model"):
        assert _engine("auto", model, "cpu") == "onnx"


def test_options_apply(tiny_student, big_scene):
    with floodxr.set_options(tile=128, halo=32, batch_size=2):
        optioned = segment(big_scene.s1, model=tiny_student)
    np.testing.assert_allclose(
        optioned.values, segment(big_scene.s1, model=tiny_student, **SMALL).values, atol=1e-5
    )


def test_real_chip_flows_through(shared_data, tiny_student):
    """Real S1Hand format (EPSG:4326, NaN nodata) through segment with a tiny model."""
    chip = s11.open_chip(shared_data, "Nigeria_812045", chunks=256)
    probability = chip.s1.flood.segment(model=tiny_student, tile=256, halo=64)
    assert_geo_equal(probability, chip.s1)
    values = probability.values
    raw_nan = np.isnan(chip.s1.values).any(axis=0)
    assert raw_nan.sum() == 579
    np.testing.assert_array_equal(np.isnan(values), raw_nan)
    score = floodxr.metrics.confusion(probability, chip.label)
    assert score.valid > 200_000 and 0 <= score.iou <= 1
    assert np.isnan(
        segment(
            s11.open_s1(shared_data / "S1Hand" / "Paraguay_34417_S1Hand.tif"), model=tiny_student
        ).values
    ).all()


@pytest.mark.parametrize("student", ["tiny_student", "compact_student"])
def test_a_large_cube_stays_lazy_and_agrees(student, request):
    """A lazily built 2048 x 2048 cube in 512 px chunks with a CRS: lazy, geo kept, equal to the
    unchunked run (every chunk border is crossed by windows from both sides)."""
    side = 2048
    rng = dsa.random.default_rng(3)
    vv = -14 + 4 * rng.standard_normal((side, side), chunks=512, dtype="float32")
    vh = -21 + 4 * rng.standard_normal((side, side), chunks=512, dtype="float32")
    cube = xr.DataArray(
        dsa.stack([vv, vh]),
        dims=("band", "y", "x"),
        coords={
            "band": ["vv", "vh"],
            "y": 5e6 - 10 * np.arange(side),
            "x": 5e5 + 10 * np.arange(side),
        },
        attrs={"units": "dB"},
    ).rio.write_crs("EPSG:32631")
    model = request.getfixturevalue(student)
    with dask.config.set(scheduler=lambda *a, **k: (_ for _ in ()).throw(AssertionError())):
        lazy = segment(cube, model=model)
    assert_geo_equal(lazy, cube)
    assert lazy.rio.crs.to_epsg() == 32631
    whole = segment(cube.compute(), model=model)  # numpy in: one array, computed
    assert isinstance(whole.data, np.ndarray)
    tiled = lazy.values
    assert float(np.nanmax(np.abs(tiled - whole.values))) < 1e-3
    assert ((tiled >= 0.5) != (whole.values >= 0.5)).mean() < 1e-4


def test_a_pixel_gets_the_same_probability_whatever_box_it_is_asked_with(
    compact_student, big_scene
):
    """A stride-8 network's output depends on its input's phase: every scene starts at the
    same phase of its coordinates, so boxes offset by any number of pixels agree inside."""
    from floodxr.models import load

    context = load(compact_student).config.context
    options = {"tile": 128, "halo": context, "engine": "torch"}
    whole = segment(big_scene.s1, model=compact_student, **options)
    for dy, dx in ((3, 5), (8, 1), (13, 22)):
        part = segment(
            big_scene.s1.isel(y=slice(dy, None), x=slice(dx, None)),
            model=compact_student,
            **options,
        )
        inner = {"y": slice(context + 8, -context - 8), "x": slice(context + 8, -context - 8)}
        np.testing.assert_allclose(
            part.isel(inner).values,
            whole.isel(y=slice(dy, None), x=slice(dx, None)).isel(inner).values,
            atol=1e-5,
        )
