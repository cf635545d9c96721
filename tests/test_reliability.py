"""Bad inputs and faults, tried as an adversarial user would: each gets a named floodxr error that
says how to fix it, or a result whose invalid pixels are marked. ``docs/reliability.md`` lists
every case of this module (a test below keeps the two in step)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

import floodxr
from floodxr import errors, metrics, models, preprocess, threshold, train
from floodxr.data import sen1floods11 as s11
from floodxr.data import stac
from floodxr.evaluation import evaluate_split

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
FLOODXR = str(Path(sys.executable).parent / "floodxr")
CASES: list[str] = []


def case(name: str):
    """Register a test as a row of docs/reliability.md."""
    CASES.append(name)
    return lambda test: test


@pytest.fixture(scope="module")
def s1() -> xr.DataArray:
    """A real chip in dB: Nigeria_812045 has NaN pixels of its own."""
    return s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).s1.load()


@pytest.fixture(scope="module")
def nodata_tif(tmp_path_factory, s1) -> Path:
    """The real chip as a GeoTIFF with nodata -9999 declared and a 100 x 100 px hole of it."""
    path = tmp_path_factory.mktemp("nodata") / "s1.tif"
    values = s1.fillna(-9999.0).copy()
    values[:, :100, :100] = -9999.0
    values.attrs = {}
    values.rio.write_nodata(-9999.0, encoded=False).rio.to_raster(path)
    return path


def opened_with_defaults(path: Path) -> xr.DataArray:
    # rioxarray's defaults: nodata stays in the values, declared in attrs['_FillValue']
    return rioxarray.open_rasterio(path).assign_coords(band=["vv", "vh"])


def hole(values: np.ndarray) -> np.ndarray:
    return values[..., :100, :100]


# --- nodata ------------------------------------------------------------------------------------


@case("declared nodata (-9999, rioxarray defaults) in otsu / otsu_tiled / threshold")
@pytest.mark.parametrize("chunks", [None, 128])
@pytest.mark.filterwarnings("ignore:otsu_tiled found no bimodal tile")
def test_declared_nodata_never_moves_a_threshold_nor_becomes_water(nodata_tif, s1, chunks):
    da = opened_with_defaults(nodata_tif)
    da = da if chunks is None else da.chunk({"y": chunks, "x": chunks})
    assert da.rio.nodata == -9999.0
    reference = s1.where(~((s1.y >= s1.y[99]) & (s1.x <= s1.x[99])))
    assert float(threshold.otsu_threshold(da)) == float(threshold.otsu_threshold(reference))
    for mask in (da.flood.otsu(), da.flood.otsu_tiled(), da.flood.threshold(-18.0)):
        values = mask.values
        assert (hole(values) == 255).all() and set(np.unique(values)) <= {0, 1, 255}
        assert (values == 1).any() and (values == 0).any()


@case("declared nodata in segment (DataArray and Dataset, per variable)")
def test_declared_nodata_is_nan_in_segment(nodata_tif, tiny_student):
    da = opened_with_defaults(nodata_tif)
    probability = da.flood.segment(model=tiny_student)
    assert np.isnan(hole(probability.values)).all()
    assert np.isfinite(probability.values[200:, 200:]).all()
    ds = da.to_dataset(dim="band")
    ds["vh"] = ds["vh"].rio.write_nodata(-9999.0, encoded=False)
    ds["vv"] = (
        ds["vv"].where(ds["vv"] != -9999.0, -32768.0).rio.write_nodata(-32768.0, encoded=False)
    )
    from_dataset = ds.flood.segment(model=tiny_student)
    np.testing.assert_array_equal(np.isnan(from_dataset.values), np.isnan(probability.values))


@case("NaN, +inf and -inf pixels (to_db of zero power)")
@pytest.mark.parametrize("chunks", [None, 64])
def test_non_finite_pixels_are_nodata_everywhere(s1, tiny_student, chunks):
    power = preprocess.from_db(s1)
    power[:, :50, :50] = 0.0  # -inf in dB
    db = preprocess.to_db(power)
    db[:, 50:60, :] = np.inf
    db[:, 60:70, :] = np.nan
    db = db if chunks is None else db.chunk({"y": chunks, "x": chunks})
    bad = np.zeros(s1.shape[1:], bool)
    bad[:50, :50] = bad[50:70, :] = True
    for mask in (
        db.flood.otsu(),
        db.flood.otsu_tiled(),
        db.flood.threshold(-18.0),
        db.flood.segment(model=tiny_student, output="mask"),
    ):
        values = mask.values
        assert (values[bad] == 255).all(), mask.attrs.get("floodxr_method")
        assert (values[~bad] != 255).mean() > 0.99
    assert np.isfinite(float(db.flood.otsu_threshold()))
    normalized = db.flood.normalize().values
    assert np.isnan(normalized[:, bad]).all() and np.isfinite(normalized[:, ~bad]).mean() > 0.99


@case("a scene with no valid pixel (all NaN, like Paraguay_34417)")
def test_an_all_nodata_scene_gives_an_all_nodata_map(s1, tiny_student):
    empty = xr.full_like(s1, np.nan)
    assert (empty.flood.otsu().values == 255).all()
    assert np.isnan(float(empty.flood.otsu_threshold()))
    assert np.isnan(empty.flood.segment(model=tiny_student).values).all()


@case("nodata declared by a STAC asset (raster:bands nodata) but not by its file")
def test_a_stac_assets_nodata_is_masked(loopback):
    items = stac.search_s1(
        floodxr.testing.stac.SYNTHETIC_BBOX,
        "2019-09-13",
        catalog=stac.get_catalog("planetary-computer").with_url(loopback.url),
    )
    plain = stac.load_s1(items, bands=["vv"], chunks=256)
    for item in items:
        fields = item.assets["vv"].extra_fields
        fields["raster:bands"] = [{**(fields.get("raster:bands") or [{}])[0], "nodata": 1.0}]
    collection = stac.Collection("sentinel-1-rtc", {"vv": "vv", "vh": "vh"}, units="linear")
    masked = stac.load_s1(list(items), bands=["vv"], chunks=256, collection=collection)
    # linear power 1.0 (0 dB) is this asset's nodata now: exactly those pixels turn NaN
    expected = plain.where(plain != 0.0)
    np.testing.assert_array_equal(np.isnan(masked.values), np.isnan(expected.values))


# --- units -------------------------------------------------------------------------------------

ENTRY_POINTS = {
    "otsu": lambda da, model: da.flood.otsu(),
    "otsu_tiled": lambda da, model: da.flood.otsu_tiled(),
    "threshold": lambda da, model: da.flood.threshold(-18.0),
    "segment": lambda da, model: da.flood.segment(model=model),
    "normalize": lambda da, model: da.flood.normalize(),
}


@case("linear power with units='linear' (attrs), every entry point")
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_linear_units_in_attrs_are_refused_at_call_time(s1, tiny_student, entry):
    power = preprocess.from_db(s1).chunk({"y": 128, "x": 128})
    assert power.attrs["units"] == "linear"
    with pytest.raises(errors.UnitsError, match=rf"{entry} expects .*dB.*'linear'.*to_db"):
        ENTRY_POINTS[entry](power, tiny_student)


@case("linear power or amplitude without units (values), numpy and dask")
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("chunks", [None, 128])
def test_linear_values_are_refused(s1, tiny_student, entry, chunks):
    power = preprocess.from_db(s1)
    power.attrs = {}
    power = power if chunks is None else power.chunk({"y": chunks, "x": chunks})
    with pytest.raises(errors.UnitsError, match=rf"{entry} expects .*dB.*>= 0.*to_db"):
        result = ENTRY_POINTS[entry](power, tiny_student)
        result.values  # noqa: B018 - dask input is checked in each block when computed


@case("linear power whose negative nodata (-9999) would hide it")
def test_negative_nodata_does_not_hide_linear_power(s1):
    power = preprocess.from_db(s1)
    power.attrs = {}
    power[:, :10, :10] = -9999.0
    power = power.rio.write_nodata(-9999.0, encoded=False)
    with pytest.raises(errors.UnitsError, match=">= 0"):
        power.flood.otsu()


@case("undeclared nodata (-9999 in dB values)")
def test_undeclared_nodata_is_named(s1):
    db = s1.copy()
    db[:, :10, :10] = -9999.0
    with pytest.raises(errors.UnitsError, match=r"-9999.*declare it: da.rio.write_nodata"):
        db.flood.otsu()


@case("from_db of data that are not dB")
def test_from_db_refuses_linear_data(s1):
    with pytest.raises(errors.UnitsError, match="already linear"):
        preprocess.from_db(preprocess.from_db(s1))
    unlabelled = preprocess.from_db(s1)
    unlabelled.attrs = {}
    with pytest.raises(errors.UnitsError, match="from_db expects .*>= 0"):
        preprocess.from_db(unlabelled)


# --- geometry ----------------------------------------------------------------------------------


@case("ascending y / descending x written by to_cog and to_zarr")
@pytest.mark.parametrize("flip", ["y", "x", "both"])
def test_writers_put_flipped_arrays_north_up_at_the_right_place(tmp_path, flip):
    mask = floodxr.testing.synthetic_scene((64, 48), seed=1).s1.flood.otsu()
    dims = {"y": ["y"], "x": ["x"], "both": ["y", "x"]}[flip]
    flipped = mask.isel({d: slice(None, None, -1) for d in dims})
    north, other = tmp_path / "north.tif", tmp_path / "flipped.tif"
    mask.flood.to_cog(north)
    flipped.chunk(16).flood.to_cog(other)
    with rasterio.open(north) as a, rasterio.open(other) as b:
        assert a.transform == b.transform and a.bounds == b.bounds
        np.testing.assert_array_equal(a.read(), b.read())
    store = flipped.flood.to_zarr(tmp_path / "flipped.zarr")
    back = xr.open_zarr(store, decode_coords="all", mask_and_scale=False, consolidated=False).water
    assert back.rio.transform() == mask.rio.transform()
    np.testing.assert_array_equal(back.values, mask.values)


@case("area_km2 of a probability, of backscatter, of a grid beyond +-90 degrees")
def test_area_needs_a_mask_on_a_real_grid(s1, tiny_student):
    probability = s1.flood.segment(model=tiny_student)
    with pytest.raises(errors.NotAMaskError, match="probability or backscatter.*threshold"):
        float(probability.flood.area_km2())
    with pytest.raises(errors.NotAMaskError):
        float(s1.sel(band="vh").chunk(128).flood.area_km2())
    mask = s1.flood.otsu()
    assert float(mask.where(mask != 255).flood.area_km2()) == float(mask.flood.area_km2())
    beyond = mask.assign_coords(y=mask.y + 100.0)
    beyond = beyond.rio.write_transform(beyond.rio.transform(recalc=True))
    with pytest.raises(errors.InvalidGridError, match=r"beyond \+-90"):
        beyond.flood.area_km2()


@case("confusion with a label that is not 0 / 1 / -1 (a 0-255 label, a float label)")
def test_labels_must_be_water_codes(s1):
    mask = s1.flood.otsu()
    label = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).label
    for bad in ((label == 1) * 255, label.astype("float32") * 0.5):
        with pytest.raises(errors.InvalidLabelError, match="recode it"):
            mask.flood.confusion(bad)
    as_float = label.astype("float32").where(label != -1)  # NaN invalid: accepted
    assert mask.flood.confusion(as_float) == mask.flood.confusion(label)
    with pytest.raises(errors.InvalidLabelError, match="not probabilities"):
        metrics.confusion(s1.sel(band="vh"), label)


@case("coordinates that are not evenly spaced, written by to_cog")
def test_irregular_coordinates_are_refused_by_writers(tmp_path):
    mask = floodxr.testing.synthetic_scene((64, 48), seed=1).s1.flood.otsu()
    shuffled = mask.isel(y=np.random.default_rng(0).permutation(64))
    with pytest.raises(errors.InvalidGridError, match="'y' coordinate is not evenly spaced"):
        shuffled.flood.to_cog(tmp_path / "water.tif")
    assert not list(tmp_path.iterdir())


@case("a band listed twice; normalize with a range whose low is not below its high")
def test_repeated_bands_and_empty_ranges_are_refused(s1, tiny_student):
    doubled = xr.concat([s1, s1.sel(band=["vv"])], dim="band")
    with pytest.raises(errors.MissingBandError, match=r"\['vv'\] appear more than once"):
        doubled.flood.segment(model=tiny_student)
    with pytest.raises(errors.InvalidOptionError, match="low < high"):
        s1.flood.normalize(ranges={"vv": (0.0, 0.0)})
    with pytest.raises(errors.InvalidOptionError, match=r"must be \(low, high\), got \('low'"):
        s1.flood.normalize(ranges={"vv": ("low", 0.0)})


@case("Sentinel-2 with nodata 0 declared (rioxarray defaults) in indices and weak labels")
def test_s2_nodata_is_invalid_in_indices(tmp_path):
    s2 = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).s2.fillna(0).astype("int16")
    s2[:, :20, :20] = 0
    s2.attrs = {}
    path = tmp_path / "s2.tif"
    s2.rio.write_nodata(0, encoded=False).rio.to_raster(path)
    raw = rioxarray.open_rasterio(path).assign_coords(band=list(s2["band"].values))
    assert raw.rio.nodata == 0
    assert np.isnan(raw.flood.ndwi().values[:20, :20]).all()
    assert (raw.flood.weak_labels().values[:20, :20] == -1).all()


# --- errors: STAC ------------------------------------------------------------------------------


class Canned:
    """A loopback HTTP server answering each path with a fixed (status, type, body)."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str, bytes]] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0].rstrip("/") or "/"
                status, kind, body = answers.get(path, (404, "text/plain", b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Canned:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def landing(url: str) -> tuple[int, str, bytes]:
    return (
        200,
        "application/json",
        json.dumps(
            {
                "type": "Catalog",
                "id": "api",
                "description": "d",
                "stac_version": "1.0.0",
                "conformsTo": [
                    "https://api.stacspec.org/v1.0.0/core",
                    "https://api.stacspec.org/v1.0.0/item-search",
                ],
                "links": [
                    {"rel": "self", "href": url},
                    {"rel": "root", "href": url},
                    {
                        "rel": "search",
                        "href": f"{url}/search",
                        "type": "application/geo+json",
                        "method": "GET",
                    },
                ],
            }
        ).encode(),
    )


def profile(url: str) -> stac.Catalog:
    return stac.get_catalog("planetary-computer").with_url(url)


HTML = (200, "text/html", b"<html><body>Sign in</body></html>")


@case("a STAC API whose landing page or search answer is not JSON")
@pytest.mark.filterwarnings("ignore:The requested method 'POST'")
def test_non_json_stac_answers_are_named():
    with Canned() as server, floodxr.set_options(http_retries=0):
        server.answers["/"] = HTML
        with pytest.raises(errors.StacApiError, match="not STAC JSON.*open.*API's root"):
            stac.search_s1((0, 0, 1, 1), "2019-09", catalog=profile(server.url))
    with Canned() as server, floodxr.set_options(http_retries=0):
        server.answers.update({"/": landing(server.url), "/search": HTML})
        with pytest.raises(errors.StacApiError, match="not STAC JSON.*search"):
            stac.search_s1((0, 0, 1, 1), "2019-09", catalog=profile(server.url))


@case("STAC features without geometry")
@pytest.mark.filterwarnings("ignore:The requested method 'POST'")
def test_items_without_geometry_are_named():
    with Canned() as server, floodxr.set_options(http_retries=0):
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "no-footprint",
            "geometry": None,
            "properties": {"datetime": "2019-09-13T05:59:50Z"},
            "links": [],
            "assets": {},
            "collection": "sentinel-1-rtc",
        }
        # a GET-only search link, as many APIs have
        search = json.dumps({"type": "FeatureCollection", "features": [item], "links": []})
        server.answers.update(
            {"/": landing(server.url), "/search": (200, "application/geo+json", search.encode())}
        )
        with pytest.raises(errors.StacApiError, match="without a geometry.*no-footprint"):
            stac.search_s1((0, 0, 1, 1), "2019-09", catalog=profile(server.url))


@case("malformed datetimes ('2019-13-45', 'last week', an int, an end before the start)")
@pytest.mark.parametrize(
    "value",
    [
        "2019-13-45",
        "last week",
        20190917,
        "2019-09-30/2019-09-01",
        "2019-09-01/2019-09-15/2019-09-30",
    ],
)
def test_malformed_datetimes_are_refused_before_any_request(value):
    # the catalogue URL points nowhere: the datetime must be refused before a connection
    with pytest.raises(errors.InvalidOptionError, match="datetime"):
        stac.search_s1((0, 0, 1, 1), value, catalog=profile("http://127.0.0.1:9"))


@case("load_s1 with resolution 0, < 0 or a string; a bbox far from the items")
def test_load_arguments_are_checked(loopback):
    items = stac.search_s1(
        floodxr.testing.stac.SYNTHETIC_BBOX, "2019-09-13", catalog=profile(loopback.url)
    )
    for resolution, error in (
        (0, errors.InvalidOptionError),
        (-10, errors.InvalidOptionError),
        ("10", errors.NotANumberError),
        (True, errors.NotANumberError),
    ):
        with pytest.raises(error, match="resolution"):
            stac.load_s1(items, resolution=resolution)
    with pytest.raises(errors.NoItemsError, match=r"does not overlap any of the 2 items"):
        stac.load_s1(items, bbox=(100.0, 10.0, 100.1, 10.1))
    with pytest.raises(errors.InvalidOptionError, match="lon/lat order"):
        stac.load_s1(items, bbox=(39.2, -0.45, 39.4, 100.0))


@case("a pixel read that fails inside a dask task (asset URL or file named)")
def test_failed_reads_name_the_url_or_the_file(loopback, tmp_path):
    items = stac.search_s1(
        floodxr.testing.stac.SYNTHETIC_BBOX, "2019-09-13", catalog=profile(loopback.url)
    )
    for item in items:
        item.assets["vv"].href = item.assets["vv"].href.replace(".tif", "-gone.tif")
    cube = stac.load_s1(items, bands=["vv"])
    with pytest.raises(errors.AssetReadError, match=r"-gone\.tif.*drop its item"):
        cube.values  # noqa: B018
    truncated = tmp_path / "cut_S1Hand.tif"
    source = (s11.SAMPLE_DIR / "S1Hand" / f"{s11.SAMPLE_CHIP}_S1Hand.tif").read_bytes()
    truncated.write_bytes(source[: len(source) // 2])
    lazy = s11.open_s1(truncated, chunks=256)
    with pytest.raises(errors.AssetReadError, match=r"cut_S1Hand\.tif.*truncated or corrupt"):
        lazy.values  # noqa: B018


# --- errors: models ----------------------------------------------------------------------------


@case("model='' or None; a bool or a string where a number is expected")
def test_models_and_numbers_are_checked(s1):
    for model in ("", None, 3):
        with pytest.raises(errors.UnknownModelError, match="registered name"):
            s1.flood.segment(model=model)
    with pytest.raises(errors.NotANumberError, match="nbins must be an integer, got True"):
        s1.flood.otsu(nbins=True)
    with pytest.raises(errors.NotANumberError, match="threshold.*got '-18'"):
        s1.flood.threshold("-18")
    with pytest.raises(errors.InvalidOptionError, match="'tile' must be an integer"):
        s1.flood.segment(model="student", tile="320")
    with pytest.raises(errors.InvalidOptionError, match="'halo' must be an integer"):
        floodxr.set_options(halo=True)
    with pytest.raises(errors.NotANumberError, match="tile_size"):
        s1.flood.otsu_tiled(tile_size=64.0)


@case("a corrupted ONNX cache file")
def test_a_corrupted_onnx_cache_is_exported_again(tmp_path, monkeypatch):
    from floodxr.models import onnx

    monkeypatch.setenv("FLOODXR_CACHE", str(tmp_path / "cache"))
    config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16)
    weights = models.save(config.build(), config, tmp_path / "net")
    first = onnx.load_session(weights, threads=1)
    batch = np.random.default_rng(0).random((1, 2, 64, 64), dtype=np.float32)
    expected = first.water_probability(batch)
    (cached,) = onnx.cache_dir().glob("*.onnx")
    cached.write_bytes(cached.read_bytes()[:1000])  # a truncated copy
    onnx._SESSIONS.clear()
    with pytest.warns(errors.FloodxrWarning, match="cannot be loaded.*exporting it again"):
        again = onnx.load_session(weights, threads=1)
    np.testing.assert_allclose(again.water_probability(batch), expected, atol=1e-6)


@case("a checkpoint whose JSON reorders or rescales the bands")
def test_a_checkpoint_json_cannot_reorder_the_bands(tmp_path):
    config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16)
    weights = models.save(config.build(), config, tmp_path / "net")
    data = json.loads((tmp_path / "net.json").read_text())
    data["bands"] = ["vh", "vv"]
    (tmp_path / "net.json").write_text(json.dumps(data))
    with pytest.raises(errors.CheckpointError, match=r"reorders the input bands.*\['vv', 'vh'\]"):
        models.read_config(weights)
    data["bands"] = ["vv", "vh"]
    data["normalization"]["vh"] = [-25.0, 0.0]
    (tmp_path / "net.json").write_text(json.dumps(data))
    with pytest.raises(errors.CheckpointError, match="changes the normalisation of bands"):
        models.read_config(weights)


@case("an unknown encoder name")
def test_unknown_encoders_are_named_with_the_known_ones():
    with pytest.raises(errors.UnknownEncoderError, match=r"'resnet19'.*did you mean.*resnet18"):
        models.STUDENT.replace(encoder="resnet19")
    with pytest.raises(errors.UnknownEncoderError, match="tu-mobilenetv3_large_100"):
        train.CPU.replace(encoder="tu-nonsense_net")


# --- errors: files -----------------------------------------------------------------------------


def split_folder(tmp_path: Path, lines: bytes) -> Path:
    root = tmp_path / "data"
    shutil.copytree(s11.SAMPLE_DIR, root, ignore=shutil.ignore_patterns("*.md"))
    (root / "splits" / "flood_test_data.csv").write_bytes(lines)
    return root


@case("a binary split file; a split listing a chip twice")
def test_split_files_are_checked(tmp_path):
    chip = s11.SAMPLE_CHIP
    line = f"{chip}_S1Hand.tif,{chip}_LabelHand.tif\n".encode()
    root = split_folder(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(errors.DataLayoutError, match="not a text split list"):
        s11.read_split(root, "test")
    (root / "splits" / "flood_test_data.csv").write_bytes(line + line)
    with pytest.raises(errors.DataLayoutError, match=rf"lists chip '{chip}' twice \(lines 1 and 2"):
        s11.read_split(root, "test")


@case("a truncated chip in floodxr evaluate (named; the others scored with --skip-unreadable)")
def test_a_truncated_chip_is_named_and_can_be_skipped(tmp_path, shared_data):
    root = tmp_path / "data"
    shutil.copytree(shared_data, root)
    broken = root / "S1Hand" / "Spain_6860600_S1Hand.tif"
    broken.write_bytes(broken.read_bytes()[:40_000])
    done = subprocess.run(
        [FLOODXR, "evaluate", "--data", str(root), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (error,) = [line for line in done.stderr.splitlines() if "error" in line]
    assert error.startswith("floodxr evaluate: error: chip 'Spain_6860600'")
    assert "--skip-unreadable" in error
    done = subprocess.run(
        [FLOODXR, "evaluate", "--data", str(root), "--no-progress", "--json", "--skip-unreadable"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(done.stdout)
    assert result["n_chips"] == 8 and [f["chip"] for f in result["failed"]] == ["Spain_6860600"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.MissingChipsWarning)
        full = evaluate_split(shared_data, progress=False)
    kept = [row for row in full["chips"] if row["chip"] != "Spain_6860600"]
    assert result["chips"] == kept


@case("writers pointed at a folder, at a file, under a file; a user's own *.partial")
def test_writers_refuse_paths_they_cannot_write_and_never_touch_partials(tmp_path):
    mask = floodxr.testing.synthetic_scene((64, 48), seed=1).s1.flood.otsu()
    folder, note = tmp_path / "folder", tmp_path / "note.txt"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    note.write_text("mine")
    with pytest.raises(errors.OutputPathError, match="is a folder, and a GeoTIFF is a file"):
        mask.flood.to_cog(folder, overwrite=True)
    with pytest.raises(errors.OutputPathError, match="is a file, not a Zarr store"):
        mask.flood.to_zarr(note, overwrite=True)
    with pytest.raises(errors.OutputPathError, match="folder that is not a Zarr store"):
        mask.flood.to_zarr(folder, overwrite=True)
    for write in (mask.flood.to_cog, mask.flood.to_zarr):
        with pytest.raises(errors.OutputPathError, match="note.txt' is a file, so"):
            write(note / "out")
    assert (folder / "keep.txt").read_text() == "mine" and note.read_text() == "mine"
    # a user's own files named like partial outputs are never deleted nor overwritten
    mine = [
        tmp_path / "water.zarr.partial",
        tmp_path / "water.tif.partial.tif",
        tmp_path / "water.tif.cog.partial",
    ]
    for path in mine:
        path.write_text("mine")
    mask.flood.to_zarr(tmp_path / "water.zarr")
    mask.flood.to_cog(tmp_path / "water.tif")
    assert all(path.read_text() == "mine" for path in mine)
    # an error while computing leaves nothing behind
    failing = mask.copy(data=mask.chunk(16).data.map_blocks(_fail, dtype="uint8"))
    before = sorted(p.name for p in tmp_path.iterdir())
    for write, name in ((failing.flood.to_cog, "late.tif"), (failing.flood.to_zarr, "late.zarr")):
        with pytest.raises(RuntimeError, match="boom"):
            write(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _fail(block: np.ndarray, block_info=None) -> np.ndarray:
    if block_info and block_info[0]["chunk-location"] == (2, 2):
        raise RuntimeError("boom")
    return block


@case("floodxr demo --out FILE/sub")
def test_demo_into_a_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("mine")
    done = subprocess.run(
        [FLOODXR, "demo", "--out", str(tmp_path / "file" / "sub")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.search(r"file' is a file, so .*sub' cannot be created", done.stderr)


# --- configurations and the command ------------------------------------------------------------


@case("lr: 1e-3, weight_decay: 1e-4 in YAML and --set settings.lr=1e-3")
def test_yaml_numbers_are_read_as_people_write_them(tmp_path):
    from floodxr.train.config import load_config

    path = tmp_path / "teacher.yaml"
    path.write_text(
        "stage: teacher\nout: runs/t\ntrain: [{kind: synthetic, scenes: 2}]\n"
        "settings:\n  base: cpu\n  lr: 1e-3\n  weight_decay: 1e-4\n"
    )
    config = load_config(path, ["settings.momentum=9e-1"])
    assert config.settings.momentum == 0.9
    assert config.settings.lr == (0.001,) and config.settings.weight_decay == (0.0001,)
    assert load_config(path, ["settings.lr=1e-2"]).settings.lr == (0.01,)
    with pytest.raises(errors.InvalidOptionError, match="settings.lr must be a number, got 'fast'"):
        load_config(path, ["settings.lr=fast"])
    with pytest.raises(errors.InvalidOptionError, match="steps must be a positive integer"):
        load_config(path, ["settings.steps=1e3"])


@case("floodxr basin without a reference, then basin-report; --reference-mask naming no file")
def test_basin_without_reference_reports_and_a_missing_reference_is_named(tmp_path):
    from distributed import Client
    from shapely.geometry import box

    from floodxr import basin
    from floodxr.testing.stac import serve_synthetic

    store = tmp_path / "lake.zarr"
    with serve_synthetic() as (catalog, _), Client(processes=False) as client:
        basin.run(
            {"lake": box(-0.05, 39.02, -0.02, 39.04)},
            datetime="2019-09",
            catalog=catalog,
            store=store,
            client=client,
            progress=False,
        )
    done = subprocess.run(
        [FLOODXR, "basin-report", str(store)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3 and "lake" in done.stdout
    basins = tmp_path / "basins.geojson"
    basins.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "lake"},
                        "geometry": box(-0.05, 39.02, -0.02, 39.04).__geo_interface__,
                    }
                ],
            }
        )
    )
    done = subprocess.run(
        [
            FLOODXR,
            "basin",
            "--basins",
            str(basins),
            "--datetime",
            "2019-09",
            "--catalog",
            "http://127.0.0.1:9",
            "--store",
            str(tmp_path / "b.zarr"),
            "--reference-mask",
            str(tmp_path / "before.tif"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "before.tif': no such file" in done.stderr
    assert "dashboard" not in done.stdout  # refused before a cluster started
    assert not (tmp_path / "b.zarr").exists()


def test_every_case_is_in_the_reliability_table():
    text = DOC.read_text()
    missing = [name for name in CASES if f"| {name} |" not in text]
    assert not missing, missing


def test_no_raw_warnings_on_good_input(s1, tiny_student):
    with warnings.catch_warnings():
        warnings.simplefilter("error", errors.FloodxrWarning)
        s1.flood.otsu().values  # noqa: B018
        s1.flood.segment(model=tiny_student).values  # noqa: B018
