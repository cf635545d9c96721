"""The ``floodxr`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from floodxr.errors import FloodxrError

__all__ = ["main"]


def _format_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_table(result: dict[str, Any]) -> None:
    print(f"method {result['method']} (band {result['band']}) on split {result['split']}: "
          f"{result['n_chips']} chips scored, {result['n_missing']} listed but absent")  # fmt: skip
    width = max([len("chip")] + [len(row["chip"]) for row in result["chips"]])
    print(f"{'chip':<{width}}  {'IoU':>7}  {'intersection':>12}  {'union':>9}")
    for row in result["chips"]:
        print(f"{row['chip']:<{width}}  {_format_number(row['iou']):>7}  "
              f"{row['intersection']:>12}  {row['union']:>9}")  # fmt: skip
    for key in ("aggregate_iou", "mean_iou", "precision", "recall", "f1", "accuracy"):
        print(f"{key:<14} {_format_number(result[key])}")


def _evaluate(args: argparse.Namespace) -> int:
    from floodxr.evaluation import evaluate_split

    result = evaluate_split(
        args.data,
        method=args.method,
        band=args.band,
        split=args.split,
        split_file=args.split_file,
        metadata=args.metadata,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from floodxr import demo

    result = demo.run(args.out, overwrite=args.overwrite)
    print(f"chip {result.chip} (bundled real Sen1Floods11 chip), method {result.method}")
    print(
        f"flooded area: {result.water_km2:.3f} km2 (hand label: {result.label_water_km2:.3f} km2)"
    )
    print(f"water IoU against the hand label: {result.iou:.4f}")
    print(f"wrote {result.geotiff} and {result.png}")
    return 0


def _parser() -> argparse.ArgumentParser:
    from floodxr.evaluation import METHODS

    parser = argparse.ArgumentParser(
        prog="floodxr", description="Flood extent from Sentinel-1 radar (xarray + Dask)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evaluate = commands.add_parser(
        "evaluate",
        help="score a method on a Sen1Floods11 split (water IoU)",
        description="Score a method on the chips of a Sen1Floods11 split present under --data. "
        "Chips listed in the split but absent are skipped and counted.",
    )
    evaluate.add_argument("--method", choices=METHODS, default="otsu")
    evaluate.add_argument("--band", choices=("vv", "vh"), default="vh",
                          help="polarisation to threshold (default vh)")  # fmt: skip
    evaluate.add_argument("--data", required=True, help="Sen1Floods11 folder (S1Hand/, LabelHand/)")
    evaluate.add_argument("--split", default="test", help="train, valid, test or bolivia")
    evaluate.add_argument(
        "--split-file", help="split CSV (default DATA/splits/flood_SPLIT_data.csv)"
    )
    evaluate.add_argument(
        "--metadata", help="event GeoJSON (default DATA/Sen1Floods11_Metadata.geojson)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(run=_evaluate)

    demo = commands.add_parser(
        "demo",
        help="map the water of the bundled real chip, write GeoTIFF + PNG, print area and IoU",
        description="Segment the real Sen1Floods11 chip bundled with floodxr with the best "
        "method available, write OUT/flood_map.tif and OUT/flood_map.png, and print the "
        "flooded area and the IoU against the chip's hand label.",
    )
    demo.add_argument("--out", default="floodxr-demo", help="output folder (default floodxr-demo)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``floodxr`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FloodxrError as err:
        print(f"floodxr {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
