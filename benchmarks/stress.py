"""Stress test: a model beside a fixed VH threshold and Otsu on scene families outside the world.

    python benchmarks/stress.py --json [--model student] [--scenes 12] [--size 384]

Each family is the synthetic world (:mod:`floodxr.data.synthetic`) with its class statistics
pushed to one edge of what Sentinel-1 meets, away from the training world's usual draws:

* ``bright water``: wind-roughened or vegetated water, VV -14 to -8 dB and VH -22 to -18 dB,
  beside land at about -15 dB VH (the Bolivia chip's failure);
* ``low contrast``: water only ~2 dB darker than the land in VH;
* ``dry arid``: no water at all, 20-60 % of the land dry sand and smooth soil as dark as calm
  water, the rest dry (the world's arid draw in every scene);
* ``all water``: the whole scene under calm flood water;
* ``steep terrain``: hilly scenes, steep slopes, radar shadow (dark, not water).

For every family the JSON gives the pooled water IoU of the model, of a fixed VH threshold of
-18 dB and of per-scene Otsu on VH, and the share of pixels each calls water (the measure on the
dry family, whose IoU is undefined); ``passed`` says whether the model scores at least the fixed
threshold's IoU on every family with water and calls under 1 % of the dry family water.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from floodxr.data.scene import Scene
from floodxr.data.synthetic import WORLD, paired_scene
from floodxr.evaluation import predict
from floodxr.metrics import Confusion, confusion

CALM = ((1.0, (0.0, 0.0)),)
NO_CHANGE = (0.0, 0.0)


def _world(**changes: Any) -> dict[str, Any]:
    world = dict(WORLD)
    s1 = dict(WORLD["s1"])
    s1.update(changes.pop("s1", {}))
    return world | changes | {"s1": s1}


#: family -> (world, water_fraction or None for the world's spread)
FAMILIES: dict[str, tuple[Mapping[str, Any], float | None]] = {
    "bright water": (
        _world(
            s1={"water": (-11.0, -20.0)},  # +-3 dB per scene: VV -14..-8, VH -23..-17
            water_wind_db=CALM,
            s1_land_shift_db=(1.0, 2.0),  # crops about -15 dB VH
            arid=(0.0, NO_CHANGE, NO_CHANGE),
            noise_removal=(1.0, (1.0, 1.0)),
        ),
        None,
    ),
    "low contrast": (
        _world(
            s1={
                "water": (-15.0, -18.5),
                **{name: (-10.5, -16.5) for name in ("crop", "grass", "bare", "wet_soil")},
            },
            water_level_db=NO_CHANGE,
            s1_class_jitter_db=0.0,
            water_wind_db=CALM,
            s1_land_shift_db=NO_CHANGE,
            smooth_lookalike=(0.0, 0.0),
            arid=(0.0, NO_CHANGE, NO_CHANGE),
            emergent=(0.0, (0.2, 0.2)),
            flooded_canopy=0.0,
            noise_removal=(1.0, (1.0, 1.0)),
        ),
        None,
    ),
    # every scene arid (the world draws 12 %), none with water
    "dry arid": (_world(arid=(1.0, *WORLD["arid"][1:])), 0.0),
    "all water": (_world(water_wind_db=CALM), 1.0),
    "steep terrain": (_world(hilly=(1.0, (10.0, 14.0))), None),
}


def _scenes(world: Mapping[str, Any], fraction: float | None, n: int, size: int) -> list[Scene]:
    scenes = []
    for k in range(n):
        seed = 7_000_000 + k
        made = paired_scene((size, size), seed=seed, world=world, water_fraction=fraction)
        if fraction is None and not 0.05 < float(made.water.mean()) < 0.95:
            made = paired_scene((size, size), seed=seed, world=world, water_fraction=0.3)
        image = made.image.sel(band=["vv", "vh"])
        scenes.append(Scene(f"stress:{seed}", image, label=made.label))
    return scenes


def _row(predictions: list[Any], scenes: list[Scene]) -> dict[str, Any]:
    total = sum(
        (confusion(p, s.label) for p, s in zip(predictions, scenes, strict=True)), Confusion()
    )
    called = (total.tp + total.fp) / max(1, total.tp + total.fp + total.fn + total.tn)
    return {
        "iou": None if np.isnan(total.iou) else total.iou,
        "water_share": called,
        "tp": total.tp,
        "fp": total.fp,
        "fn": total.fn,
    }


def run(model: str, n: int, size: int) -> dict[str, Any]:
    families = {}
    passed = True
    for name, (world, fraction) in FAMILIES.items():
        scenes = _scenes(world, fraction, n, size)
        truth = float(np.mean([float((s.label == 1).mean()) for s in scenes]))
        rows = {
            "model": _row([predict(s, method=model).compute() for s in scenes], scenes),
            "fixed -18 dB": _row(
                [predict(s, method="fixed", threshold_db=-18.0) for s in scenes], scenes
            ),
            "otsu": _row([predict(s, method="otsu") for s in scenes], scenes),
        }
        if truth == 0.0:
            ok = rows["model"]["water_share"] < 0.01
        else:
            ok = (rows["model"]["iou"] or 0.0) >= (rows["fixed -18 dB"]["iou"] or 0.0)
        passed &= ok
        families[name] = {"scenes": n, "true_water_share": truth, "passed": ok, **rows}
    return {"model": model, "size": size, "families": families, "passed": passed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="student", help="registered name or checkpoint path")
    parser.add_argument("--scenes", type=int, default=12, help="scenes per family")
    parser.add_argument("--size", type=int, default=384, help="scene side in pixels")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run(args.model, args.scenes, args.size)
    result["seconds"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, row in result["families"].items():
        print(
            f"{name:<14} model {row['model']['iou']} fixed {row['fixed -18 dB']['iou']} "
            f"otsu {row['otsu']['iou']} water share: true {row['true_water_share']:.3f} model "
            f"{row['model']['water_share']:.4f} fixed {row['fixed -18 dB']['water_share']:.4f} "
            f"{'ok' if row['passed'] else 'FAILED'}"
        )


if __name__ == "__main__":
    main()
