"""Train the teacher and student that ship with floodxr, score them, and install them (fp16).

    cd WORK && python REPO/examples/ship_models.py --data REPO/../shared/data/sen1floods11

Run in a work folder; it trains (or resumes) in ``runs/cpu/`` there, like::

    floodxr train teacher --config REPO/examples/configs/cpu/teacher.yaml \\
        --set settings.steps=1000 --set settings.eval_every=250
    floodxr train student --config REPO/examples/configs/cpu/student.yaml \\
        --set settings.steps=1000 --set settings.eval_every=250

then scores both best checkpoints on the synthetic test scenes of the configurations and on the
Sen1Floods11 chips under ``--data`` (development chips, never trained on), and writes them as
float16 into ``floodxr/models/weights/{teacher,student}`` with those scores in their JSON.
Every step resumes: re-running after an interruption finishes the rest, and
``floodxr reproduce-table --configs REPO/examples/configs/cpu --set settings.steps=1000
--set settings.eval_every=250`` in the same folder reuses these runs. See docs/model-card.md.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

from floodxr import models
from floodxr.errors import MissingChipsWarning
from floodxr.evaluation import evaluate_split
from floodxr.train.config import build_sources, load_config, run_stage
from floodxr.train.table import score_checkpoint

CONFIGS = Path(__file__).resolve().parent / "configs" / "cpu"
STEPS = ("settings.steps=1000", "settings.eval_every=250")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder (dev chips)")
    parser.add_argument("--install", type=Path, default=models.WEIGHTS_DIR,
                        help="where to write the fp16 checkpoints (default: the package)")
    args = parser.parse_args()
    stages = {name: load_config(CONFIGS / f"{name}.yaml", STEPS) for name in ("teacher", "student")}
    for name, config in stages.items():
        (result,) = run_stage(config)
        # install first, then score what is installed: the float16 weights
        trained = models.load(result.best)
        path = models.save(trained.module, trained.config.replace(name=name), args.install / name,
                           overwrite=True, half=True)  # fmt: skip
        installed = models.load(path)
        test = [s for source in build_sources(config.test) for s in source.scenes]
        synthetic = score_checkpoint(path, test)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MissingChipsWarning)
            dev = evaluate_split(args.data, method=str(path), split="test", progress=False)
        scores = {
            "valid_iou_synthetic": result.best_iou,
            "test_iou_synthetic": synthetic.iou,
            "dev_chips": {"split": "Sen1Floods11 test (development chips, never trained on)",
                          "n_chips": dev["n_chips"], "aggregate_iou": dev["aggregate_iou"],
                          "mean_iou": dev["mean_iou"],
                          "per_chip": {r["chip"]: r["iou"] for r in dev["chips"]}},
        }  # fmt: skip
        models.save(installed.module, installed.config.replace(scores=scores), path,
                    overwrite=True, half=True)  # fmt: skip
        print(f"{name}: wrote {path}")
        print(json.dumps(scores, indent=2))


if __name__ == "__main__":
    main()
