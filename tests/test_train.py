"""floodxr.train: data from chunked cubes, augmentations, losses, resumable stages, the claim."""

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import dask
import numpy as np
import pytest
import torch
import xarray as xr
from safetensors.torch import load_file, save_file
from zarr.storage import LocalStore

import floodxr
from floodxr import models, train
from floodxr.data.synthetic import paired_scene, write_world
from floodxr.errors import (
    DataLayoutError,
    InvalidOptionError,
    MissingBandError,
    RunMismatchError,
)

#: A network small enough for a step in a fraction of a second on 2 cores.
TINY = train.CPU.replace(
    encoder="tu-lcnet_100",
    decoder_channels=16,
    crop=64,
    batch_size=4,
    steps=6,
    eval_every=3,
    checkpoint_every=2,
)


@pytest.fixture(scope="module")
def world():
    return train.synthetic_source(4, seed=21, size=128)


# ---------------------------------------------------------------- losses


def test_edge_weights_cover_both_sides_of_the_edge_and_ignore_invalid():
    target = torch.zeros(1, 20, 20, dtype=torch.long)
    target[:, 5:15, 5:15] = 1
    target[:, 0, :] = -1
    weights = train.edge_weights(target, width=2, edge_weight=4.0)
    assert weights[0, 10, 10] == 1.0  # deep inside the water
    assert weights[0, 10, 19] == 1.0  # far out on land
    assert weights[0, 10, 5] == 4.0 and weights[0, 10, 6] == 4.0  # inner edge band
    assert weights[0, 10, 4] == 4.0 and weights[0, 10, 3] == 4.0  # outer edge band
    assert weights[0, 10, 2] == 1.0
    assert (weights[0, 0] == 0).all()  # invalid


def test_cross_entropy_ignores_invalid_pixels_and_weights_edges():
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[:, :, 8:] = 1
    logits = torch.randn(1, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    base = train.edge_weighted_cross_entropy(logits, target, width=0)
    masked = target.clone()
    masked[:, :4] = -1
    changed = logits.clone()
    changed[:, :, :4] = 100.0 * torch.tensor([1.0, -1.0])[:, None, None]  # wild, but invalid
    assert train.edge_weighted_cross_entropy(changed, masked, width=0) == pytest.approx(
        train.edge_weighted_cross_entropy(logits, masked, width=0).item()
    )
    plain = torch.nn.functional.cross_entropy(logits, target)
    assert base.item() == pytest.approx(plain.item(), rel=1e-6)
    wrong_at_edge = logits.clone()
    wrong_at_edge[:, :, :, 7:9] = torch.tensor([5.0, -5.0])[None, :, None, None]
    assert train.edge_weighted_cross_entropy(
        wrong_at_edge, target, width=1, edge_weight=5.0
    ) > train.edge_weighted_cross_entropy(wrong_at_edge, target, width=1, edge_weight=1.0)


def test_distillation_loss_is_cross_entropy_to_soft_targets_on_valid_pixels():
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(2, 2, 8, 8, generator=generator)
    teacher = torch.randn(2, 2, 8, 8, generator=generator)
    valid = torch.ones(2, 8, 8, dtype=torch.bool)
    valid[:, :, :3] = False
    expected = -(torch.softmax(teacher, 1) * torch.log_softmax(student, 1)).sum(1)[valid].mean()
    assert train.distillation_loss(student, teacher, valid).item() == pytest.approx(
        expected.item(), rel=1e-6
    )
    hot = teacher * 3
    t2 = train.distillation_loss(student, hot, valid, temperature=2.0)
    p = torch.softmax(hot / 2, 1)
    manual = -(p * torch.log_softmax(student / 2, 1)).sum(1)[valid].mean() * 4
    assert t2.item() == pytest.approx(manual.item(), rel=1e-6)


# ---------------------------------------------------------------- data


class CountingStore(LocalStore):
    """A Zarr store on disk that records every key read from it (in a class-wide list: zarr
    makes read-only copies of the store)."""

    reads: list[str] = []

    async def get(self, key, prototype, byte_range=None):
        CountingStore.reads.append(key)
        return await super().get(key, prototype, byte_range)


def test_crops_read_only_the_chunks_they_touch(tmp_path):
    store = write_world(tmp_path / "world.zarr", 3, seed=5, shape=(256, 256), chunks=64)
    assert isinstance(train.zarr_source(store).scenes[0].image.data, dask.array.Array)
    counting = CountingStore(store)
    source = train.cube_source(xr.open_zarr(counting, consolidated=False), name="world")
    dataset = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        crop=48,
        batch_size=2,
        augment=train.Augment.none(),
        min_valid=0.0,
    )
    for step in range(3):
        CountingStore.reads.clear()
        item = dataset[(step, 0)]
        chunks = {k for k in CountingStore.reads if k.startswith("image/c/")}
        # a 48 px window touches 1 to 4 chunks of 64 px, of one scene: 48 chunks in the store
        assert 1 <= len(chunks) <= 4, chunks
        assert len({k.split("/")[2] for k in chunks}) == 1  # one time step
        assert item["image"].shape == (2, 48, 48)


