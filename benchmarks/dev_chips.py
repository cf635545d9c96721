"""The model card's per-chip tables: every model score out of sample, beside the baselines.

    python benchmarks/dev_chips.py --data ../shared/data/sen1floods11 [--figure reliability.png]

Prints the shipped student's held-out table, which ``examples/ship_models.py`` wrote into its
checkpoint: its water IoU on each of the eight development chips other than the demo chip,
leave-one-event-out when the student trained on them (``floodxr train student --config
examples/configs/cpu/student-real.yaml --cv events``) or as it is when it saw none of them
(the synthetic-only candidate; ``"protocol"`` says which), beside a fixed -18 dB VH threshold,
per-chip Otsu and Sen1Floods11's per-event thresholds (fitted on each event), and the
candidates it was chosen from. It then scores, now, every shipped model on the chips it never
saw (``seen_chips`` in its card; the teacher also skips chips without Sentinel-2), each baseline
on all nine chips, and the Sentinel-2 weak labels on the chips with S2. One JSON object;
``--figure`` draws the student's held-out reliability diagram before and after its temperature.
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
from floodxr.data import sen1floods11
from floodxr.errors import MissingChipsWarning
from floodxr.evaluation import score
from floodxr.metrics import confusion
from floodxr.preprocess import weak_labels

BASELINES = {
    "otsu": {"method": "otsu"},
    "fixed -18 dB": {"method": "fixed", "threshold_db": -18.0},
    "event thresholds": {"method": "event-threshold"},
}


def s2_weak_labels(chips: list[sen1floods11.Chip]) -> dict[str, float]:
    """IoU of Sentinel-2 weak labels (MNDWI > 0 and NDVI < 0.2) on the chips that have S2."""
    found = {}
    for chip in chips:
        if chip.s2 is not None and chip.label is not None:
            weak = weak_labels(chip.s2).values
            # -1 (no S2 data) becomes the mask's nodata; a fresh array carries no -1 fill value
            mask = chip.label.copy(data=np.where(weak >= 0, weak, 255).astype("uint8"))
            mask.attrs, mask.encoding = {}, {}
            found[chip.id] = _number(confusion(mask, chip.label).iou)
    return found


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined IoU (no water and none called) is null."""
    return None if np.isnan(value) else value


def unseen(name: str, data: Path) -> dict[str, Any]:
    """``name`` on every chip its card does not list as seen, in float32 and at the default."""
    config = models.read_config(models.resolve(name))
    seen = set(config.scores.get("seen_chips", ())) | set(config.provenance.get("chips", ()))
    chips = [c for c in sen1floods11.read_split(data, "test").open() if c.id not in seen]
    scenes = [c.scene() for c in chips]
    rows = {}
    for engine in ("auto", "onnx"):
        with floodxr.set_options(engine=engine):
            found = score(name, scenes, progress=False)
        rows[engine] = {s.name: _number(s.confusion.iou) for s in found.scenes}
    return {"seen": sorted(seen), "per_chip": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder")
    parser.add_argument("--figure", type=Path, help="write the LOEO reliability diagram here")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingChipsWarning)
        events = sen1floods11.read_events(args.data / "Sen1Floods11_Metadata.geojson")
        chips = list(sen1floods11.read_split(args.data, "test").open())
        scenes = [c.scene() for c in chips]
        baselines = {
            name: {
                s.name: _number(s.confusion.iou)
                for s in score(
                    options["method"],
                    scenes,
                    events=events,
                    threshold_db=options.get("threshold_db"),
                    progress=False,
                ).scenes
            }
            for name, options in BASELINES.items()
        }
        out_of_sample = {name: unseen(name, args.data) for name in ("student", "teacher")}
    scores = models.read_config(models.resolve("student")).scores
    loeo = scores["held_out"]
    table = [
        {
            "chip": row["chip"],
            "event": row["event"],
            "student (held out)": row["model"]["iou"],
            **{name: row[name]["iou"] for name in BASELINES if name in row},
        }
        for row in loeo["chips"]
    ]
    result = {
        "held_out": {
            "protocol": loeo["protocol"],
            "recipe": scores["recipe"],
            "candidates": {k: v["aggregate_iou"] for k, v in scores["candidates"].items()},
            "aggregate_iou": loeo["aggregate_iou"],
            "baselines": {k: v["aggregate_iou"] for k, v in loeo["baselines"].items()},
            "ece": loeo["ece"],
            "temperature": loeo["temperature"],
            "ece_at_temperature": loeo["ece_at_temperature"],
            "per_chip": table,
        },
        "unseen_chips": out_of_sample,
        "baselines_all_chips": baselines,
        "s2_weak_labels": s2_weak_labels(chips),
    }
    if args.figure:
        from floodxr.plot import reliability

        kind = "LOEO" if loeo["protocol"] == "leave-one-event-out" else "held out"
        curves = {
            f"student, {kind} (T = 1)": loeo["reliability"],
            f"student, {kind} (T = {loeo['temperature']:.2f})": loeo["reliability_at_temperature"],
        }
        reliability(curves).savefig(args.figure, dpi=90)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
