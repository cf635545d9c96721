"""Faults: kills, Ctrl-C, unwritable folders, corrupt models, absent devices (issue 24).

Every file floodxr writes goes through :func:`floodxr.writers.atomic`; these tests kill the
real ``floodxr map`` at several moments and check that every file under its final name is whole
and that running the same command again completes the map.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import floodxr
from floodxr import errors, terrain
from floodxr.errors import (
    CheckpointError,
    InvalidGridError,
    InvalidLayerError,
    InvalidOptionError,
    OutputExistsError,
    OutputPathError,
    WrongTypeError,
)
from floodxr.writers import atomic

from conftest import VALENCIA_MAP

FLOODXR = str(Path(sys.executable).with_name("floodxr"))


def map_command(url: str, out: Path) -> list[str]:
    return [FLOODXR, "map", *VALENCIA_MAP, "--catalog", url, "--out", str(out)]


def in_process(capsys, *args: str) -> tuple[int, str]:
    """``floodxr ARGS`` run in this process (no interpreter start-up): (status, stderr)."""
    from floodxr.cli import main

    capsys.readouterr()
    status = main(list(args))
    return status, capsys.readouterr().err


def assert_whole(path: Path) -> None:
    """Read ``path`` completely the way a user would open it; fails on a truncated file."""
    suffix = path.suffix
    if suffix == ".tif":
        with rasterio.open(path) as src:
            src.read()
            for level in src.overviews(1):
                src.read(1, out_shape=(src.height // level, src.width // level))
    elif suffix == ".parquet":
        gpd.read_parquet(path)
    elif suffix == ".png":
        with Image.open(path) as image:
            image.load()
    elif suffix == ".json":
        json.loads(path.read_text())
    elif suffix == ".csv":
        pd.read_csv(path)
    else:
        raise AssertionError(f"unexpected output {path.name}")


# --- the writer itself -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    payload=st.binary(max_size=4096),
    fail=st.booleans(),
    existing=st.one_of(st.none(), st.binary(min_size=1, max_size=64)),
    overwrite=st.booleans(),
)
def test_atomic_leaves_the_old_file_or_the_whole_new_one(
    tmp_path_factory, payload, fail, existing, overwrite
):
    folder = tmp_path_factory.mktemp("atomic")
    target = folder / "out.bin"
    if existing is not None:
        target.write_bytes(existing)
    try:
        with atomic(target, overwrite=overwrite) as partial:
            assert partial.parent == folder and partial.name.startswith(".out.bin.")
            partial.write_bytes(payload[: len(payload) // 2])
            if fail:
                raise RuntimeError("killed half way")
            partial.write_bytes(payload)
    except RuntimeError:
        assert fail
    except OutputExistsError:
        assert existing is not None and not overwrite
    expected = (
        payload
        if not fail and (existing is None or overwrite)
        else existing  # untouched (or still absent)
    )
    assert (target.read_bytes() if target.exists() else None) == expected
    assert [p.name for p in folder.iterdir()] == (["out.bin"] if expected is not None else [])


def test_a_store_is_replaced_only_by_a_store_and_whole(tmp_path):
    scene = floodxr.testing.synthetic_scene((64, 64), seed=0, chunks=32)
    store = scene.s1.flood.otsu().flood.to_zarr(tmp_path / "water.zarr")
    again = scene.s1.flood.otsu().flood.to_zarr(store, overwrite=True)
    assert again == store and sorted(p.name for p in tmp_path.iterdir()) == ["water.zarr"]
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        scene.s1.flood.otsu().flood.to_zarr(store)


def test_an_unwritable_place_is_named(capsys):
    scene = floodxr.testing.synthetic_scene((32, 32), seed=0)
    # /proc takes no new files, whoever runs the test (root included)
    with pytest.raises(OutputPathError, match="cannot write '/proc/floodxr-test/water.tif'"):
        scene.s1.flood.otsu().flood.to_cog("/proc/floodxr-test/water.tif")
    status, stderr = in_process(capsys, "demo", "--out", "/proc/floodxr-test")
    assert status == 2 and "cannot write '/proc/floodxr-test'" in stderr


# --- floodxr map under kills and Ctrl-C ------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(valencia_map):
    return valencia_map


def kill_at_event(command: list[str], folder: Path, nth: int) -> int | None:
    """Run ``command`` and SIGKILL it at the ``nth`` change it makes in ``folder`` (a hidden
    partial file appearing: mid-write; a final file landing or being replaced: between two
    writes); returns the exit status when it finished first, None when it was killed."""

    def state() -> set[tuple[str, int]]:
        try:
            return {(p.name, p.stat().st_mtime_ns) for p in folder.iterdir()}
        except FileNotFoundError:  # not created yet, or a partial renamed while listed
            return set()

    seen = state()
    events = 0
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        now = state()
        events += len(now - seen)
        seen |= now
        if events >= nth:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return None
        time.sleep(0.002)
    return process.returncode


def test_a_killed_map_leaves_whole_files_and_a_rerun_completes_it(
    loopback, uninterrupted, tmp_path
):
    whole, _ = uninterrupted
    out = tmp_path / "map"
    command = map_command(loopback.url, out)
    # successive runs are killed at their 1st, 11th, 21st ... change to the folder, so the kills
    # walk through the whole map: mid-write and between writes, in the reference and in the
    # pass; the folder is the same each time, and each run resumes what the last one left
    kills = 0
    for nth in range(1, 100, 10):
        status = kill_at_event(command, out, nth)
        for path in out.iterdir() if out.exists() else []:
            if not path.name.startswith("."):
                assert_whole(path)
        if status is not None:
            assert status == 0
            break
        kills += 1
    else:
        pytest.fail("the map never finished")
    assert kills >= 2, f"only {kills} kills: the map made fewer changes than it writes files"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in whole.iterdir()), "stale partial files were left"
    for path in out.iterdir():
        assert_whole(path)
    pd.testing.assert_frame_equal(pd.read_csv(out / "areas.csv"), pd.read_csv(whole / "areas.csv"))
    for name in ("reference_water.tif", *(p.name for p in whole.glob("*_flood.tif"))):
        with rasterio.open(out / name) as a, rasterio.open(whole / name) as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_a_finished_map_is_not_redone_and_another_request_is_refused(
    loopback, uninterrupted, capsys
):
    out, _ = uninterrupted
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = subprocess.run(map_command(loopback.url, out), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    changed = sorted(n for n, t in stamps.items() if (out / n).stat().st_mtime_ns != t)
    assert changed == ["areas.csv", "floodxr-map.json"]  # the passes were read, not redone
    other = map_command(loopback.url, out)
    other[other.index("--datetime") + 1] = "2019-09-20/2019-09-29"
    status, stderr = in_process(capsys, *other[1:])
    assert status == 2 and "differs in datetime" in stderr and "--overwrite" in stderr


@pytest.mark.parametrize("when", ["during the imports", "while mapping"])
def test_ctrl_c_prints_one_line_and_exits_130(loopback, tmp_path, when):
    out = tmp_path / "map"
    process = subprocess.Popen(
        map_command(loopback.url, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if when == "while mapping":
        while not (out / "floodxr-map.json").exists():  # past the imports and the checks
            assert process.poll() is None, process.communicate()
            time.sleep(0.01)
    else:
        time.sleep(0.2)  # the package's imports take longer than this
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.strip().splitlines() == [
        "floodxr map: interrupted; outputs already written are whole"
    ]


# --- models and devices ----------------------------------------------------------------------


def test_a_corrupt_model_is_named_before_any_request(tmp_path, capsys):
    weights = Path(floodxr.models.resolve("student"))
    (tmp_path / "bad.json").write_bytes(weights.with_suffix(".json").read_bytes())
    (tmp_path / "bad.safetensors").write_bytes(weights.read_bytes()[:1000])
    command = map_command("http://127.0.0.1:9", tmp_path / "out")
    status, stderr = in_process(capsys, *command[1:], "--model", str(tmp_path / "bad.safetensors"))
    assert status == 2 and "bad.safetensors" in stderr
    assert "not a readable safetensors file" in stderr and "cannot connect" not in stderr


@pytest.fixture
def corrupt_int8(tmp_path):
    source = Path(floodxr.models.resolve("student"))
    for suffix in (".safetensors", ".json"):
        (tmp_path / f"s{suffix}").write_bytes(source.with_suffix(suffix).read_bytes())
    garbage = np.random.default_rng(0).bytes(2048)
    (tmp_path / "s.int8.onnx").write_bytes(garbage)
    return tmp_path / "s.safetensors", garbage


def test_a_corrupt_int8_model_falls_back_with_auto_and_is_refused_when_asked(
    corrupt_int8, monkeypatch, tmp_path
):
    weights, garbage = corrupt_int8
    monkeypatch.setenv("FLOODXR_CACHE", str(tmp_path / "cache"))
    scene = floodxr.testing.synthetic_scene((96, 96), seed=1)
    with pytest.warns(floodxr.FloodxrWarning, match="is not a readable ONNX model"):
        auto = scene.s1.flood.segment(model=str(weights)).compute()
    fp32 = scene.s1.flood.segment(model=str(weights), engine="onnx").compute()
    np.testing.assert_allclose(auto.values, fp32.values, atol=1e-6)
    with pytest.raises(CheckpointError, match=r"s\.int8\.onnx' is not a readable ONNX model"):
        scene.s1.flood.segment(model=str(weights), engine="onnx-int8").compute()
    assert (weights.parent / "s.int8.onnx").read_bytes() == garbage  # never replaced


@pytest.mark.skipif(
    __import__("torch").cuda.device_count() > 0, reason="this machine has a CUDA GPU"
)
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_an_absent_gpu_is_named_at_the_call(device):
    scene = floodxr.testing.synthetic_scene((64, 64), seed=0, chunks=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: the call is refused outright
        with pytest.raises(InvalidOptionError, match=f"device='{device}'.*use device='cpu'"):
            scene.s1.flood.segment(device=device)
    with pytest.raises(InvalidOptionError, match="use device='cpu'"):
        floodxr.models.load("student", device=device)


def test_a_device_name_is_checked_by_its_form():
    with pytest.raises(InvalidOptionError, match="'cuda:N'"):
        floodxr.set_options(device="cuda1")
    with floodxr.set_options(device="cuda:0"):
        pass  # a well-formed name is kept; whether the machine has it is checked at the call


# --- geometry from coordinates (class 1) -----------------------------------------------------


@pytest.fixture(scope="module")
def water_mask():
    scene = floodxr.testing.synthetic_scene((120, 90), seed=3)
    return scene.water.astype("uint8").rio.write_nodata(255)


def fresh(da):
    """``da`` with its stored transform rewritten from its coordinates, as if built anew."""
    return da.rio.write_transform(da.rio.transform(recalc=True))


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(
    step=st.integers(1, 4),
    start=st.integers(0, 3),
    flip_y=st.booleans(),
    flip_x=st.booleans(),
)
def test_a_slice_is_measured_on_its_own_grid(
    water_mask, tmp_path_factory, step, start, flip_y, flip_x
):
    part = water_mask.isel(
        y=slice(start, None, step) if not flip_y else slice(-1 - start, None, -step),
        x=slice(start, None, step) if not flip_x else slice(-1 - start, None, -step),
    )
    # rioxarray keeps the parent's GeoTransform through isel: floodxr must not use it
    assert part.flood.area_km2().item() == pytest.approx(fresh(part).flood.area_km2().item())
    assert part.flood.area_km2().item() == pytest.approx(
        water_mask.flood.area_km2().item(), rel=0.25
    )
    polygons = part.flood.to_polygons()
    assert polygons.area_km2.sum() == pytest.approx(part.flood.area_km2().item(), rel=1e-6)
    path = part.flood.to_cog(tmp_path_factory.mktemp("cog") / "part.tif")
    with rasterio.open(path) as src:
        west, east = sorted(float(v) for v in part.x.values[[0, -1]])
        south, north = sorted(float(v) for v in part.y.values[[0, -1]])
        half = 5.0 * step
        assert tuple(src.bounds) == pytest.approx(
            (west - half, south - half, east + half, north + half)
        )


@pytest.mark.parametrize("flips", [{"y"}, {"x"}, {"y", "x"}])
def test_a_scene_stored_upside_down_is_seen_north_up_by_the_network(tiny_student, flips):
    scene = floodxr.testing.synthetic_scene((96, 80), seed=5)
    reverse = {d: slice(None, None, -1) for d in flips}
    upright = scene.s1.flood.segment(model=tiny_student)
    stored = scene.s1.isel(reverse).flood.segment(model=tiny_student)
    assert stored.y.values.tolist() == scene.s1.isel(reverse).y.values.tolist()
    # mirrored, the network gives probabilities up to 0.6 apart; upright, the same numbers
    np.testing.assert_allclose(stored.isel(reverse).values, upright.values, atol=1e-6)


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(dy=st.integers(-30, 30), dx=st.integers(-30, 30))
def test_a_layer_is_laid_on_the_map_by_its_coordinates(water_mask, dy, dx):
    # an exclusion layer on the same lattice, shifted by (dy, dx) pixels
    rng = np.random.default_rng(abs(dy * 61 + dx))
    flags = rng.random(water_mask.shape) < 0.3
    layer = water_mask.copy(data=flags).assign_coords(
        y=water_mask.y - 10.0 * dy, x=water_mask.x + 10.0 * dx
    )
    got = water_mask.flood.exclude(layer).values
    # by hand: map pixel (r, c) is layer pixel (r - dy, c - dx)
    expected = np.full(water_mask.shape, 255, "uint8")
    rows, cols = water_mask.shape
    for r in range(max(0, dy), min(rows, rows + dy)):
        sel = slice(max(0, dx), min(cols, cols + dx))
        hide = flags[r - dy, sel.start - dx : sel.stop - dx]
        expected[r, sel] = np.where(hide, 255, water_mask.values[r, sel])
    np.testing.assert_array_equal(got, expected)


def test_a_layer_elsewhere_or_on_another_grid_is_refused(water_mask):
    far = water_mask.assign_coords(x=water_mask.x + 10_000.0) > 0  # 10 km east
    with pytest.raises(InvalidGridError, match="does not overlap the map"):
        water_mask.flood.exclude(far)
    half = water_mask.assign_coords(x=water_mask.x + 5.0) > 0  # half a pixel off
    with pytest.raises(InvalidGridError, match="offset from the map's by 0.500 px"):
        water_mask.flood.exclude(half)
    coarse = water_mask[::2, ::2] > 0
    with pytest.raises(InvalidGridError, match="20 px along 'y', the map 10"):
        water_mask.flood.exclude(coarse)
    other = water_mask.rio.write_crs("EPSG:32634") > 0
    with pytest.raises(InvalidGridError, match="EPSG:32634.*reproject_match"):
        water_mask.flood.exclude(other)


# --- ancillary layers under the nodata rules (class 2) ---------------------------------------


def valley(shape=(60, 50), nodata=None):
    from floodxr.grid import coords, north_up

    box = north_up(shape, (500_000.0, 5_000_000.0), 20.0, "EPSG:32631")
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    z = np.abs(cols - shape[1] // 2) + 0.05 * (shape[0] - rows) + 50.0
    dem = xr.DataArray(z.astype("float32"), dims=("y", "x"), coords=coords(box))
    return dem.rio.write_crs(box.crs.to_wkt())


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(
    holes=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 49)), min_size=1, max_size=40),
    spelling=st.sampled_from(["nan", "inf", "-32768 declared", "-9999 declared", "all"]),
)
def test_dem_nodata_is_never_an_elevation(holes, spelling):
    dem = valley()
    values = dem.values.copy()
    rows, cols = zip(*holes, strict=True)
    fill = {"nan": np.nan, "inf": np.inf, "-32768 declared": -32768.0, "-9999 declared": -9999.0}
    if spelling == "all":
        values[:] = np.nan
    else:
        values[rows, cols] = fill[spelling]
    dem = dem.copy(data=values)
    if "declared" in spelling:
        dem = dem.rio.write_nodata(fill[spelling])
    invalid = ~np.isfinite(values) | (values < -1000)
    height = terrain.hand(dem, drain_km2=0.05).values
    assert np.isnan(height[invalid]).all()
    assert (height[~invalid] >= 0).all() and (height[~invalid] < 100).all()
    excluded = terrain.exclusion(dem, orbit_state="ascending", drain_km2=0.05).values
    assert excluded[invalid].all()  # unknown terrain: the map says nothing there


def test_undeclared_nodata_in_a_dem_is_named():
    dem = valley()
    values = dem.values.copy()
    values[:5, :5] = -32768.0
    with pytest.raises(InvalidLayerError, match=r"most often -32768.*write_nodata\(-32768\)"):
        terrain.hand(dem.copy(data=values))


def test_occurrence_and_reference_water_follow_the_nodata_rules():
    water = valley().copy(data=np.ones((60, 50), "uint8")).rio.write_nodata(255)
    occurrence = water.astype("uint8").copy(data=np.full((60, 50), 95, "uint8"))
    occurrence.values[:10] = 255  # unseen by the occurrence layer
    classes = terrain.split_water(water, occurrence=occurrence.rio.write_nodata(255)).values
    assert (classes[:10] == 255).all() and (classes[10:] == terrain.PERMANENT).all()
    with pytest.raises(InvalidLayerError, match=r"the water occurrence .* most often 255"):
        terrain.split_water(water, occurrence=occurrence.rio.write_nodata(None))
    lazy = occurrence.rio.write_nodata(None).chunk(20)
    with pytest.raises(InvalidLayerError, match="outside 0..100"):
        terrain.split_water(water, occurrence=lazy).compute()  # dask: checked per block
    probability = water.astype("float32").copy(data=np.full((60, 50), 0.7, "float32"))
    with pytest.raises(InvalidLayerError, match="fractional values.*p >= 0.5"):
        terrain.split_water(water, permanent=probability)
    with pytest.raises(WrongTypeError, match="has dtype <U"):
        terrain.split_water(water, permanent=water.astype(str))


# --- STAC metadata not taken at face value (class 3) -----------------------------------------


@pytest.fixture(scope="module")
def rtc_items(loopback):
    from floodxr.data import stac
    from floodxr.testing.stac import SYNTHETIC_BBOX

    catalog = stac.get_catalog("planetary-computer").with_url(loopback.url)
    found = stac.search_s1(SYNTHETIC_BBOX, "2019-09-25", catalog=catalog)
    reference = stac.load_s1(found, mosaic=True).compute()
    return list(found), found.collection, reference


def edited(items, **raster):
    """Copies of ``items`` whose VV and VH assets carry ``raster`` in their raster:bands."""
    copies = [item.clone() for item in items]
    for item in copies:
        for key in ("vv", "vh"):
            item.assets[key].extra_fields["raster:bands"] = [dict(raster)]
    return copies


def test_an_items_unit_that_contradicts_the_collection_is_refused_by_name(rtc_items):
    from floodxr.data import stac

    items, collection, _ = rtc_items
    assert collection.units == "linear"
    with pytest.raises(errors.UnitsError, match=r"item '.*': asset 'vv' declares unit 'dB'"):
        stac.load_s1(edited(items, unit="dB"), collection=collection)
    same = stac.load_s1(edited(items, unit="linear"), collection=collection, mosaic=True)
    assert same.shape == rtc_items[2].shape  # an agreeing unit is fine


def test_a_raster_bands_field_that_is_not_a_number_is_named(rtc_items):
    from floodxr.data import stac

    items, collection, _ = rtc_items
    with pytest.raises(errors.UnitsError, match="declares scale 'ten' .* not a number"):
        stac.load_s1(edited(items, scale="ten"), collection=collection)


def test_a_scale_declared_only_by_the_items_is_applied(rtc_items):
    from floodxr.data import stac

    items, collection, reference = rtc_items
    assert not collection.rescale  # the collection says nothing of a scale
    scaled = stac.load_s1(edited(items, scale=2.0), collection=collection, mosaic=True).compute()
    # linear power x 2 is +3.0103 dB wherever there is data
    np.testing.assert_allclose(scaled.values, reference.values + 10 * np.log10(2.0), atol=1e-4)


def test_a_quicklook_is_never_read_as_a_band(rtc_items):
    from floodxr.data import discovery, stac

    items, collection, _ = rtc_items
    pictures = [item.clone() for item in items]
    for item in pictures:
        item.assets["vh"].media_type = "image/png"
        item.assets["vh"].roles = ["overview"]
    with pytest.raises(errors.MissingAssetError, match=r"asset 'vh' is a picture"):
        stac.load_s1(pictures, collection=collection)
    tiff = "image/tiff; application=geotiff; profile=cloud-optimized"
    described = discovery.describe(
        "my-s1",
        "s1",
        {
            "vv": {"type": tiff, "roles": ["data"], "raster:bands": [{"unit": "dB"}]},
            "vh": {"type": "image/png", "roles": ["overview"]},  # a quicklook keyed 'vh'
            "backscatter-vh": {
                "type": tiff,
                "roles": ["data"],
                "sar:polarizations": ["VH"],
                "raster:bands": [{"unit": "dB"}],
            },
        },
    )
    assert described.assets == {"vv": "vv", "vh": "backscatter-vh"}


def frame(when, orbit, platform="sentinel-1a"):
    import pystac

    props = {"sat:relative_orbit": orbit, "platform": platform}
    return pystac.Item(f"{platform}-{orbit}-{when:%Y%m%dT%H%M%S}", None, None, when, props)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    starts=st.lists(st.integers(0, 3 * 86_400), min_size=1, max_size=5, unique=True),
    lengths=st.lists(st.integers(1, 8), min_size=5, max_size=5),
    orbits=st.lists(st.sampled_from([8, 110, 154]), min_size=5, max_size=5),
)
def test_frames_are_grouped_into_passes_by_orbit_and_time_gap(starts, lengths, orbits):
    from datetime import datetime, timedelta, timezone

    from floodxr.data.search import passes

    # passes of one orbit at least an hour apart, whatever the day they fall on; frames 25 s apart
    starts = sorted(starts)
    keep = [s for i, s in enumerate(starts) if i == 0 or s - starts[i - 1] >= 3_600]
    origin = datetime(2019, 9, 24, 22, 0, tzinfo=timezone.utc)  # midnights fall inside passes
    truth = [
        [frame(origin + timedelta(seconds=start + 25 * k), orbits[i]) for k in range(lengths[i])]
        for i, start in enumerate(keep)
    ]
    shuffled = [f for frames in truth for f in frames][::-1]
    found = passes(shuffled)
    assert [[f.id for f in p] for p in found] == [[f.id for f in p] for p in truth]


def test_a_pass_across_midnight_is_one_and_two_passes_of_a_day_are_two():
    from datetime import datetime, timezone

    from floodxr.data.search import passes

    night = [
        frame(datetime(2019, 9, 24, 23, 59, 40, tzinfo=timezone.utc), 8),
        frame(datetime(2019, 9, 25, 0, 0, 5, tzinfo=timezone.utc), 8),
    ]
    assert [len(p) for p in passes(night)] == [2]
    day = [
        frame(datetime(2019, 9, 25, 5, 50, tzinfo=timezone.utc), 8),
        frame(datetime(2019, 9, 25, 17, 50, tzinfo=timezone.utc), 8),
    ]
    assert [len(p) for p in passes(day)] == [1, 1]


# --- the command line: dates and sizes checked before any request (class 4) ------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--datetime", "2019-09-20/2019-09-30", "--reference", "2019-09-25/2019-10-05"],
            "must end before the start of the mapped dates",
        ),
        (["--datetime", "2019-09", "--reference", "2019-10"], "pre-flood passes"),
        (["--datetime", "2019-09", "--reference", "2019-08-15/.."], "must end before"),
        (
            ["--datetime", "2019-09", "--bbox", "-170", "-50", "170", "70"],
            "Gpx per pass at 10 m",
        ),
        (
            ["--datetime", "2019-09", "--bbox", "-10", "35", "5", "45", "--resolution", "1"],
            "--resolution 19 or coarser",
        ),
    ],
)
def test_dates_and_sizes_are_refused_before_any_request(tmp_path, capsys, args, message):
    command = ["map", "--bbox", "-0.05", "39.02", "-0.02", "39.04", *args]
    status, stderr = in_process(
        capsys, *command, "--catalog", "http://127.0.0.1:9", "--out", str(tmp_path / "out")
    )
    assert status == 2 and message in stderr, stderr
    assert "cannot connect" not in stderr and len(stderr.strip().splitlines()) == 1


def test_a_basin_reference_after_its_dates_is_refused(tmp_path):
    from shapely.geometry import box

    from floodxr import basin

    lake = {"lake": box(-0.05, 39.02, -0.02, 39.04)}
    with pytest.raises(InvalidOptionError, match="must end by the end of the mapped dates"):
        basin.check_inputs(
            lake, datetime="2019-09", store=tmp_path / "s", reference_dates="2019-10"
        )
    # its first passes may be its own reference (the documented basin run)
    basin.check_inputs(
        lake, datetime="2019-09", store=tmp_path / "s", reference_dates="2019-09-01/2019-09-15"
    )


# --- smaller ones (class 6) ------------------------------------------------------------------


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    name=st.text(min_size=1, max_size=12).filter(
        lambda t: any(c in t for c in "/\\:") or t.startswith((".", " ", "-"))
    )
)
def test_a_basin_id_that_is_not_a_plain_name_is_refused(name):
    from shapely.geometry import box

    from floodxr.basin import read_basins

    with pytest.raises(errors.BasinInputError, match="cannot name a Zarr group"):
        read_basins({name: box(0.0, 39.0, 0.1, 39.1)})


def test_basin_ids_missing_from_a_table_are_named_and_plain_names_pass():
    import geopandas
    from shapely.geometry import box

    from floodxr.basin import read_basins

    square = box(0.0, 39.0, 0.1, 39.1)
    for missing in (None, float("nan")):
        frame = geopandas.GeoDataFrame({"id": [missing]}, geometry=[square], crs=4326)
        with pytest.raises(errors.BasinInputError, match="basin 0 has no id"):
            read_basins(frame)
    names = ["Río Ebro (alto)", "HYBAS_2060000010", "7", "lake-1.2"]
    frame = geopandas.GeoDataFrame({"name": names}, geometry=[square] * 4, crs=4326)
    frame = frame.rename_geometry("geom")  # a GeoDataFrame's geometry under another name
    assert [b.id for b in read_basins(frame, id_column="name")] == names


@pytest.mark.filterwarnings("ignore::floodxr.errors.MissingChipsWarning")
def test_a_label_on_another_grid_is_named_by_its_file(tmp_path, shared_data, capsys):
    import shutil

    import rioxarray

    chip = "Nigeria_812045"
    for folder in ("S1Hand", "LabelHand"):
        (tmp_path / folder).mkdir()
    shutil.copy(shared_data / "S1Hand" / f"{chip}_S1Hand.tif", tmp_path / "S1Hand")
    label = rioxarray.open_rasterio(shared_data / "LabelHand" / f"{chip}_LabelHand.tif")
    label[:, :256, :256].rio.to_raster(tmp_path / "LabelHand" / f"{chip}_LabelHand.tif")
    shutil.copytree(shared_data / "splits", tmp_path / "splits")
    status, stderr = in_process(capsys, "evaluate", "--data", str(tmp_path), "--no-progress")
    assert status == 2, stderr
    line = stderr.strip().splitlines()[-1]
    assert f"LabelHand/{chip}_LabelHand.tif' is not on the grid of" in line
    assert "'y': 256" in line and "None" not in line


def test_a_mask_is_not_backscatter_and_a_label_is_a_dataarray():
    scene = floodxr.testing.synthetic_scene((64, 64), seed=0)
    mask = scene.s1 > -18
    for method in (mask.flood.otsu, mask.flood.segment, mask.flood.normalize):
        with pytest.raises(WrongTypeError, match="got a boolean array"):
            method()
    prediction = scene.s1.flood.otsu()
    with pytest.raises(WrongTypeError, match=r"label must be an xarray DataArray, got Dataset"):
        floodxr.metrics.confusion(prediction, scene.water.to_dataset(name="w"))
    with pytest.raises(WrongTypeError, match="got ndarray; wrap it"):
        floodxr.metrics.confusion(prediction, scene.water.values)


def test_a_layer_loaded_like_a_flipped_scene_is_on_its_coordinates(loopback):
    from floodxr.data import stac
    from floodxr.data.load import load_layer
    from floodxr.testing.stac import SYNTHETIC_BBOX

    catalog = stac.get_catalog("planetary-computer").with_url(loopback.url)
    scene = stac.load_s1(stac.search_s1(SYNTHETIC_BBOX, "2019-09-25", catalog=catalog), mosaic=True)
    like = scene.isel(time=0, band=0)
    upright = load_layer("cop-dem-glo-30", like=like, catalog=catalog).compute()
    flipped_like = like.isel(y=slice(None, None, -1), x=slice(None, None, -1))
    flipped = load_layer("cop-dem-glo-30", like=flipped_like, catalog=catalog).compute()
    assert flipped.y.values.tolist() == flipped_like.y.values.tolist()
    np.testing.assert_array_equal(
        flipped.sortby(["y", "x"]).values, upright.sortby(["y", "x"]).values
    )
    with pytest.raises(InvalidOptionError, match="north-up grid"):
        stac.load(
            stac.search_s1(SYNTHETIC_BBOX, "2019-09-25", catalog=catalog),
            kind="s1",
            like=flipped_like,
        )