def test_a_crop_is_a_pure_function_of_step_and_slot(world):
    dataset = train.CropDataset((world,), bands=("vv", "vh"), crop=64, batch_size=4, seed=3)
    again = train.CropDataset((world,), bands=("vv", "vh"), crop=64, batch_size=4, seed=3)
    other = train.CropDataset((world,), bands=("vv", "vh"), crop=64, batch_size=4, seed=4)
    torch.testing.assert_close(dataset[(7, 1)]["image"], again[(7, 1)]["image"])
    assert not torch.equal(dataset[(7, 1)]["image"], dataset[(8, 1)]["image"])
    assert not torch.equal(dataset[(7, 1)]["image"], other[(7, 1)]["image"])


def test_worker_processes_give_the_same_batches(world):
    dataset = train.CropDataset((world,), bands=("vv", "vh"), crop=64, batch_size=4, seed=1)
    alone = list(train.loader(dataset, start=2, stop=5, num_workers=0))
    pooled = list(train.loader(dataset, start=2, stop=5, num_workers=2))
    assert len(alone) == len(pooled) == 3
    for a, b in zip(alone, pooled, strict=True):
        torch.testing.assert_close(a["image"], b["image"])
        torch.testing.assert_close(a["target"], b["target"])


def test_batches_are_drawn_equally_from_two_sources():
    first = train.synthetic_source(2, seed=31, size=96, name="first")
    second = train.synthetic_source(2, seed=32, size=96, name="second")
    dataset = train.CropDataset(
        (first, second), bands=("vv", "vh"), target=None, crop=32, batch_size=6
    )
    assert [dataset.source_of(slot).name for slot in range(6)] == ["first"] * 3 + ["second"] * 3
    with pytest.raises(InvalidOptionError, match="cannot be shared equally by 2 sources"):
        train.CropDataset((first, second), bands=("vv", "vh"), batch_size=5)


def test_mostly_nodata_crops_are_skipped():
    scene = paired_scene((128, 128), seed=2)
    image = scene.image.copy()
    image[:, :, :80] = np.nan  # only a 48 px strip on the right has data
    source = train.Source("holes", (train.Scene("holes", image, label=scene.label),))
    keep = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        crop=32,
        batch_size=2,
        augment=train.Augment.none(),
        min_valid=0.4,
        tries=30,
    )
    every = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        crop=32,
        batch_size=2,
        augment=train.Augment.none(),
        min_valid=0.0,
    )
    kept = [keep[(s, 0)]["valid"].float().mean().item() for s in range(12)]
    anything = [every[(s, 0)]["valid"].float().mean().item() for s in range(12)]
    assert min(kept) >= 0.4
    assert min(anything) < 0.4  # the same draws without the rule do land in the hole
    item = keep[(0, 0)]
    assert (item["target"][~item["valid"]] == -1).all()  # invalid inputs are never targets


def test_geometry_is_shared_and_jitter_reaches_only_the_model_input():
    scene = paired_scene((160, 160), seed=5, water_fraction=0.3)  # 12 dB water/land contrast
    source = train.Source("s", (train.Scene("s", scene.image, label=scene.water.astype("int8")),))
    bands = ("vv", "vh", "B02", "B03", "B04", "B08")
    jittered = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        teacher_bands=bands,
        crop=64,
        batch_size=2,
        augment=train.Augment(s1_jitter=(0.1, 0.1)),
    )
    clean = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        teacher_bands=bands,
        crop=64,
        batch_size=2,
        augment=train.Augment(s1_jitter=(0.0, 0.0)),
    )
    a, b = jittered[(3, 1)], clean[(3, 1)]
    torch.testing.assert_close(a["teacher"], b["teacher"])  # the teacher never sees jitter
    torch.testing.assert_close(a["target"], b["target"])
    assert not torch.allclose(a["image"], b["image"])
    torch.testing.assert_close(b["image"], b["teacher"][:2])
    # the (flipped, rescaled) target still lies on the (flipped, rescaled) image: water is dark
    vh, target = b["teacher"][1], b["target"]
    if (target == 1).any() and (target == 0).any():
        assert vh[target == 1].median() < vh[target == 0].median()


