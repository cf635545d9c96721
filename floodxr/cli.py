"""The ``floodxr`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from floodxr.bands import S1_BANDS
from floodxr.errors import FloodxrError, InvalidOptionError
from floodxr.options import ENGINES, set_options

__all__ = ["main"]


def _format_number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _print_table(result: dict[str, Any]) -> None:
    band = f" (band {result['band']})" if result["band"] else ""
    print(
        f"{result['method']}{band} on split {result['split']}: {result['n_chips']} chips "
        f"scored, {result['n_missing']} listed but absent, {result['n_skipped']} without S2, "
        f"{result['n_failed']} unreadable"
    )
    for failure in result["failed"]:
        print(f"unreadable: {failure['chip']}: {failure['error']}")
    width = max([len("chip")] + [len(row["chip"]) for row in result["chips"]])
    print(f"{'chip':<{width}}  {'IoU':>7}  {'intersection':>12}  {'union':>9}")
    for row in result["chips"]:
        print(
            f"{row['chip']:<{width}}  {_format_number(row['iou']):>7}  "
            f"{row['intersection']:>12}  {row['union']:>9}"
        )
    for key in ("aggregate_iou", "mean_iou", "precision", "recall", "f1", "accuracy", "ece"):
        if result.get(key) is not None or key != "ece":
            print(f"{key:<14} {_format_number(result[key])}")


def _evaluate(args: argparse.Namespace) -> int:
    from floodxr.evaluation import evaluate_models, evaluate_split

    options = {
        "band": args.band,
        "split": args.split,
        "split_file": args.split_file,
        "metadata": args.metadata,
        "progress": not args.no_progress,
        "threshold_db": args.threshold,
        "on_error": "skip" if args.skip_unreadable else "raise",
    }
    if args.model and args.method:
        raise InvalidOptionError("pass --method (a baseline) or --model (trained models), not both")
    if len(args.model or []) > 1:
        with set_options(engine=args.engine):
            summary = evaluate_models(args.data, args.model, **options)
        if args.json:
            print(json.dumps(summary))
        else:
            for run in summary["runs"]:
                _print_table(run)
            print(
                f"aggregate IoU over {summary['n_runs']} models: "
                f"{_format_number(summary['aggregate_iou_mean'])} +- "
                f"{_format_number(summary['aggregate_iou_std'])}"
            )
        return 0
    method = args.model[0] if args.model else (args.method or "otsu")
    with set_options(engine=args.engine):
        result = evaluate_split(args.data, method=method, **options)
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
    print(
        f"water IoU against the hand label: {result.iou:.4f} (global Otsu on VH: "
        f"{result.otsu_iou:.4f})"
    )
    print(f"wrote {result.geotiff} and {result.png}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from floodxr.train.config import load_config, run_stage

    config = load_config(args.config, args.overrides)
    if config.stage != args.stage:
        raise InvalidOptionError(
            f"{args.config} configures stage {config.stage!r}, not {args.stage!r}; run "
            f"floodxr train {config.stage} --config {args.config}"
        )
    if args.cv == "events":
        from floodxr.train.cv import cross_validate

        summary = cross_validate(config, progress=not args.no_progress)
        rows = [("model", summary["aggregate_iou"])]
        rows += [(name, found["aggregate_iou"]) for name, found in summary["baselines"].items()]
        print(f"{config.name}: leave-one-event-out over {len(summary['events'])} events")
        for name, value in rows:
            print(f"  {name:<18} aggregate IoU {value:.4f}" if value is not None else name)
        print(
            f"  ECE {summary['ece']:.4f}; at the fitted temperature "
            f"{summary['temperature']:.3g}: {summary['ece_at_temperature']:.4f}"
        )
        print(f"  -> {config.out / 'cv' / 'summary.json'}")
        return 0
    for result in run_stage(config, progress=not args.no_progress):
        print(f"{config.name}: best valid IoU {result.best_iou:.4f} -> {result.best}")
    return 0


def _reproduce_table(args: argparse.Namespace) -> int:
    from floodxr.train.table import format_table, reproduce_table

    rows = reproduce_table(args.configs, overrides=args.overrides, progress=not args.no_progress)
    print(json.dumps([row.as_dict() for row in rows]) if args.json else format_table(rows))
    return 0


def _catalog(value: str, profile: str | None) -> Any:
    from floodxr.data import stac

    catalog = stac.get_catalog(value)
    if profile is None or catalog.s1 is not None:
        return catalog  # a URL without a profile: its collections describe themselves
    return stac.get_catalog(profile).with_url(catalog.url)


def _print_areas(areas: Any) -> None:
    header = f"{'basin':<12} {'time (UTC)':<20} {'water km2':>10} {'flood km2':>10} {'observed':>9}"
    print(header)
    for row in areas.itertuples():
        flood = (
            ""
            if row.flood_km2 is None or row.flood_km2 != row.flood_km2
            else (f"{row.flood_km2:.4f}")
        )
        print(
            f"{row.basin:<12} {row.time:%Y-%m-%d %H:%M:%S}  {row.water_km2:>10.4f} "
            f"{flood:>10} {row.observed_fraction:>8.1%}"
        )


def _basin(args: argparse.Namespace) -> int:
    from floodxr import basin

    if args.scheduler and args.workers:
        raise InvalidOptionError(
            "--workers starts a LocalCluster; with --scheduler the "
            "cluster's own workers are used: pass one of them"
        )
    if args.workers is not None and args.workers < 1:
        raise InvalidOptionError(f"--workers must be at least 1, got {args.workers}")
    if args.scheduler and args.threads:
        raise InvalidOptionError(
            "--threads sets the threads of the LocalCluster's workers; with --scheduler the "
            "cluster's own workers are used: pass one of them"
        )
    catalog = _catalog(args.catalog, args.profile)
    inputs = {
        "datetime": args.datetime,
        "store": args.store,
        "model": args.model,
        "resolution": args.resolution,
        "reference_dates": args.reference_dates,
        "reference_mask": args.reference_mask,
        "reference": args.reference,
        "chunk": args.chunk,
        "id_column": args.id_column,
    }
    # everything that can be checked is checked before a cluster starts
    basin.check_inputs(args.basins, **inputs)
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    else:
        client = basin.start_cluster(args.workers, threads_per_worker=args.threads or 1)
    print(f"dask dashboard: {client.dashboard_link}", flush=True)
    try:
        result = basin.run(
            args.basins,
            **inputs,
            catalog=catalog,
            polygons=args.polygons,
            client=client,
            table=args.table,
            progress=not args.no_progress,
            # the threads are the cluster's, started above
            **{k: v for k, v in _layer_options(args).items() if k != "threads"},
        )
    finally:
        cluster = None if args.scheduler else client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
    _print_areas(result.areas)
    print(
        f"units computed now: {len(result.computed)}, already in the store: "
        f"{len(result.skipped)}; basins without acquisitions: {result.empty or 'none'}"
    )
    print(f"wrote {result.store} and {result.table}")
    return 0


def _add_layer_options(parser: argparse.ArgumentParser, *, threads: str) -> None:
    """The exclusion, reference-water, engine and thread options of ``map`` and ``basin``."""
    parser.add_argument(
        "--no-exclusion",
        action="store_true",
        help="map every pixel the radar saw: no shadow, layover, HAND or land-cover exclusion",
    )
    parser.add_argument(
        "--no-reference-water",
        action="store_true",
        help="map water only: no reference water, no flood layer",
    )
    for layer, default, what in (
        ("dem", "cop-dem-glo-30", "DEM (metres) for shadow, layover and HAND"),
        ("landcover", "esa-worldcover", "land cover (ESA WorldCover classes)"),
        ("occurrence", "jrc-gsw", "surface-water occurrence (percent)"),
    ):
        parser.add_argument(
            f"--{layer}",
            metavar="ID_OR_FILE",
            help=f"the {what}: a collection id of the catalogue or a raster file, e.g. "
            f"{layer}.tif (default: {default} when the catalogue offers it)",
        )
    parser.add_argument(
        "--hand",
        metavar="ID_OR_FILE",
        help="a precomputed height above nearest drainage in metres (a collection id or a "
        "raster file, e.g. hand.tif), read instead of computed from the DEM (default: computed)",
    )
    parser.add_argument(
        "--occurrence-min",
        type=float,
        default=50.0,
        help="occurrence (percent) from which a pixel is reference water (default 50)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="how the model runs: auto (int8 ONNX when the checkpoint has one), torch, onnx "
        "or onnx-int8 (default: floodxr's option, auto)",
    )
    parser.add_argument("--threads", type=int, help=threads)


def _layer_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "exclusion": not args.no_exclusion,
        "reference_water": not args.no_reference_water,
        "dem": args.dem,
        "landcover": args.landcover,
        "occurrence": args.occurrence,
        "hand": args.hand,
        "occurrence_min": args.occurrence_min,
        "engine": args.engine,
        "threads": args.threads,
    }


def _map(args: argparse.Namespace) -> int:
    from floodxr.mapping import map_floods

    result = map_floods(
        args.bbox,
        args.datetime,
        out=args.out,
        catalog=args.catalog,
        collection=args.collection,
        model=args.model,
        reference=args.reference,
        resolution=args.resolution,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **_layer_options(args),
    )
    print(result.areas.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {sum(len(f) for f in result.files.values())} files and areas.csv to {result.out}")
    return 0


def _basin_report(args: argparse.Namespace) -> int:
    from floodxr import basin
    from floodxr.plot import basin_areas

    areas = basin.report(args.store)
    if args.csv:
        print(areas.to_csv(index=False), end="")
    else:
        _print_areas(areas)
    if args.png:
        from floodxr.writers import atomic

        with atomic(args.png, overwrite=True) as partial:  # a report is redrawn on request
            basin_areas(areas).savefig(partial, dpi=120)
        print(f"wrote {args.png}", file=sys.stderr)
    return 0


def _add_overrides(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=text
    )


def _parser() -> argparse.ArgumentParser:
    from floodxr.evaluation import METHODS

    parser = argparse.ArgumentParser(
        prog="floodxr", description="Flood extent from Sentinel-1 radar (xarray + Dask)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    evaluate = commands.add_parser(
        "evaluate",
        help="score a baseline or a trained model on a Sen1Floods11 split (water IoU)",
        description="Score a method on the chips of a Sen1Floods11 split present under --data. "
        "Chips listed in the split but absent are skipped and counted.",
    )
    evaluate.add_argument("--method", choices=METHODS, help="a baseline (default otsu)")
    evaluate.add_argument(
        "--model",
        action="append",
        metavar="NAME_OR_PATH",
        help="a trained model: registered name (student, teacher) or checkpoint "
        "path; repeat for several runs (mean +- std)",
    )
    evaluate.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="how --model runs: auto (default: int8 ONNX when the checkpoint "
        "has one, else ONNX Runtime, else torch), torch, onnx or "
        "onnx-int8",
    )
    evaluate.add_argument(
        "--threshold",
        type=float,
        metavar="DB",
        help="the threshold in dB of --method fixed (e.g. -18)",
    )
    evaluate.add_argument(
        "--band", choices=S1_BANDS, default="vh", help="polarisation to threshold (default vh)"
    )
    evaluate.add_argument("--data", required=True, help="Sen1Floods11 folder (S1Hand/, LabelHand/)")
    evaluate.add_argument("--split", default="test", help="train, valid, test or bolivia")
    evaluate.add_argument(
        "--split-file", help="split CSV (default DATA/splits/flood_SPLIT_data.csv)"
    )
    evaluate.add_argument(
        "--metadata", help="event GeoJSON (default DATA/Sen1Floods11_Metadata.geojson)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="score the other chips when a chip's files cannot be read (they "
        "are listed as failed) instead of stopping",
    )
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.set_defaults(run=_evaluate)

    demo = commands.add_parser(
        "demo",
        help="map the water of the bundled real chip, write GeoTIFF + PNG, print area and IoU",
        description="Segment the real Sen1Floods11 chip bundled with floodxr with the shipped "
        "student, write OUT/flood_map.tif and OUT/flood_map.png, and print the "
        "flooded area and the IoU against the chip's hand label.",
    )
    demo.add_argument("--out", default="floodxr-demo", help="output folder (default floodxr-demo)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.set_defaults(run=_demo)

    train = commands.add_parser(
        "train",
        help="train a teacher, a student or a supervised baseline from a YAML configuration",
        description="Train one stage of the paper from a configuration (see "
        "examples/configs/paper and examples/configs/cpu). Runs resume where they stopped.",
    )
    train.add_argument("stage", choices=("teacher", "student", "supervised"))
    train.add_argument("--config", required=True, help="YAML configuration file")
    _add_overrides(train, "change an entry, e.g. --set settings.steps=200 --set out=runs/try")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument(
        "--cv",
        choices=("events",),
        help="cross-validate instead: leave each flood event of the labelled chips out once, "
        "train without it, score its chips (model and baselines); writes OUT/cv/summary.json",
    )
    train.set_defaults(run=_train)

    table = commands.add_parser(
        "reproduce-table",
        help="train every Table 1 row of a configuration folder and print ours beside the paper's",
        description="Train CONFIGS/{teacher,supervised-hand,supervised-weak,supervised-weak-ed,"
        "student}.yaml (those present, resuming finished work) and score each, and Otsu, on the "
        "test scenes of its configuration.",
    )
    table.add_argument(
        "--configs", required=True, help="folder of stage configurations, e.g. examples/configs/cpu"
    )
    _add_overrides(table, "change an entry of every configuration, e.g. settings.steps=50")
    table.add_argument("--json", action="store_true", help="print the rows as JSON")
    table.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    table.set_defaults(run=_reproduce_table)

    basin = commands.add_parser(
        "basin",
        help="map water and flood over basins for every Sentinel-1 pass, on a dask cluster",
        description="Search the STAC API for every Sentinel-1 acquisition over each basin, "
        "segment, clip and write the maps into one Zarr store (a group per basin) and the areas "
        "into a CSV table. Re-running resumes: finished (basin, date) units are skipped.",
    )
    basin.add_argument("--basins", required=True, help="GeoJSON of basin polygons (lon/lat)")
    basin.add_argument("--id-column", default="id", help="property holding the basin id")
    basin.add_argument("--datetime", required=True, help="STAC interval START/END")
    basin.add_argument(
        "--catalog", default="planetary-computer", help="catalog name or STAC API URL"
    )
    basin.add_argument(
        "--profile",
        help="a named profile (e.g. planetary-computer) for the collections of a --catalog URL; "
        "default: the API's own collection metadata",
    )
    basin.add_argument("--store", required=True, help="output Zarr store (a folder)")
    basin.add_argument("--table", help="area table CSV (default STORE.areas.csv)")
    basin.add_argument("--model", default="student", help="model name or checkpoint path")
    basin.add_argument("--resolution", type=float, default=10.0, help="pixel size in metres")
    basin.add_argument(
        "--reference-dates",
        metavar="START/END",
        help="flood = water minus reference water; the reference from the passes in these "
        "pre-flood dates (per-pixel median), e.g. 2019-08-01/2019-08-31",
    )
    basin.add_argument(
        "--reference-mask",
        metavar="FILE",
        help="or from a water mask raster (1 water, 0 dry), e.g. permanent_water.tif",
    )
    basin.add_argument(
        "--reference",
        help="deprecated: dates or a mask file, told apart by whether the file exists; use "
        "--reference-dates / --reference-mask",
    )
    basin.add_argument(
        "--polygons",
        action="store_true",
        help="also write each pass's flood polygons as STORE.polygons/BASIN/TIME.parquet",
    )
    _add_layer_options(
        basin, threads="threads per worker process of the cluster started here (default 1)"
    )
    basin.add_argument("--chunk", type=int, default=1024, help="chunk side in pixels")
    basin.add_argument("--scheduler", metavar="ADDRESS", help="a running dask scheduler")
    basin.add_argument(
        "--workers", type=int, help="LocalCluster worker processes (default: one per core)"
    )
    basin.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    basin.set_defaults(run=_basin)

    flood_map = commands.add_parser(
        "map",
        help="map water and flood for every Sentinel-1 pass over a box: COGs, polygons, PNGs",
        description="Search a STAC API for the Sentinel-1 passes over --bbox in --datetime and, "
        "pass by pass (lazily, chunk by chunk, with a progress bar), write into --out the layers "
        "of Copernicus GFM's product as Cloud-Optimized GeoTIFFs (probability, likelihood, "
        "exclusion, water, flood, advisory flags), the flood and water polygons and the "
        "footprint (GeoParquet), a PNG overlay, the event composite over the passes, and one "
        "areas.csv. Radar shadow, layover, high ground (HAND) and land cover the radar cannot "
        "map are excluded with the catalogue's DEM and land cover, and flood is water outside "
        "the reference water (the --reference passes', else the catalogue's water occurrence), "
        "whenever the catalogue offers them. Everything that needs no network is checked first.",
        epilog="example: floodxr map --bbox -0.45 39.2 -0.25 39.4 "
        "--datetime 2019-09-10/2019-09-20 --reference 2019-08-01/2019-08-31 --out valencia/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flood_map.add_argument(
        "--bbox",
        nargs=4,
        type=float,
        required=True,
        metavar=("W", "S", "E", "N"),
        help="the area in degrees, west south east north, e.g. -0.45 39.2 -0.25 39.4",
    )
    flood_map.add_argument(
        "--datetime",
        required=True,
        metavar="START/END",
        help="the passes to map, e.g. 2019-09-10/2019-09-20 (or one day, 2019-09-13)",
    )
    flood_map.add_argument(
        "--catalog",
        default="planetary-computer",
        help="a catalog name (planetary-computer, earth-search, copernicus) or any STAC API "
        "URL, e.g. http://localhost:8080 (default planetary-computer)",
    )
    flood_map.add_argument(
        "--collection",
        help="the Sentinel-1 collection id when the API's is not a well-known one, "
        "e.g. my-s1-rtc (its item_assets / raster:bands say how it stores the bands)",
    )
    flood_map.add_argument(
        "--model", default="student", help="model name or checkpoint path (default student)"
    )
    flood_map.add_argument(
        "--reference",
        "--reference-water-from",
        dest="reference",
        metavar="START/END",
        help="pre-flood dates, e.g. 2019-08-01/2019-08-31: the reference water is where their "
        "passes saw water (per-pixel median probability >= 0.5), and flood = water outside it; "
        "without them the reference water is the catalogue's water occurrence (jrc-gsw)",
    )
    _add_layer_options(flood_map, threads="threads computing the map, e.g. 4 (default: all cores)")
    flood_map.add_argument(
        "--resolution",
        type=float,
        default=10.0,
        help="pixel size in metres on the UTM grid (default 10)",
    )
    flood_map.add_argument(
        "--out", required=True, help="the folder to write into (created), e.g. valencia/"
    )
    flood_map.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier run in --out"
    )
    flood_map.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    flood_map.set_defaults(run=_map)

    report = commands.add_parser(
        "basin-report",
        help="print (and plot) the area time series of a basin store",
        description="Print the water / flood area per basin and acquisition of a store written "
        "by floodxr basin; --png plots it.",
    )
    report.add_argument("store", help="the Zarr store of a floodxr basin run")
    report.add_argument("--png", help="write the area time series plot here")
    report.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    report.set_defaults(run=_basin_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``floodxr`` command; returns the exit status: 0, 2 for an input floodxr refuses
    (one line naming it), 130 when interrupted (Ctrl-C: one line, no traceback; every file
    already written is whole, the rest was never renamed into place)."""
    command = "floodxr"
    try:
        args = _parser().parse_args(argv)
        command = f"floodxr {args.command}"
        return int(args.run(args))
    except FloodxrError as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted; outputs already written are whole", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
