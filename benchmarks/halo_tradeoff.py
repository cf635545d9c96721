"""What a thinner window-free halo costs: the shipped student's output against its full context.

    python benchmarks/halo_tradeoff.py --data ../shared/data/sen1floods11 --json

Every development chip is run window-free in ``--core`` px window cores (256: twice the window
borders of segment's default 512) with each halo in ``--halo``, and once with the full context
(72 px, one window: the network's output over the whole chip). Prints one JSON line per halo:
the mean and largest absolute change in water probability, the share of mask pixels that flip
(p >= 0.5), and the change in the pooled water intersection and union against the hand labels
(pixels, all chips). The default engine (the int8 model when it ships).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

from floodxr import models
from floodxr.data import sen1floods11
from floodxr.errors import MissingChipsWarning
from floodxr.inference import WindowFree, predict_block
from floodxr.models.context import alignment
from floodxr.segment import _engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Sen1Floods11 folder")
    parser.add_argument("--model", default="student")
    parser.add_argument("--core", type=int, default=256)
    parser.add_argument("--halo", type=int, nargs="+", default=[0, 8, 16, 24, 32, 48])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weights = models.resolve(args.model)
    config = models.read_config(weights)
    align = alignment(config)
    full = -(-config.context // align) * align
    engine = _engine("auto", weights, "cpu")
    network = _network_for(weights, engine)
    low = np.array([config.normalization[b][0] for b in config.bands], "f4")[:, None, None]
    high = np.array([config.normalization[b][1] for b in config.bands], "f4")[:, None, None]

    def run(raw: np.ndarray, core: int, halo: int) -> np.ndarray:
        padded = np.pad(raw, ((0, 0), (halo, halo), (halo, halo)), mode="symmetric")
        return predict_block(
            padded,
            WindowFree(window=core, halo=halo, align=align),
            network,
            low=low,
            high=high,
            origin=(0, 0),
            sizes=raw.shape[1:],
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingChipsWarning)
        chips = list(sen1floods11.read_split(args.data, "test").open())
    totals = {
        h: {
            "abs_sum": 0.0,
            "abs_max": 0.0,
            "pixels": 0,
            "flipped": 0,
            "d_intersection": 0,
            "d_union": 0,
        }
        for h in args.halo
    }
    for chip in chips:
        raw = chip.s1.sel(band=list(config.bands)).values.astype("float32")
        side = -(-max(raw.shape[1:]) // align) * align
        reference = run(raw, side, full)
        label = chip.label.values if chip.label is not None else None
        for halo in args.halo:
            probability = run(raw, args.core, -(-halo // align) * align)
            valid = np.isfinite(probability) & np.isfinite(reference)
            if not valid.any():
                continue
            change = np.abs(probability - reference)[valid]
            t = totals[halo]
            t["abs_sum"] += float(change.sum())
            t["abs_max"] = max(t["abs_max"], float(change.max()))
            t["pixels"] += int(valid.sum())
            t["flipped"] += int(((probability >= 0.5) != (reference >= 0.5))[valid].sum())
            if label is not None:
                scored = valid & (label >= 0)
                for p, sign in ((probability, 1), (reference, -1)):
                    water, truth = (p >= 0.5) & scored, (label == 1) & scored
                    t["d_intersection"] += sign * int((water & truth).sum())
                    t["d_union"] += sign * int((water | truth).sum())
    for halo, t in totals.items():
        row = {
            "model": args.model,
            "engine": engine,
            "core": args.core,
            "halo": halo,
            "full_context_halo": full,
            "mean_abs_change": round(t["abs_sum"] / t["pixels"], 6),
            "max_abs_change": round(t["abs_max"], 4),
            "mask_flipped_pct": round(100 * t["flipped"] / t["pixels"], 4),
            "d_intersection_px": t["d_intersection"],
            "d_union_px": t["d_union"],
        }
        print(json.dumps(row) if args.json else row)


def _network_for(weights: Path, engine: str):  # type: ignore[no-untyped-def]
    from floodxr.models.onnx import load_session

    if engine.startswith("onnx"):
        return load_session(weights, threads=2, int8=engine == "onnx-int8").water_probability
    return models.load(weights).water_probability


if __name__ == "__main__":
    main()