def test_speckle_resampling_adds_unit_mean_speckle_to_the_model_input_only():
    scene = paired_scene((160, 160), seed=4)
    source = train.Source("s", (train.Scene("s", scene.image, label=scene.water.astype("int8")),))
    bands = ("vv", "vh", "B02", "B03", "B04", "B08")
    calm = train.Augment.none()
    looks = 10.0
    speckled = train.CropDataset(
        (source,),
        bands=("vv", "vh"),
        teacher_bands=bands,
        crop=128,
        batch_size=1,
        augment=replace(calm, s1_speckle=looks),
    )
    clean = train.CropDataset(
        (source,), bands=("vv", "vh"), teacher_bands=bands, crop=128, batch_size=1, augment=calm
    )
    a, b = speckled[(0, 0)], clean[(0, 0)]
    torch.testing.assert_close(a["teacher"], b["teacher"])  # the teacher never sees it
    # away from the clipping limits the added term is 10 log10(g), g ~ Gamma(L, 1/L): its mean
    # in dB is 10 (digamma(L) - ln L) / ln 10 and its sd 10 sqrt(trigamma(L)) / ln 10
    from scipy.special import digamma, polygamma

    width = np.array([20.0, 30.0])[:, None, None]  # VV, VH normalisation ranges in dB
    inside = ((b["image"] > 0.35) & (b["image"] < 0.65)).numpy()
    added = ((a["image"] - b["image"]).numpy() * width)[inside]
    mean = 10 * (digamma(looks) - np.log(looks)) / np.log(10)
    sd = 10 * np.sqrt(polygamma(1, looks)) / np.log(10)
    assert added.size > 5000
    assert abs(added.mean() - mean) < 5 * sd / np.sqrt(added.size)
    assert abs(added.std() / sd - 1) < 0.05
    with pytest.raises(floodxr.errors.InvalidOptionError, match="s1_speckle=0"):
        train.Augment(s1_speckle=0)


