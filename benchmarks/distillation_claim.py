"""The paper's central claim measured over seeds: distilled student minus weak-label baseline.

    python benchmarks/distillation_claim.py --seeds 0 1 2 3 4 --json

The training notebook's small setting (synthetic world, light encoder, 150 steps, 96 px crops,
2 torch threads) is run once per seed: a teacher on hand labels, a student distilled from it,
and the weak-label baseline, each scored on the same held-out synthetic test scenes. One run
cannot show which method is better (noise across CPUs moves a run's scores by a few hundredths);
the mean difference over seeds and its spread can. Prints one JSON line: per seed the three
IoUs, then ``gain_mean``, ``gain_std`` (sample), ``gain_sem`` and how many seeds the student won.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def one_seed(seed: int, steps: int) -> dict:
    from floodxr import train
    from floodxr.evaluation import score

    config = train.CPU.replace(
        encoder="tu-lcnet_100",
        decoder_channels=32,
        crop=96,
        batch_size=8,
        steps=steps,
        eval_every=50,
        checkpoint_every=steps,
        threads=2,
        seed=seed,
    )
    out = Path(tempfile.mkdtemp())
    labelled = train.synthetic_source(12, seed=11, size=256)
    external = train.synthetic_source(24, seed=12, size=256)
    valid = train.synthetic_source(6, seed=13, size=256)
    test = train.synthetic_source(10, seed=14, size=256)
    teacher = train.teacher(
        labelled, valid=valid, out=out / "teacher", config=config, progress=False
    )
    student = train.student(
        [labelled, external],
        teacher=teacher.best,
        valid=valid,
        out=out / "student",
        config=config,
        progress=False,
    )
    weak = train.supervised(
        external, labels="weak", valid=valid, out=out / "weak", config=config, progress=False
    )
    scores = {}
    for name, run in (("teacher", teacher), ("student", student), ("weak", weak)):
        scores[name] = round(score(run.best, test.scenes, progress=False).aggregate_iou, 4)
    return {"seed": seed, **scores, "gain": round(scores["student"] - scores["weak"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()
    began = time.perf_counter()
    runs = []
    for seed in args.seeds:
        runs.append(one_seed(seed, args.steps))
        if not args.json:
            print(runs[-1], flush=True)
    gains = [r["gain"] for r in runs]
    spread = statistics.stdev(gains) if len(gains) > 1 else 0.0
    result = {
        "setting": "training notebook (150-step default)",
        "steps": args.steps,
        "runs": runs,
        "gain_mean": round(statistics.fmean(gains), 4),
        "gain_std": round(spread, 4),
        "gain_sem": round(spread / len(gains) ** 0.5, 4),
        "student_wins": sum(g > 0 for g in gains),
        "n_seeds": len(gains),
        "seconds": round(time.perf_counter() - began),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
