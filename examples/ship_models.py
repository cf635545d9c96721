"""Train the teacher and student that ship with floodxr, score them out of sample, install them.

    cd WORK && python REPO/examples/ship_models.py --data REPO/../shared/data/sen1floods11

Run in a work folder; every step trains (or resumes) in ``runs/cpu/`` there, with the CPU
configurations in ``examples/configs/cpu`` (their Sen1Floods11 folder replaced by ``--data``):

1. ``teacher.yaml``: the S1 + S2 teacher on the synthetic world and India_900498 (the one
   training chip with Sentinel-2);
2. ``student.yaml``: the compact student distilled from it on synthetic pairs (no real chip);
3. ``student-real.yaml --cv events``: leave-one-event-out over the 7 events of the 8 chips other
   than the demo chip: per fold, the pretrained student fine-tuned on synthetic pairs and the
   chips of the other events, scored on the held-out event's chips beside the baselines;
   the pretrained student itself is scored on the same chips (it saw none of them);
4. the better of the two by pooled held-out IoU ships: the pretrained student as it is, or
   ``student-real.yaml`` trained on all 8 chips. Its temperature is the one fitted on its
   held-out probabilities (never on a chip the scored model trained on).

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

CONFIGS = Path(__file__).resolve().parent / "configs" / "cpu"
#: The demo chip: never trained on, scored as each model ships.
DEMO = sen1floods11.SAMPLE_CHIP
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder")
    parser.add_argument(
        "--install",
        type=Path,
        default=models.WEIGHTS_DIR,
        help="where to write the fp16 checkpoints (default: the package)",
    )
    args = parser.parse_args()
    data = args.data.resolve()
    teacher_config = _config("teacher", data)
    pretrain_config = _config("student", data)
    student_config = _config("student-real", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingChipsWarning)
        (teacher,) = run_stage(teacher_config)
        (pretrained,) = run_stage(pretrain_config)
        candidates = {
            "fine-tuned on real chips": cross_validate(student_config),
            "synthetic only": score_unseen(pretrained.best, student_config),
        }
        chosen = max(candidates, key=lambda k: candidates[k]["aggregate_iou"])
        loeo = candidates[chosen]
        if chosen == "synthetic only":
            final_best, shipped_config = pretrained.best, pretrain_config
        else:
            (final,) = run_stage(student_config)
            final_best, shipped_config = final.best, student_config
        valid = [s for source in build_sources(pretrain_config.valid) for s in source.scenes]
        test = [s for source in build_sources(pretrain_config.test) for s in source.scenes]

        # the teacher: temperature on synthetic valid scenes, kept only where it lowers their ECE
        teacher_chips = _seen(teacher_config)
        path = _install(teacher.best, "teacher", args.install, teacher_chips, temperature=1.0)
        raw = score(path, valid, progress=False).ece
        fitted = fit_temperature(path, valid)
        path = _install(teacher.best, "teacher", args.install, teacher_chips, temperature=fitted)
        if not score(path, valid, progress=False).ece < raw:
            fitted = 1.0
            path = _install(teacher.best, "teacher", args.install, teacher_chips, temperature=1.0)
        teacher_scores = {
            "valid_iou_synthetic": teacher.best_iou,
            "test_iou_synthetic": _test(path, test),
            "temperature": fitted,
            "demo_chip": _demo(path, data),
            "seen_chips": teacher_chips,
        }
        models.save(
            models.load(path).module,
            models.read_config(path).replace(scores=teacher_scores),
            path,
            overwrite=True,
            half=True,
        )
        print(f"teacher: wrote {path}\n{json.dumps(teacher_scores, indent=2)}")

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
            "held_out": {k: v for k, v in loeo.items() if k not in ("config", "model")},
            "demo_chip": _demo(path, data),
            "test_iou_synthetic": _test(path, test),
            "pretrained": str(pretrained.best),
            "seen_chips": _seen(shipped_config),
        }
        student_scores["int8"] = _quantize(path, valid, test, data)
        models.save(
            models.load(path).module,
            models.read_config(path).replace(scores=student_scores),
            path,
            overwrite=True,
            half=True,
        )
        summary = {k: v for k, v in student_scores.items() if k != "held_out"}
        summary["held_out_aggregate_iou"] = loeo["aggregate_iou"]
        print(f"student: wrote {path}\n{json.dumps(summary, indent=2)}")


if __name__ == "__main__":
    main()