def test_sources_read_real_chips_and_cubes(shared_data, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", floodxr.errors.MissingChipsWarning)
        hand = train.sen1floods11_source(shared_data, "test")
    names = [s.name for s in hand.scenes]
    assert "India_900498" in names and len(names) == 9
    india = hand.scenes[names.index("India_900498")]
    assert india.bands == ("vv", "vh", "B02", "B03", "B04", "B08")
    with pytest.raises(MissingBandError, match="lack bands"):
        train.CropDataset((hand,), bands=train.stages.TEACHER_BANDS, batch_size=2)
    # a weakly-labelled folder laid out like Sen1Floods11's WeakLabeled (real files)
    weak_root = tmp_path / "WeakLabeled"
    (weak_root / "S1Weak").mkdir(parents=True)
    (weak_root / "S2IndexLabelWeak").mkdir()
    for chip in ("India_900498", "Spain_7370579"):
        shutil.copy(
            shared_data / "S1Hand" / f"{chip}_S1Hand.tif",
            weak_root / "S1Weak" / f"{chip}_S1Weak.tif",
        )
        shutil.copy(
            shared_data / "LabelHand" / f"{chip}_LabelHand.tif",
            weak_root / "S2IndexLabelWeak" / f"{chip}_S2IndexLabelWeak.tif",
        )
    weak = train.sen1floods11_weak_source(weak_root)
    assert [s.name for s in weak.scenes] == ["India_900498", "Spain_7370579"]
    dataset = train.CropDataset(
        (weak,), bands=("vv", "vh"), target="weak_label", crop=64, batch_size=2
    )
    assert dataset[(0, 0)]["target"].max() <= 1
    with pytest.raises(DataLayoutError, match="S1Weak/ and S1OtsuLabelWeak/"):
        train.sen1floods11_weak_source(weak_root, labels="s1otsu")
    # a paired cube as pairing.load_pair returns it: (time, band, y, x)
    cube = xr.concat([paired_scene((64, 64), seed=k).image for k in range(2)], dim="time")
    scenes = train.cube_source(cube, name="pairs").scenes
    assert [s.name for s in scenes] == ["pairs[time=0]", "pairs[time=1]"]
    assert scenes[0].label is None
    written = train.cube_source(cube.to_dataset(name="paired"))  # as DataArray.to_zarr leaves it
    assert len(written.scenes) == 2
    with pytest.raises(DataLayoutError, match="expected an 'image' variable"):
        train.cube_source(xr.Dataset({"a": cube, "b": cube}))


def test_source_specs_name_the_fix():
    with pytest.raises(InvalidOptionError, match="kind 'sentinel' is not one of"):
        train.source_from_spec({"kind": "sentinel"})
    with pytest.raises(InvalidOptionError, match="bad or missing keys"):
        train.source_from_spec({"kind": "zarr"})
    with pytest.raises(DataLayoutError, match="no Zarr store"):
        train.source_from_spec({"kind": "zarr", "path": "/nonexistent.zarr"})


# ---------------------------------------------------------------- stages


def test_teacher_then_student_write_loadable_checkpoints(world, tmp_path):
    result = train.teacher(
        world, valid=world, out=tmp_path / "teacher", config=TINY, progress=False
    )
    teacher = models.load(result.best)
    assert teacher.config.bands == ("vv", "vh", "B02", "B03", "B04", "B08")
    assert teacher.config.scores["valid_iou"] == pytest.approx(result.best_iou)
    # validation is the one scoring path: segment() on the checkpoint, as a user would run it
    # (with eager torch: an ONNX export per candidate would cost more than the scoring)
    from floodxr.evaluation import score

    with floodxr.set_options(engine="torch"):
        assert score(result.best, world.scenes, progress=False).aggregate_iou == result.best_iou
    assert teacher.config.provenance["stage"] == "teacher"
    run = result.runs[0].out
    for name in ("metrics.csv", "curves.png", "last.safetensors", "last.json", "state.safetensors"):
        assert (run / name).is_file(), name
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + TINY.steps and rows[3].split(",")[3]  # step 3 was validated
    student = train.student(
        [world, world],
        teacher=result.best,
        valid=world,
        out=tmp_path / "student",
        config=TINY,
        progress=False,
    )
    loaded = models.load(student.best)
    assert loaded.config.bands == ("vv", "vh")
    assert loaded.config.provenance["teacher"] == str(teacher.path)
    probability = world.scenes[0].image.flood.segment(model=str(student.best), tile=64, halo=16)
    assert probability.dims == ("y", "x") and float(probability.max()) <= 1
    with pytest.raises(InvalidOptionError, match="a teacher reads S1 and S2"):
        train.student(world, teacher=student.best, out=tmp_path / "s2", config=TINY)


def test_grid_search_keeps_the_best_run_on_valid(world, tmp_path):
    config = TINY.replace(lr=(0.05, 1e-6), weight_decay=(1e-4,), steps=4, eval_every=2)
    result = train.supervised(world, valid=world, out=tmp_path, config=config, progress=False)
    assert len(result.runs) == 2
    best = max(result.runs, key=lambda r: r.best_iou)
    assert result.best_iou == best.best_iou
    assert load_file(result.best).keys() == load_file(best.best).keys()
    for key, value in load_file(best.best).items():
        torch.testing.assert_close(load_file(result.best)[key], value)
    assert "chosen" in (tmp_path / "grid.csv").read_text()


def test_a_finished_run_is_not_redone_and_other_settings_are_refused(world, tmp_path):
    first = train.supervised(world, valid=world, out=tmp_path, config=TINY, progress=False)
    written = {p: p.stat().st_mtime_ns for p in first.runs[0].out.iterdir()}
    again = train.supervised(world, valid=world, out=tmp_path, config=TINY, progress=False)
    assert (again.best_iou, again.runs[0].best_step) == (first.best_iou, first.runs[0].best_step)
    assert {p: p.stat().st_mtime_ns for p in first.runs[0].out.iterdir()} == written
    # the measured context is not a setting: a run whose state records it is the same run
    from floodxr.train.engine import STATE_FORMAT, _read_state

    state = first.runs[0].out / "state.safetensors"
    tensors, meta = _read_state(state)
    meta["run"]["model"]["context"] = 69
    save_file(tensors, str(state), metadata={"format": STATE_FORMAT, "meta": json.dumps(meta)})
    again = train.supervised(world, valid=world, out=tmp_path, config=TINY, progress=False)
    assert again.best_iou == first.best_iou
    with pytest.raises(RunMismatchError, match="edge"):
        train.supervised(
            world, valid=world, out=tmp_path, config=TINY.replace(edge_weight=2.0), progress=False
        )


KILLABLE = textwrap.dedent("""
    import sys
    from floodxr import train
    config = train.CPU.replace(encoder="tu-lcnet_100", decoder_channels=16, crop=64,
                               batch_size=4, steps=int(sys.argv[2]), eval_every=4,
                               checkpoint_every=1, num_workers=int(sys.argv[3]))
    world = train.synthetic_source(3, seed=21, size=96)
    train.supervised(world, valid=world, out=sys.argv[1], config=config, progress=False)
""")


def test_a_killed_run_resumes_to_the_same_weights(tmp_path):
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    steps = 12
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "whole"), str(steps), "0"],
        check=True,
        timeout=600,
    )
    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(script), str(run), str(steps), "2"])
    state = run / "lr0.05_wd0.0001" / "state.safetensors"
    deadline = time.monotonic() + 300
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    from floodxr.train.engine import _read_state

    killed_at = _read_state(state)[1]["step"]
    assert 0 < killed_at < steps, killed_at
    subprocess.run(
        [sys.executable, str(script), str(run), str(steps), "2"], check=True, timeout=600
    )
    for name in ("last", "best"):
        whole = load_file(tmp_path / "whole" / "lr0.05_wd0.0001" / f"{name}.safetensors")
        resumed = load_file(run / "lr0.05_wd0.0001" / f"{name}.safetensors")
        assert whole.keys() == resumed.keys()
        for key, value in whole.items():
            torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    rows = (run / "lr0.05_wd0.0001" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(s) for s in range(1, steps + 1)]


