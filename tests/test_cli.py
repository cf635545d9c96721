"""The ``floodxr`` command, run as users run it: the installed console script in a subprocess."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from skimage.filters import threshold_otsu

import floodxr

FLOODXR = str(Path(sys.executable).parent / "floodxr")


def run(*args, cwd=None, check=True):
    done = subprocess.run(
        [FLOODXR, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def independent_scores(root: Path, split_csv: Path, band: int, thresholds=None):
    """Aggregate IoU straight from rasterio + scikit-image, without floodxr."""
    intersection = union = 0
    per_chip = {}
    for line in split_csv.read_text().splitlines():
        s1_name, label_name = line.split(",")
        s1_path, label_path = root / "S1Hand" / s1_name, root / "LabelHand" / label_name
        if not (s1_path.exists() and label_path.exists()):
            continue
        chip = s1_name.removesuffix("_S1Hand.tif")
        with rasterio.open(s1_path) as src:
            values = src.read(band)
        with rasterio.open(label_path) as src:
            label = src.read(1)
        finite = np.isfinite(values)
        if thresholds is not None:
            cut = thresholds[chip]
        elif np.unique(values[finite]).size >= 2:
            cut = threshold_otsu(values[finite])
        else:
            per_chip[chip] = None
            continue
        water = values < cut
        valid = finite & (label != -1)
        i = int((water & (label == 1) & valid).sum())
        u = int(((water | (label == 1)) & valid).sum())
        intersection, union = intersection + i, union + u
        per_chip[chip] = i / u if u else None
    return intersection / union, per_chip


@pytest.mark.parametrize("band", ["vh", "vv"])
def test_evaluate_otsu_matches_independent_computation(shared_data, band):
    result = json.loads(
        run(
            "evaluate",
            "--method",
            "otsu",
            "--band",
            band,
            "--data",
            shared_data,
            "--split",
            "test",
            "--json",
        ).stdout
    )
    expected, per_chip = independent_scores(
        shared_data, shared_data / "splits" / "flood_test_data.csv", 1 if band == "vv" else 2
    )
    assert result["method"] == "otsu" and result["n_chips"] == 9 and result["n_missing"] == 81
    assert result["aggregate_iou"] == pytest.approx(expected, abs=1e-9)
    for row in result["chips"]:
        if per_chip.get(row["chip"]) is None:
            assert row["iou"] is None
        else:
            assert row["iou"] == pytest.approx(per_chip[row["chip"]], abs=1e-9)
        assert set(row) == {"chip", "iou", "intersection", "union", "tp", "fp", "fn", "tn", "ece"}
        assert row["intersection"] == row["tp"] and row["ece"] is None  # a baseline: no ECE
    ious = [r["iou"] for r in result["chips"] if r["iou"] is not None]
    assert result["mean_iou"] == pytest.approx(np.mean(ious))


def test_evaluate_event_threshold_uses_metadata(shared_data):
    result = json.loads(
        run(
            "evaluate",
            "--method",
            "event-threshold",
            "--data",
            shared_data,
            "--json",
            "--no-progress",
        ).stdout
    )
    events = floodxr.data.sen1floods11.read_events(shared_data / "Sen1Floods11_Metadata.geojson")
    aliases = {"Mekong": "Cambodia"}
    thresholds = {}
    for line in (shared_data / "splits" / "flood_test_data.csv").read_text().splitlines():
        chip = line.split(",")[0].removesuffix("_S1Hand.tif")
        prefix = chip.rsplit("_", 1)[0]
        thresholds[chip] = events[aliases.get(prefix, prefix)]["VH_thresh"]
    expected, _ = independent_scores(
        shared_data, shared_data / "splits" / "flood_test_data.csv", 2, thresholds
    )
    assert result["aggregate_iou"] == pytest.approx(expected, abs=1e-9)


def test_evaluate_fixed_threshold_fits_nothing(shared_data):
    result = json.loads(
        run(
            "evaluate",
            "--method",
            "fixed",
            "--threshold",
            "-18",
            "--data",
            shared_data,
            "--json",
            "--no-progress",
        ).stdout
    )
    split = shared_data / "splits" / "flood_test_data.csv"
    chips = [
        line.split(",")[0].removesuffix("_S1Hand.tif") for line in split.read_text().splitlines()
    ]
    expected, _ = independent_scores(shared_data, split, 2, dict.fromkeys(chips, -18.0))
    assert result["threshold_db"] == -18.0
    assert result["aggregate_iou"] == pytest.approx(expected, abs=1e-9)
    missing = run("evaluate", "--method", "fixed", "--data", shared_data, check=False)
    assert missing.returncode != 0 and "needs a threshold in dB" in missing.stderr


def _write_unseen_chips(root: Path) -> Path:
    """A Sen1Floods11-like folder of chips floodxr has never seen (new events, EPSG:4326)."""
    for folder in ("S1Hand", "LabelHand", "splits"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(42)
    names = ["Atlantis_101", "Atlantis_202", "Lemuria_7", "Lemuria_8"]
    for k, name in enumerate(names[:3]):
        scene = floodxr.testing.synthetic_scene((96, 128), seed=k)
        s1 = scene.s1.values.copy()
        s1[:, :5, :7] = np.nan
        label = scene.water.values.astype("int16")
        flipped = rng.random(label.shape) < 0.05  # hand labels disagree with radar here and there
        label[flipped] = 1 - label[flipped]
        label[-4:, :] = -1
        transform = from_origin(10.0 + k, 45.0, 8.983e-05, 8.983e-05)
        profile = {
            "driver": "GTiff",
            "height": 96,
            "width": 128,
            "crs": "EPSG:4326",
            "transform": transform,
        }
        with rasterio.open(
            root / "S1Hand" / f"{name}_S1Hand.tif",
            "w",
            count=2,
            dtype="float32",
            nodata=np.nan,
            **profile,
        ) as dst:
            dst.write(s1)
        with rasterio.open(
            root / "LabelHand" / f"{name}_LabelHand.tif", "w", count=1, dtype="int16", **profile
        ) as dst:
            dst.write(label[None])
    split = root / "splits" / "flood_test_data.csv"
    split.write_text("".join(f"{n}_S1Hand.tif,{n}_LabelHand.tif\n" for n in names))
    features = [
        {"type": "Feature", "geometry": None, "properties": {"location": loc, "VH_thresh": cut}}
        for loc, cut in (("Atlantis", -23.0), ("Lemuria", -21.5))
    ]
    (root / "Sen1Floods11_Metadata.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return split


@pytest.mark.parametrize("method", ["otsu", "event-threshold", "otsu-tiled"])
def test_evaluate_on_chips_never_seen(tmp_path, method):
    split = _write_unseen_chips(tmp_path)
    done = run("evaluate", "--method", method, "--data", tmp_path, "--json")
    result = json.loads(done.stdout)
    assert "1 of 4 chips" in done.stderr  # the absent chip is counted, not fatal
    assert result["n_chips"] == 3 and result["n_missing"] == 1
    if method == "otsu-tiled":
        assert 0.8 < result["aggregate_iou"] <= 1
        return
    thresholds = None
    if method == "event-threshold":
        thresholds = {f"Atlantis_{n}": -23.0 for n in (101, 202)} | {"Lemuria_7": -21.5}
    expected, _ = independent_scores(tmp_path, split, 2, thresholds)
    assert result["aggregate_iou"] == pytest.approx(expected, abs=1e-9)


def test_evaluate_table_output(shared_data):
    out = run("evaluate", "--method", "otsu-tiled", "--data", shared_data, "--no-progress").stdout
    assert "aggregate_iou" in out and "India_900498" in out and "n/a" in out


@pytest.mark.parametrize("command", [[], ["evaluate"], ["demo"]])
def test_help(command):
    assert "usage: floodxr" in run(*command, "--help").stdout


def test_cli_errors_are_clear(tmp_path, shared_data):
    done = run("evaluate", "--data", tmp_path / "absent", check=False)
    assert done.returncode == 2 and "S1Hand/<chip>_S1Hand.tif" in done.stderr
    done = run(
        "evaluate",
        "--method",
        "event-threshold",
        "--band",
        "vv",
        "--data",
        shared_data,
        check=False,
    )
    assert done.returncode == 2 and "--band vh" in done.stderr
    done = run("evaluate", "--method", "magic", "--data", shared_data, check=False)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_demo_writes_map_and_picture_and_scores(tmp_path):
    done = run("demo", "--out", tmp_path / "out")
    assert "flooded area:" in done.stdout and "km2" in done.stdout and "IoU" in done.stdout
    assert "method student (student.safetensors)" in done.stdout
    tif, png = tmp_path / "out" / "flood_map.tif", tmp_path / "out" / "flood_map.png"
    with rasterio.open(tif) as src:
        mask = src.read(1)
        assert src.crs.to_epsg() == 4326 and src.nodata == 255 and src.dtypes[0] == "uint8"
    assert set(np.unique(mask)) <= {0, 1, 255} and (mask == 1).any()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    iou = float(done.stdout.split("hand label: ")[-1].split()[0])
    otsu = float(done.stdout.split("global Otsu on VH: ")[-1].split(")")[0])
    assert 0 < iou < 1 and 0 < otsu < 1
    again = run("demo", "--out", tmp_path / "out", check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert run("demo", "--out", tmp_path / "out", "--overwrite").returncode == 0
