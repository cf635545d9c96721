"""Train the teacher and student that ship with floodxr, score them out of sample, install them.

    cd WORK && python REPO/examples/ship_models.py --data REPO/../shared/data/sen1floods11 \
        [--teacher REPO/floodxr/models/weights/teacher.safetensors]

Run in a work folder; every step trains (or resumes) in ``runs/cpu/`` there, with the CPU
configurations in ``examples/configs/cpu`` (their Sen1Floods11 folder replaced by ``--data``):

1. ``teacher.yaml``: the S1 + S2 teacher on the synthetic world and India_900498 (the one
   training chip with Sentinel-2), or ``--teacher PATH`` (e.g. the installed teacher) to distil
   from an existing one;
2. ``student.yaml``, ``student-wide.yaml``, ``student-context.yaml``: three students distilled
   from it on synthetic pairs (no real chip): today's compact network, a wider one and one with
   more context; each is scored on the 8 chips other than the demo chip (it saw none of them);
3. ``student-real.yaml --cv events``, starting from the best of them (the best pooled held-out
   IoU; candidates within :data:`TIE` of it are told apart by ``benchmarks/stress.py``, their
   mean IoU margin over a fixed threshold on synthetic families outside the world's ranges):
   leave-one-event-out over the 7 events of the 8 chips: per fold, that student fine-tuned on
   synthetic pairs and the chips of the other events, scored on the held-out event's chips
   beside the baselines;
4. that student ships as it is, or ``student-real.yaml`` trained on all 8 chips if its LOEO
   IoU is higher. Its temperature is the one fitted on its held-out probabilities (never on a
   chip the scored model trained on).

Both checkpoints are installed as float16 in ``floodxr/models/weights/``; the student gets the
temperature of step 3, its card the LOEO figures (never an in-sample score) and the chips it saw;
the demo chip Spain_7370579, never trained on, is scored as it ships. The student's int8 ONNX
model (calibrated on synthetic valid scenes) is kept only if it costs the demo chip and the
synthetic test scenes less than 0.005 IoU. Every step resumes: re-running after an interruption
finishes the rest. See docs/model-card.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

import floodxr
from floodxr import models
from floodxr.data import sen1floods11
from floodxr.data.scene import Scene
from floodxr.errors import MissingChipsWarning
from floodxr.evaluation import fit_temperature, score
from floodxr.models import onnx
from floodxr.preprocess import normalize
from floodxr.train.config import StageConfig, build_sources, load_config, run_stage
from floodxr.train.cv import cross_validate, score_unseen
from floodxr.train.stages import GridResult

CONFIGS = Path(__file__).resolve().parent / "configs" / "cpu"
#: The demo chip: never trained on, scored as each model ships.
DEMO = sen1floods11.SAMPLE_CHIP
#: The pretrained students compared by held-out IoU (issue 23: today's compact one, a wider
#: encoder and decoder, more context); the best of them is also fine-tuned on the real chips.
PRETRAINED = ("student", "student-wide", "student-context")
#: The settings that make a student's network (a fine-tuning keeps its start's).
NETWORK = ("encoder", "architecture", "output_stride", "decoder_channels")
#: Held-out IoU differences below this are noise: two runs of one recipe that differed only in
#: the teacher's float precision scored 0.819 and 0.856 (issue 23). Within it, the stress
#: benchmark's margin over a fixed threshold picks the candidate.
TIE = 0.02
#: Where ``stress.py`` is, and the scenes per family and their side it is run with (its defaults).
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
STRESS_SCENES, STRESS_SIZE = 12, 384
#: The int8 model is kept only if it costs the demo chip and synthetic test less IoU than this.
INT8_MAX_DROP = 0.005


def _config(name: str, data: Path) -> StageConfig:
    """A CPU configuration with its Sen1Floods11 sources read from ``data``."""

    def rooted(specs: tuple[Mapping[str, Any], ...]) -> tuple[Mapping[str, Any], ...]:
        return tuple(
            {**spec, "root": str(data)} if spec.get("kind") == "sen1floods11" else spec
            for spec in specs
        )

    config = load_config(CONFIGS / f"{name}.yaml")
    return dataclasses.replace(config, train=rooted(config.train), labelled=rooted(config.labelled))


def _seen(config: StageConfig) -> list[str]:
    """The real chips a configuration trains on."""
    sources = build_sources(config.train) + build_sources(config.labelled)
    return sorted({s.name for source in sources for s in source.scenes if s.event})


def _install(trained: Path, name: str, target: Path, chips: list[str], **changes: Any) -> Path:
    """``trained`` as float16 ``target/name``, its provenance naming the real ``chips`` it saw
    (runs from before floodxr recorded them lack the entry)."""
    loaded = models.load(trained)
    provenance = {**loaded.config.provenance, "chips": chips}
    return models.save(
        loaded.module,
        loaded.config.replace(name=name, provenance=provenance, **changes),
        target / name,
        overwrite=True,
        half=True,
    )


def _write_scores(path: Path, scores: Mapping[str, Any]) -> None:
    """Rewrite the installed float16 checkpoint ``path`` with ``scores`` in its JSON."""
    models.save(
        models.load(path).module,
        models.read_config(path).replace(scores=dict(scores)),
        path,
        overwrite=True,
        half=True,
    )


def _demo(path: Path, data: Path) -> dict[str, Any]:
    chip = sen1floods11.open_chip(data, DEMO).scene()
    found = score(path, [chip], progress=False)
    return {"chip": DEMO, "iou": found.aggregate_iou, "ece": found.ece}


def _quantize(path: Path, valid: list[Scene], test: list[Scene], data: Path) -> dict[str, Any]:
    """Write ``student.int8.onnx``; keep it only if the demo chip and synthetic test lose less
    than :data:`INT8_MAX_DROP` IoU against the float32 network (ONNX Runtime)."""
    bands = list(models.read_config(path).bands)
    calibration = [np.nan_to_num(normalize(s.image.sel(band=bands)).values)[None] for s in valid]
    found = {}
    with floodxr.set_options(engine="onnx"):
        found["float32"] = {"demo": _demo(path, data)["iou"], "test": _test(path, test)}
    target = onnx.quantize(path, calibration, overwrite=True)
    with floodxr.set_options(engine="onnx-int8"):
        found["int8"] = {"demo": _demo(path, data)["iou"], "test": _test(path, test)}
    drop = {k: found["float32"][k] - found["int8"][k] for k in ("demo", "test")}
    kept = max(drop.values()) < INT8_MAX_DROP
    if not kept:
        target.unlink()
    return {"kept": kept, "max_drop": INT8_MAX_DROP, "drop": drop, **found}


def _test(path: Path, test: list[Scene]) -> float:
    return score(path, test, progress=False).aggregate_iou


def _install_teacher(
    teacher: GridResult,
    config: StageConfig,
    install: Path,
    valid: list[Scene],
    test: list[Scene],
    data: Path,
) -> None:
    """The trained teacher as float16 ``install/teacher``, with the temperature fitted on the
    synthetic valid scenes kept only where it lowers their ECE, and its scores."""
    chips = _seen(config)
    path = _install(teacher.best, "teacher", install, chips, temperature=1.0)
    raw = score(path, valid, progress=False).ece
    fitted = fit_temperature(path, valid)
    path = _install(teacher.best, "teacher", install, chips, temperature=fitted)
    if not score(path, valid, progress=False).ece < raw:
        fitted = 1.0
        path = _install(teacher.best, "teacher", install, chips, temperature=1.0)
    scores = {
        "valid_iou_synthetic": teacher.best_iou,
        "test_iou_synthetic": _test(path, test),
        "temperature": fitted,
        "demo_chip": _demo(path, data),
        "seen_chips": chips,
    }
    _write_scores(path, scores)
    print(f"teacher: wrote {path}\n{json.dumps(scores, indent=2)}")


@functools.cache
def _stress_benchmark() -> Any:
    """``benchmarks/stress.py`` as a module, loaded once."""
    spec = importlib.util.spec_from_file_location("stress", BENCHMARKS / "stress.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stress(path: Path) -> float:
    """Mean IoU margin over a fixed -18 dB VH threshold on ``benchmarks/stress.py``'s families
    with water (synthetic scenes pushed outside the world's ranges: no chip, nothing fitted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = _stress_benchmark().run(str(path), STRESS_SCENES, STRESS_SIZE)["families"]
    margins = [
        (row["model"]["iou"] or 0.0) - (row["fixed -18 dB"]["iou"] or 0.0)
        for row in found.values()
        if row["true_water_share"] > 0
    ]
    return float(np.mean(margins))


def _best(
    runs: Mapping[str, GridResult], found: Mapping[str, Any], stress: Mapping[str, float]
) -> str:
    """The pretrained candidate to fine-tune and compare: the best held-out IoU, except that
    candidates within :data:`TIE` of it are told apart by their stress margin (:func:`_stress`)."""
    iou = {name: found[f"{name} (synthetic only)"]["aggregate_iou"] for name in runs}
    close = [name for name in runs if iou[name] >= max(iou.values()) - TIE]
    return max(close, key=lambda name: stress[name])


def _fine_tuning(config: StageConfig, base: str, start: StageConfig, best: Path) -> StageConfig:
    """``student-real.yaml`` starting from the pretrained candidate ``base`` (its network,
    trained at ``best``) and distilling from the same teacher, in ``runs/cpu/<base>-real``."""
    network = {k: getattr(start.settings, k) for k in NETWORK}
    return dataclasses.replace(
        config,
        out=config.out.parent / f"{base}-real",
        teacher=start.teacher,
        settings=config.settings.replace(init=str(best), **network),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder")
    parser.add_argument(
        "--install",
        type=Path,
        default=models.WEIGHTS_DIR,
        help="where to write the fp16 checkpoints (default: the package)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="distil from this teacher checkpoint (e.g. the installed one) instead of training "
        "teacher.yaml; the teacher is then not installed again",
    )
    args = parser.parse_args()
    data = args.data.resolve()
    teacher_config = _config("teacher", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingChipsWarning)
        if args.teacher is None:
            (teacher,) = run_stage(teacher_config)
            teacher_best = teacher.best
        else:
            teacher_best = args.teacher.resolve()
        configs = {
            name: dataclasses.replace(_config(name, data), teacher=teacher_best)
            for name in PRETRAINED
        }
        runs = {name: run_stage(config)[0] for name, config in configs.items()}
        tune = _config("student-real", data)
        candidates = {
            f"{name} (synthetic only)": score_unseen(run.best, tune) for name, run in runs.items()
        }
        stress = {name: _stress(run.best) for name, run in runs.items()}
        base = _best(runs, candidates, stress)
        tune = _fine_tuning(tune, base, configs[base], runs[base].best)
        fine_tuned = f"{base} fine-tuned on real chips"
        candidates[fine_tuned] = cross_validate(tune)
        pretrained = f"{base} (synthetic only)"
        better = candidates[fine_tuned]["aggregate_iou"] > candidates[pretrained]["aggregate_iou"]
        chosen = fine_tuned if better else pretrained
        loeo = candidates[chosen]
        pretrain_config = configs[base]
        if chosen.endswith("(synthetic only)"):
            final_best, shipped_config = runs[base].best, pretrain_config
        else:
            (final,) = run_stage(tune)
            final_best, shipped_config = final.best, tune
        valid = [s for source in build_sources(pretrain_config.valid) for s in source.scenes]
        test = [s for source in build_sources(pretrain_config.test) for s in source.scenes]

        if args.teacher is None:
            _install_teacher(teacher, teacher_config, args.install, valid, test, data)

        # the student: the LOEO temperature (fitted on held-out chips only)
        onnx.int8_path(args.install / "student").unlink(missing_ok=True)  # of older weights
        path = _install(
            final_best,
            "student",
            args.install,
            _seen(shipped_config),
            temperature=loeo["temperature"],
        )
        student_scores = {
            "recipe": chosen,
            "candidates": {
                name: {
                    "protocol": found["protocol"],
                    "aggregate_iou": found["aggregate_iou"],
                    "per_chip": {row["chip"]: row["model"]["iou"] for row in found["chips"]},
                }
                for name, found in candidates.items()
            },
            "stress_margin": {f"{name} (synthetic only)": m for name, m in stress.items()},
            "held_out": {k: v for k, v in loeo.items() if k not in ("config", "model")},
            "demo_chip": _demo(path, data),
            "test_iou_synthetic": _test(path, test),
            "pretrained": str(runs[base].best),
            "seen_chips": _seen(shipped_config),
        }
        student_scores["int8"] = _quantize(path, valid, test, data)
        _write_scores(path, student_scores)
        summary = {k: v for k, v in student_scores.items() if k != "held_out"}
        summary["held_out_aggregate_iou"] = loeo["aggregate_iou"]
        print(f"student: wrote {path}\n{json.dumps(summary, indent=2)}")


if __name__ == "__main__":
    main()