# ---------------------------------------------------------------- configs and the command

FLOODXR = str(Path(sys.executable).parent / "floodxr")
CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


def test_configs_hold_the_paper_setting_and_a_cpu_one():
    from floodxr.train.config import load_config

    for stem in ("teacher", "student", "supervised-hand", "supervised-weak"):
        paper = load_config(CONFIGS / "paper" / f"{stem}.yaml")
        assert paper.settings == train.PAPER.replace(seed=0)
        assert (
            paper.settings.encoder,
            paper.settings.batch_size,
            paper.settings.crop,
            paper.settings.steps,
        ) == ("tu-xception65", 64, 321, 30_000)
        assert len(paper.settings.grid) == 16 and paper.runs == 5
        cpu = load_config(CONFIGS / "cpu" / f"{stem}.yaml")
        assert cpu.runs == 1
        # window-free heads; the student is the compact one that ships (issue 15)
        assert (cpu.settings.encoder, cpu.settings.architecture) == (
            ("tu-mobilenetv2_075", "deeplabv3plus-s2-compact")
            if stem == "student"
            else ("tu-mobilenetv2_100", "deeplabv3plus-s2-local")
        )
        assert paper.settings.architecture == "deeplabv3plus-s2"  # the paper's head
    # the candidates beside the compact student differ from it only in their network
    compact = load_config(CONFIGS / "cpu" / "student.yaml")
    for stem, network in {
        "student-wide": {"encoder": "tu-mobilenetv2_100", "decoder_channels": 48},
        "student-context": {"architecture": "deeplabv3plus-s2-compact-context"},
    }.items():
        candidate = load_config(CONFIGS / "cpu" / f"{stem}.yaml")
        assert candidate.settings == compact.settings.replace(**network)
        assert candidate.out == compact.out.parent / stem
        assert (candidate.train, candidate.valid, candidate.teacher) == (
            compact.train,
            compact.valid,
            compact.teacher,
        )
    # the shipped student's fine-tuning: the pretrained student, real chips, the demo chip out
    tuned = load_config(CONFIGS / "cpu" / "student-real.yaml")
    student = load_config(CONFIGS / "cpu" / "student.yaml")
    assert tuned.settings.init == str(student.out / "best.safetensors")
    assert tuned.settings.replace(init=None, steps=1, lr=(1.0,), eval_every=1, shares=None) == (
        student.settings.replace(steps=1, lr=(1.0,), eval_every=1)
    )
    (real,) = tuned.labelled
    assert real["exclude"] == ["Spain_7370579"] and real["split"] == "test"
    with pytest.raises(InvalidOptionError, match="unknown settings \\['stepz'\\]"):
        load_config(CONFIGS / "cpu" / "teacher.yaml", ["settings.stepz=3"])
    with pytest.raises(InvalidOptionError, match="not KEY=VALUE"):
        load_config(CONFIGS / "cpu" / "teacher.yaml", ["steps"])


