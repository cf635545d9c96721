"""What helps the synthetic world transfer to real radar: one change at a time, same budget.

    python benchmarks/transfer_ablation.py --data ../shared/data/sen1floods11 \\
        --teacher runs/cpu/teacher/best.safetensors --steps 600 --json

Each variant trains an S1 network on the synthetic world (the CPU setting: 160 px crops, batch
8, 2 torch threads, ``--steps`` steps, the shipped models' S1 jitter unless the variant changes
it) and is scored on the synthetic valid scenes and on the Sen1Floods11 development chips
(aggregate IoU, mean IoU, ECE). ``supervised`` variants learn the world's hand labels; the
``distilled`` ones learn a frozen teacher's soft predictions (``--teacher``) at distillation
temperature 1 (the paper) or 2. Re-sampled speckle adds a 10-look Gamma field on top of the
world's own 4.4-look speckle (``train.Augment.s1_speckle``). Prints one JSON object, one entry
per variant. Runs resume in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

VARIANTS = {
    "supervised, S1 jitter (0.03, 0.05) (the paper's)": {"augment": {"s1_jitter": (0.03, 0.05)}},
    "supervised, S1 jitter (0.05, 0.05) (shipped)": {},
    "supervised, S1 jitter (0.10, 0.10)": {"augment": {"s1_jitter": (0.10, 0.10)}},
    "supervised, efficientnet_lite0 encoder": {"encoder": "tu-efficientnet_lite0"},
    "distilled, temperature 1 (the paper's)": {"stage": "student"},
    "distilled, temperature 2": {"stage": "student", "temperature": 2.0},
    "supervised, re-sampled speckle (10 looks)": {"augment": {"s1_speckle": 10.0}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder (dev chips)")
    parser.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    args = parser.parse_args()

    from floodxr import train
    from floodxr.errors import MissingChipsWarning
    from floodxr.evaluation import evaluate_split, score
    from floodxr.train.data import Augment

    hand = train.synthetic_source(64, seed=1)
    external = train.synthetic_source(160, seed=4)
    valid = train.synthetic_source(12, seed=2)
    results = {}
    for index, (name, change) in enumerate(VARIANTS.items()):
        began = time.perf_counter()
        change = dict(change)
        stage = change.pop("stage", "supervised")
        augment = Augment(**{"s1_jitter": (0.05, 0.05), **change.pop("augment", {})})
        config = train.CPU.replace(
            steps=args.steps, eval_every=args.steps, threads=2, augment=augment, **change
        )
        out = args.out / f"variant{index}"
        if stage == "student":
            run = train.student(
                [hand, external],
                teacher=args.teacher,
                valid=valid,
                out=out,
                config=config,
                progress=not args.json,
            )
        else:
            run = train.supervised(
                hand, labels="hand", valid=valid, out=out, config=config, progress=not args.json
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingChipsWarning)
            dev = evaluate_split(args.data, method=str(run.best), progress=False)
        results[name] = {
            "valid_iou_synthetic": round(score(run.best, valid.scenes).aggregate_iou, 4),
            "dev_aggregate_iou": round(dev["aggregate_iou"], 4),
            "dev_mean_iou": round(dev["mean_iou"], 4),
            "dev_ece": round(dev["ece"], 4),
            "dev_per_chip": {r["chip"]: r["iou"] and round(r["iou"], 4) for r in dev["chips"]},
            "minutes": round((time.perf_counter() - began) / 60, 1),
        }
        if not args.json:
            print(name, results[name], flush=True)
    print(json.dumps({"steps": args.steps, "variants": results}))


if __name__ == "__main__":
    main()
