"""Train the teacher and student that ship with floodxr, score them, and install them (fp16).

    cd WORK && python REPO/examples/ship_models.py --data REPO/../shared/data/sen1floods11

Run in a work folder; it trains (or resumes) in ``runs/cpu/`` there, like::

    floodxr train teacher --config REPO/examples/configs/cpu/teacher.yaml \\
        --set settings.steps=2000 --set settings.eval_every=250 --set settings.threads=2 \\
        --set "settings.augment={s1_jitter: [0.05, 0.05]}"
    floodxr train student --config REPO/examples/configs/cpu/student.yaml \\
        --set settings.steps=3000 --set settings.eval_every=250 --set settings.threads=2 \\
        --set "settings.augment={s1_jitter: [0.05, 0.05]}" --set out=runs/cpu/student-compact \\
        --set settings.encoder=tu-mobilenetv2_075 --set settings.output_stride=8 \\
        --set settings.architecture=deeplabv3plus-s2-compact --set settings.decoder_channels=32

then writes both best checkpoints as float16 into ``floodxr/models/weights/{teacher,student}``,
fits each one's temperature on the synthetic valid scenes (temperature scaling: the mask does
not change, only how sure the probability is) and keeps it only if the expected calibration
error falls on the synthetic valid scenes *and* on the Sen1Floods11 chips under ``--data``
(development chips, never trained on), then scores it on the synthetic test scenes and those
chips; the scores, and both ECEs with and without the temperature, go into the JSON. The
student also gets an int8 ONNX model (``student.int8.onnx``, calibrated on the synthetic valid
scenes), kept only if the dev chips lose less than 0.005 IoU with it (``dev_chips.int8``).
Every step resumes: re-running after an interruption finishes the rest. These runs use other
settings than ``floodxr reproduce-table --configs REPO/examples/configs/cpu`` (longer, fixed
threads, wider jitter), so run the table in another folder. See docs/model-card.md.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import floodxr
from floodxr import models
from floodxr.data.scene import Scene
from floodxr.errors import MissingChipsWarning
from floodxr.evaluation import evaluate_split, fit_temperature, score
from floodxr.models import onnx
from floodxr.preprocess import normalize
from floodxr.train.config import build_sources, load_config, run_stage

CONFIGS = Path(__file__).resolve().parent / "configs" / "cpu"
#: The shipped models' settings on top of the CPU configurations: longer runs, fixed threads (the
#: result depends on them), and a wider S1 offset jitter (sd 1 dB VV, 1.5 dB VH).
COMMON = (
    "settings.eval_every=250",
    "settings.threads=2",
    "settings.augment={s1_jitter: [0.05, 0.05]}",
)
#: The student is the compact network (a ~70 px context: fast window-free inference, issue 15).
COMPACT = (
    "out=runs/cpu/student-compact",
    "settings.encoder=tu-mobilenetv2_075",
    "settings.architecture=deeplabv3plus-s2-compact",
    "settings.output_stride=8",
    "settings.decoder_channels=32",
)
STEPS = {
    "teacher": ("settings.steps=2000", *COMMON),
    "student": ("settings.steps=3000", *COMMON, *COMPACT),
}


#: The int8 model is kept only if it costs the dev chips less IoU than this (issue 15).
INT8_MAX_DROP = 0.005


def quantize(path: Path, valid: list[Scene], data: Path, fp32: dict[str, Any]) -> dict[str, Any]:
    """Write ``NAME.int8.onnx`` beside the installed checkpoint, calibrated on the synthetic valid
    scenes; keep it (``engine="auto"`` then runs it) only if the aggregate and the mean IoU on
    the dev chips drop by less than :data:`INT8_MAX_DROP` against ``fp32`` (the same checkpoint
    through ONNX Runtime in float32)."""
    bands = list(models.read_config(path).bands)
    calibration = [np.nan_to_num(normalize(s.image.sel(band=bands)).values)[None] for s in valid]
    target = onnx.quantize(path, calibration, overwrite=True)
    with floodxr.set_options(engine="onnx-int8"):
        int8 = evaluate_split(data, method=str(path), progress=False)
    drop = {k: fp32[k] - int8[k] for k in ("aggregate_iou", "mean_iou")}
    kept = max(drop.values()) < INT8_MAX_DROP
    if not kept:
        target.unlink()
    return {
        "kept": kept,
        "max_drop": INT8_MAX_DROP,
        "drop": drop,
        "aggregate_iou": int8["aggregate_iou"],
        "mean_iou": int8["mean_iou"],
        "ece": int8["ece"],
        "per_chip": {r["chip"]: r["iou"] for r in int8["chips"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder (dev chips)")
    parser.add_argument(
        "--install",
        type=Path,
        default=models.WEIGHTS_DIR,
        help="where to write the fp16 checkpoints (default: the package)",
    )
    args = parser.parse_args()
    stages = {
        name: load_config(CONFIGS / f"{name}.yaml", STEPS[name]) for name in ("teacher", "student")
    }
    for name, config in stages.items():
        (result,) = run_stage(config)
        onnx.int8_path(args.install / name).unlink(missing_ok=True)  # made from older weights
        # install first, then calibrate and score what is installed: the float16 weights
        trained = models.load(result.best)
        path = models.save(
            trained.module,
            trained.config.replace(name=name, temperature=1.0),
            args.install / name,
            overwrite=True,
            half=True,
        )
        valid = [s for source in build_sources(config.valid) for s in source.scenes]
        test = [s for source in build_sources(config.test) for s in source.scenes]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingChipsWarning)
            raw = evaluate_split(args.data, method=str(path), progress=False)
            raw_synthetic = score(path, valid, progress=False).ece
            # temperature scaling on the synthetic valid scenes: never on the chips it is scored on
            fitted = fit_temperature(path, valid)
            installed = models.load(path)
            path = models.save(
                installed.module,
                installed.config.replace(temperature=fitted),
                path,
                overwrite=True,
                half=True,
            )
            dev = evaluate_split(args.data, method=str(path), progress=False)
            calibration = {
                "fitted_temperature": fitted,
                "valid_ece_synthetic": [raw_synthetic, score(path, valid, progress=False).ece],
                "dev_ece": [raw["ece"], dev["ece"]],
            }
            # kept only if it helps on the synthetic valid scenes *and* on the real chips
            if not (
                calibration["valid_ece_synthetic"][1] < raw_synthetic and dev["ece"] < raw["ece"]
            ):
                path = models.save(
                    installed.module,
                    installed.config.replace(temperature=1.0),
                    path,
                    overwrite=True,
                    half=True,
                )
                dev = raw
            synthetic = score(path, test, progress=False)
            int8 = quantize(path, valid, args.data, dev) if name == "student" else None
        scores = {
            "valid_iou_synthetic": result.best_iou,
            "test_iou_synthetic": synthetic.aggregate_iou,
            "test_ece_synthetic": synthetic.ece,
            "dev_chips": {
                "split": "Sen1Floods11 test (development chips, never trained on)",
                "n_chips": dev["n_chips"],
                "aggregate_iou": dev["aggregate_iou"],
                "mean_iou": dev["mean_iou"],
                "ece": dev["ece"],
                "calibration": calibration,
                "per_chip": {r["chip"]: r["iou"] for r in dev["chips"]},
            },
        }
        if int8 is not None:  # fp32 above, int8 here: a kept int8 model is engine="auto"'s pick
            scores["dev_chips"]["int8"] = int8
        installed = models.load(path)
        models.save(
            installed.module,
            installed.config.replace(scores=scores),
            path,
            overwrite=True,
            half=True,
        )
        print(f"{name}: wrote {path}")
        print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