def test_the_command_trains_evaluates_and_reproduces_the_table(tmp_path, shared_data):
    folder = tmp_path / "configs"
    folder.mkdir()
    # 128 px crops: the models then see the real chips in 128 px windows, few per chip
    tiny = (
        "settings: {base: cpu, encoder: tu-lcnet_100, decoder_channels: 16, crop: 128, "
        "batch_size: 2, steps: 4, eval_every: 2, checkpoint_every: 2, bn_batches: 2}\n"
    )
    data = (
        "train: [{kind: synthetic, scenes: 2, seed: 1, size: 160}]\n"
        "valid: [{kind: synthetic, scenes: 1, seed: 2, size: 160}]\n"
        "test: [{kind: synthetic, scenes: 2, seed: 3, size: 160}]\n"
    )
    (folder / "teacher.yaml").write_text("stage: teacher\nout: out/teacher\n" + data + tiny)
    (folder / "supervised-weak.yaml").write_text(
        "stage: supervised\nlabels: weak\nout: out/weak\n" + data + tiny
    )
    (folder / "student.yaml").write_text(
        "stage: student\nout: out/student\nteacher: out/teacher/best.safetensors\n"
        + data.replace("train: [", "train: [{kind: synthetic, scenes: 2, seed: 5, size: 160}, ")
        + tiny
    )

    def run(*args, check=True):
        done = subprocess.run(
            [FLOODXR, *map(str, args)], capture_output=True, text=True, cwd=tmp_path, timeout=600
        )
        assert (done.returncode == 0) == check, done.stderr
        return done

    done = run(
        "train",
        "teacher",
        "--config",
        folder / "teacher.yaml",
        "--no-progress",
        "--set",
        "settings.steps=2",
        "--set",
        "out=out/short",
    )
    assert "teacher: best valid IoU" in done.stdout
    assert (tmp_path / "out" / "short" / "lr0.05_wd0.0001" / "metrics.csv").read_text().count(
        "\n"
    ) == 3  # header + 2 steps
    wrong = run("train", "student", "--config", folder / "teacher.yaml", check=False)
    assert "configures stage 'teacher', not 'student'" in wrong.stderr
    table = run("reproduce-table", "--configs", folder, "--no-progress")
    lines = table.stdout.splitlines()
    assert lines[0].startswith("| method | paper IoU")
    rows = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert (
        "54.58" in rows["Otsu thresholding"]
        and "71.91" in rows["Cross modal distillation (student)"]
    )
    assert rows["Hand labeled supervised"].split("|")[3].strip() == "-"  # no config: not run
    for key in ("Otsu thresholding", "Teacher (S1 + S2)", "Cross modal distillation (student)"):
        ours = rows[key].split("|")[3].strip()
        assert 0 <= float(ours) <= 100, rows[key]
    student = tmp_path / "out" / "student" / "best.safetensors"
    teacher = tmp_path / "out" / "teacher" / "best.safetensors"
    both = json.loads(
        run(
            "evaluate",
            "--model",
            student,
            "--model",
            teacher,
            "--data",
            shared_data,
            "--json",
            "--no-progress",
        ).stdout
    )
    assert both["n_runs"] == 2
    assert both["runs"][0]["n_chips"] == 9 and both["runs"][0]["n_skipped"] == 0
    assert both["runs"][1]["n_chips"] == 2 and both["runs"][1]["n_skipped"] == 7  # 2 have S2
    values = [r["aggregate_iou"] for r in both["runs"]]
    assert both["aggregate_iou_mean"] == pytest.approx(np.mean(values))
    assert both["aggregate_iou_std"] == pytest.approx(np.std(values))


# ---------------------------------------------------------------- the shipped models


@pytest.mark.parametrize("name", ["student", "teacher"])
def test_shipped_models_load_and_score_as_their_card_says(name, shared_data):
    import warnings

    from floodxr.data import sen1floods11
    from floodxr.evaluation import score
    from floodxr.models import onnx

    loaded = models.load(name)
    expected = ("vv", "vh") if name == "student" else train.stages.TEACHER_BANDS
    assert loaded.config.bands == expected and loaded.config.tile
    weights = models.WEIGHTS_DIR / f"{name}.safetensors"
    assert {v.dtype for v in load_file(weights).values() if v.is_floating_point()} == {
        torch.float16
    }
    card = loaded.config.scores
    # the real chips each model saw, so that nobody scores it on them; never the demo chip
    seen = card["seen_chips"]
    assert seen == loaded.config.provenance["chips"]
    assert sen1floods11.SAMPLE_CHIP not in seen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", floodxr.errors.MissingChipsWarning)
        every = list(sen1floods11.read_split(shared_data, "test"))
    if name == "teacher":
        assert seen == ["India_900498"]  # the one training chip with Sentinel-2
    else:  # all 8 chips but the demo one when fine-tuned on them, none when synthetic only
        assert seen in ([], sorted(set(every) - {sen1floods11.SAMPLE_CHIP}))
    # the demo chip, never seen, scores as the card says: float32, and int8 when it ships
    demo = sen1floods11.open_chip(shared_data, sen1floods11.SAMPLE_CHIP).scene()
    with floodxr.set_options(engine="onnx"):
        assert score(name, [demo], progress=False).aggregate_iou == pytest.approx(
            card["demo_chip"]["iou"], abs=1e-3
        )
    int8 = onnx.int8_path(weights).is_file()
    assert int8 == (name == "student" and card["int8"]["kept"])
    if int8:  # engine="auto" runs it: scored as the card says, within 0.005 of float32
        quantised = score(name, [demo], progress=False).aggregate_iou
        assert quantised == pytest.approx(card["int8"]["int8"]["demo"], abs=1e-3)
        assert card["int8"]["float32"]["demo"] - quantised < 0.005
    if seen:
        with pytest.warns(floodxr.errors.InSampleWarning, match=seen[0]):
            chip = sen1floods11.open_chip(shared_data, seen[0]).scene()
            score(name, [chip], progress=False)
    if name == "student":
        # every chip but the demo one has an out-of-sample score: leave-one-event-out when the
        # student trained on them, its own when it saw none; the pooled one adds them up
        held = card["held_out"]
        assert held["protocol"] == ("leave-one-event-out" if seen else "unseen")
        assert sorted(row["chip"] for row in held["chips"]) == sorted(
            set(every) - {sen1floods11.SAMPLE_CHIP}
        )
        tp, fp, fn = (sum(row["model"][k] for row in held["chips"]) for k in ("tp", "fp", "fn"))
        assert held["aggregate_iou"] == pytest.approx(tp / (tp + fp + fn))
        assert held["temperature"] == pytest.approx(loaded.config.temperature)
        # the recipe that ships is the better candidate by that score
        best = max(card["candidates"].values(), key=lambda c: c["aggregate_iou"])
        assert best["aggregate_iou"] == pytest.approx(held["aggregate_iou"])
        # chosen among students of three networks (issue 23), all window-free compact heads
        pretrained = [k for k in card["candidates"] if k.endswith("(synthetic only)")]
        assert len(pretrained) >= 3
        assert loaded.config.architecture in models.checkpoint.STRIDE_8


