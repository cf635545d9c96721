"""One candidate student judged the way the model card compares them: real chips it never saw, the
demo chip, plain land on the loopback STAC scene, and the stress families.

    python benchmarks/candidate.py CHECKPOINT [CHECKPOINT ...] --data ../shared/data/sen1floods11

For each checkpoint (a path or a registered name) one JSON line with

* ``held_out``: pooled water IoU on the eight development chips other than the demo chip, the
  model as it is (:func:`floodxr.train.cv.score_unseen`; only for a model that saw none of them:
  the chips it trained on are refused by name), with the per-chip IoU and the LOEO-style
  calibration (``ece``, ``temperature``, ``ece_at_temperature``);
* ``demo``: water IoU on ``Spain_7370579``;
* ``loopback``: the flooded pass of the loopback STAC world (``floodxr.testing.stac``, the scene
  ``tests/test_terrain.py`` maps: plain land at VH -16 dB, VV -9 dB, a river and a lake 13 dB
  darker): the water IoU and the share of its dry pixels called water;
* ``stress``: per family of ``benchmarks/stress.py`` (12 scenes of 384 px), the model's IoU, the
  fixed -18 dB threshold's IoU and the model's share of pixels called water.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer
from stress import run as stress_run  # benchmarks/stress.py, beside this script

from floodxr import models
from floodxr.data import sen1floods11, stac
from floodxr.evaluation import score
from floodxr.testing.stac import SYNTHETIC_BBOX, serve_synthetic, synthetic_water
from floodxr.train.config import load_config
from floodxr.train.cv import score_unseen

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "examples" / "configs" / "cpu" / "student-real.yaml"


def loopback_scene() -> tuple[Any, np.ndarray, np.ndarray]:
    """The loopback world's flooded pass (dB, mosaicked), its true water and its valid pixels."""
    with serve_synthetic() as (catalog, _):
        items = stac.search_s1(SYNTHETIC_BBOX, "2019-09-25", catalog=catalog)
        s1 = stac.load_s1(items, mosaic=True).isel(time=0).compute()
    x, y = np.meshgrid(s1.x.values, s1.y.values)
    lon, lat = Transformer.from_crs(s1.rio.crs, "EPSG:4326", always_xy=True).transform(x, y)
    return s1, synthetic_water(lon, lat, 1) == 1, np.isfinite(s1.values).all(0)


def judge(model: str, data: Path, loopback: tuple[Any, np.ndarray, np.ndarray]) -> dict[str, Any]:
    models.resolve(model)  # a named error for a path or name that is not a model
    chips = (
        f"{{kind: sen1floods11, root: {data}, split: test, exclude: [{sen1floods11.SAMPLE_CHIP}]}}"
    )
    config = load_config(CONFIG, [f"labelled=[{chips}]"])
    held = score_unseen(model, config)
    demo = score(
        model, [sen1floods11.open_chip(data, sen1floods11.SAMPLE_CHIP).scene()], progress=False
    )
    s1, truth, valid = loopback
    called = (s1.flood.segment(model=model).values >= 0.5) & valid
    families = stress_run(model, 12, 384)["families"]
    return {
        "model": model,
        "held_out": held["aggregate_iou"],
        "per_chip": {row["chip"]: row["model"]["iou"] for row in held["chips"]},
        "ece": held.get("ece"),
        "temperature": held.get("temperature"),
        "ece_at_temperature": held.get("ece_at_temperature"),
        "demo": demo.aggregate_iou,
        "loopback": {
            "iou": float((called & truth).sum() / (called | truth).sum()),
            "land_called_water": float(called[~truth & valid].mean()),
        },
        "stress": {
            name: {
                "model_iou": row["model"]["iou"],
                "fixed_iou": row["fixed -18 dB"]["iou"],
                "model_water_share": row["model"]["water_share"],
            }
            for name, row in families.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="checkpoint paths or registered names")
    parser.add_argument(
        "--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "sen1floods11"
    )
    args = parser.parse_args()
    loopback = loopback_scene()
    for model in args.models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(json.dumps(judge(model, args.data, loopback)), flush=True)


if __name__ == "__main__":
    main()
