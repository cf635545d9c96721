"""The model card's per-chip table: models and baselines on Sen1Floods11's development chips.

    python benchmarks/dev_chips.py --data ../shared/data/sen1floods11 [--figure reliability.png]

Runs ``floodxr evaluate`` for the shipped student (at the default engine, and in float32) and
teacher and for the non-learned baselines (per-chip Otsu on VH, one fixed VH threshold of
-18 dB, Sen1Floods11's per-event VH thresholds, which are fitted on each event), and Sentinel-2
weak labels on the chips with S2, and prints one JSON object: per method its command, aggregate
and mean IoU, ECE (models), per-chip IoU, and how many chips with water the
student wins against per-chip Otsu. The chips are test-split chips: never trained on, but
looked at while building the synthetic world (see floodxr.data.synthetic), so an honest score
needs chips nobody looked at.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

METHODS = {
    "student": ["--model", "student"],  # the default engine: int8 when it ships
    "student float32": ["--model", "student", "--engine", "onnx"],
    "teacher": ["--model", "teacher"],
    "otsu": ["--method", "otsu"],
    "fixed -18 dB": ["--method", "fixed", "--threshold", "-18"],
    "event thresholds": ["--method", "event-threshold"],
}


def s2_weak_labels(data: Path) -> dict[str, float]:
    """IoU of Sentinel-2 weak labels (MNDWI > 0 and NDVI < 0.2) on the chips that have S2."""
    import warnings

    import numpy as np

    from floodxr.data import sen1floods11
    from floodxr.errors import MissingChipsWarning
    from floodxr.metrics import confusion
    from floodxr.preprocess import weak_labels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingChipsWarning)
        chips = list(sen1floods11.read_split(data, "test").open())
    scores = {}
    for chip in chips:
        if chip.s2 is not None and chip.label is not None:
            weak = weak_labels(chip.s2).values
            # -1 (no S2 data) becomes the mask's nodata; a fresh array carries no -1 fill value
            mask = chip.label.copy(data=np.where(weak >= 0, weak, 255).astype("uint8"))
            mask.attrs, mask.encoding = {}, {}
            scores[chip.id] = confusion(mask, chip.label).iou
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder")
    parser.add_argument("--figure", type=Path, help="write the models' reliability diagram here")
    args = parser.parse_args()
    floodxr = Path(sys.executable).with_name("floodxr")
    results = {}
    for name, options in METHODS.items():
        command = [
            str(floodxr),
            "evaluate",
            *options,
            "--data",
            str(args.data),
            "--split",
            "test",
            "--json",
            "--no-progress",
        ]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout)
        results[name] = {
            "command": shlex.join(["floodxr", *command[1:]]),
            "aggregate_iou": result["aggregate_iou"],
            "mean_iou": result["mean_iou"],
            "ece": result["ece"],
            "reliability": result["reliability"],
            "per_chip": {row["chip"]: row["iou"] for row in result["chips"]},
            "water_chips": sorted(
                row["chip"] for row in result["chips"] if row["tp"] + row["fn"] > 0
            ),
        }
    results["S2 weak labels"] = {
        "command": "python benchmarks/dev_chips.py (floodxr.preprocess.weak_labels of S2Hand)",
        "per_chip": s2_weak_labels(args.data),
        "aggregate_iou": None,
        "mean_iou": None,
        "ece": None,
        "reliability": None,
    }
    student, otsu = results["student"]["per_chip"], results["otsu"]["per_chip"]
    water = results["student"]["water_chips"]
    summary = {
        "water_chips": len(water),
        "student_above_otsu": sum(student[c] > otsu[c] for c in water),
        "student_above_fixed_-18": results["student"]["aggregate_iou"]
        > results["fixed -18 dB"]["aggregate_iou"],
        "teacher_above_student_on_s2_chips": {
            c: iou > student[c] for c, iou in results["teacher"]["per_chip"].items()
        },
    }
    if args.figure:
        from floodxr.plot import reliability

        curves = {k: results[k]["reliability"] for k in ("student", "teacher")}
        reliability(curves).savefig(args.figure, dpi=90)
    for value in results.values():
        del value["reliability"]
    print(json.dumps({"methods": results, "summary": summary}))


if __name__ == "__main__":
    main()