# ---------------------------------------------------------------- real chips, invariance, folds


def test_radiometric_augmentations_change_levels_not_the_label():
    scene = paired_scene((160, 160), seed=5, water_fraction=0.3)
    source = train.Source("s", (train.Scene("s", scene.image, label=scene.water.astype("int8")),))
    teacher_bands = ("vv", "vh", "B02", "B03", "B04", "B08")
    calm = train.Augment.none()

    def draw(augment: train.Augment) -> dict:
        return train.CropDataset(
            (source,),
            bands=("vv", "vh"),
            teacher_bands=teacher_bands,
            crop=128,
            batch_size=1,
            augment=augment,
        )[(0, 0)]

    clean = draw(calm)
    width = np.array([20.0, 30.0])[:, None, None]
    # a gain is one offset per polarisation within +-g dB (away from the clipping limits)
    gained = draw(replace(calm, s1_gain_db=4.0))
    inside = ((clean["image"] > 0.25) & (clean["image"] < 0.75)).numpy()
    shift = (gained["image"] - clean["image"]).numpy() * width
    for band in range(2):
        values = shift[band][inside[band]]
        assert values.size > 1000 and np.ptp(values) < 1e-3 and abs(values[0]) <= 4.0 + 1e-3
    # contrast compression pulls each band toward its median: the spread shrinks
    squeezed = draw(replace(calm, s1_contrast=(0.5, 0.5)))
    assert float(squeezed["image"][1].std()) < 0.75 * float(clean["image"][1].std())
    # a noise floor lifts dark water toward it, and leaves bright land almost as it was
    noisy = draw(replace(calm, s1_noise_floor_db=(-22.0, -22.0)))
    water = clean["target"] == 1
    assert water.any()
    assert float(noisy["image"][1][water].median()) > float(clean["image"][1][water].median())
    for augmented in (gained, squeezed, noisy, draw(replace(calm, s1_ramp_db=3.0))):
        torch.testing.assert_close(augmented["teacher"], clean["teacher"])  # never the teacher's
        torch.testing.assert_close(augmented["target"], clean["target"])  # nor the label
    for bad, match in (
        ({"s1_gain_db": -1.0}, "s1_gain_db=-1.0"),
        ({"s1_contrast": (0.0, 1.0)}, "s1_contrast"),
        ({"s1_contrast": (0.9, 0.5)}, "s1_contrast"),
        ({"s1_noise_floor_db": (-20.0, -30.0)}, "s1_noise_floor_db"),
    ):
        with pytest.raises(InvalidOptionError, match=match):
            train.Augment(**bad)


def test_labelled_sources_share_a_student_batch_and_demo_chips_stay_out(shared_data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", floodxr.errors.MissingChipsWarning)
        real = train.sen1floods11_source(shared_data, "test", exclude=["Spain_7370579"])
        india = train.sen1floods11_source(shared_data, "test", chips=["India_900498"])
        with pytest.raises(InvalidOptionError, match="Spain_737057"):
            train.sen1floods11_source(shared_data, "test", exclude=["Spain_737057"])
    assert "Spain_7370579" not in [s.name for s in real.scenes] and len(real.scenes) == 8
    assert [s.name for s in india.scenes] == ["India_900498"]
    paired = train.synthetic_source(2, seed=41, size=96)
    dataset = train.CropDataset(
        (paired,),
        bands=("vv", "vh"),
        target=None,
        teacher_bands=train.stages.TEACHER_BANDS,
        crop=64,
        batch_size=4,
        labelled=(real,),
        shares=(3, 1),
    )
    assert [dataset.source_of(slot).name for slot in range(4)] == [paired.name] * 3 + [real.name]
    batch = next(iter(train.loader(dataset, start=0, stop=1)))
    assert batch["distil"].tolist() == [True, True, True, False]
    assert (batch["target"][:3] == -1).all() and (batch["target"][3] >= 0).any()
    assert (batch["teacher"][3] == 0).all() and batch["teacher"][:3].abs().sum() > 0
    with pytest.raises(InvalidOptionError, match="add up to the batch size 4"):
        replace(dataset, shares=(2, 1))


def test_a_student_fine_tunes_on_real_labels_from_a_pretrained_start(world, tmp_path, shared_data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", floodxr.errors.MissingChipsWarning)
        real = train.sen1floods11_source(shared_data, "test", chips=["Mekong_333434"])
    teacher = train.teacher(world, out=tmp_path / "teacher", config=TINY, progress=False)
    start = train.student(
        world, teacher=teacher.best, out=tmp_path / "start", config=TINY, progress=False
    )
    tuned = TINY.replace(init=str(start.best), shares=(2, 2), lr=(0.01,))
    result = train.student(
        world,
        teacher=teacher.best,
        labelled=real,
        out=tmp_path / "tuned",
        config=tuned,
        progress=False,
    )
    config = models.read_config(result.best)
    assert config.provenance["labelled"] == ["sen1floods11:test (1 scenes)"]
    assert config.provenance["chips"] == ["Mekong_333434"]
    recorded = config.provenance["config"]
    assert recorded["init"] == str(start.best) and recorded["shares"] == [2, 2]
    # the fine-tuned weights moved away from the start
    a, b = load_file(str(start.best)), load_file(str(result.best))
    assert any(not torch.equal(a[k].float(), b[k].float()) for k in a)
    # scoring it on the chip it trained on says so
    from floodxr.evaluation import score

    with pytest.warns(floodxr.errors.InSampleWarning, match="Mekong_333434"):
        score(result.best, real.scenes, progress=False)
    # a start of another network is refused by name
    other = TINY.replace(encoder="resnet18", init=str(start.best), shares=(2, 2))
    with pytest.raises(floodxr.errors.CheckpointError, match="same network"):
        train.student(
            world,
            teacher=teacher.best,
            labelled=real,
            out=tmp_path / "x",
            config=other,
            progress=False,
        )


def test_cross_validation_by_event_holds_each_event_out(tmp_path, shared_data):
    """Two events, each trained without itself and scored on its own chips, from the command."""
    config = tmp_path / "cv.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            stage: supervised
            out: {tmp_path / "run"}
            train:
              - {{kind: synthetic, scenes: 2, seed: 1, size: 96}}
              - {{kind: sen1floods11, root: {shared_data}, split: test,
                  chips: [Mekong_333434, Nigeria_812045]}}
            settings: {{base: cpu, encoder: tu-lcnet_100, decoder_channels: 16, crop: 64,
                        batch_size: 2, steps: 2, eval_every: 2, bn_batches: 1, threads: 1}}
            """
        )
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("floodxr")),
            "train",
            "supervised",
            "--config",
            str(config),
            "--cv",
            "events",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "leave-one-event-out over 2 events" in done.stdout
    summary = json.loads((tmp_path / "run" / "cv" / "summary.json").read_text())
    assert summary["events"] == ["Mekong", "Nigeria"]
    from safetensors import safe_open

    for fold in summary["folds"]:
        (held,) = fold["chips"]
        assert held.split("_")[0] == fold["event"]
        # each fold is a resumable run of its own, whose recorded data lacks the held-out chip
        (state,) = Path(fold["checkpoint"]).parent.glob("*/state.safetensors")
        with safe_open(str(state), framework="pt") as handle:
            data = json.loads(handle.metadata()["meta"])["run"]["data"]
        trained = [scene for _, scenes in data for scene in scenes]
        assert held not in trained and len([s for s in trained if "_" in s]) == 1
    # pooled counts are the sums of the per-chip counts, for the model and every baseline
    for name in ("model", "fixed -18 dB", "otsu", "event thresholds"):
        rows = [chip[name] for chip in summary["chips"]]
        pooled = summary["pooled"] if name == "model" else summary["baselines"][name]
        assert pooled["tp"] == sum(r["tp"] for r in rows)
        assert pooled["fn"] == sum(r["fn"] for r in rows)
    assert 0.05 <= summary["temperature"] <= 20.0
    # a fold's model trained on the other event: it cannot be scored on it as unseen
    from floodxr.train.config import load_config
    from floodxr.train.cv import score_unseen

    with pytest.raises(InvalidOptionError, match="Nigeria_812045"):
        score_unseen(summary["folds"][0]["checkpoint"], load_config(config))
