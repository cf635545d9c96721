"""Score a water-mapping method or a trained model on Sen1Floods11 chips (the paper's metric).

A *method* is a thresholding baseline (:data:`METHODS`); anything else is taken as a model: a
registered name (``"student"``, ``"teacher"``) or a checkpoint path, run with
:func:`floodxr.segment.segment` on the bands its checkpoint names (a teacher's S2 bands come from
the chip's ``S2Hand`` file; chips without one are skipped and counted).
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import xarray as xr
from tqdm.auto import tqdm

from floodxr import threshold
from floodxr.data import sen1floods11
from floodxr.errors import (
    AssetReadError,
    ChipReadError,
    FloodxrError,
    InvalidOptionError,
    MissingBandError,
    UnknownModelError,
)
from floodxr.metrics import Confusion, aggregate_iou, confusion, mean_iou
from floodxr.options import OPTIONS
from floodxr.segment import segment

__all__ = ["METHODS", "Method", "evaluate_split", "evaluate_models", "predict_chip"]

Method = Literal["otsu", "event-threshold", "otsu-tiled"]


def _event_threshold(chip: sen1floods11.Chip, band: str, events: Mapping[str, Any]) -> xr.DataArray:
    if band != "vh":
        raise InvalidOptionError(
            f"event-threshold uses the per-event VH thresholds of the metadata; got band "
            f"{band!r}, use --band vh"
        )
    value = float(sen1floods11.event_of(chip.id, events)["VH_thresh"])
    return threshold.fixed(chip.s1, value, band="vh")


Predictor = Callable[[sen1floods11.Chip, Any, Mapping[str, Any]], xr.DataArray]


def _on_s1(method: Callable[..., xr.DataArray]) -> Predictor:
    return lambda chip, band, events: method(chip.s1, band=band)


_PREDICTORS: dict[str, Predictor] = {
    **{name: _on_s1(method) for name, method in threshold.METHODS.items()},
    "event-threshold": _event_threshold,
}

#: Methods that :func:`evaluate_split` and ``floodxr evaluate --method`` know.
METHODS: tuple[str, ...] = tuple(_PREDICTORS)


def _model_bands(model: str) -> tuple[str, ...]:
    from floodxr import models

    try:
        return tuple(models.read_config(models.resolve(model)).bands)
    except UnknownModelError as err:
        raise UnknownModelError(f"{err}; or one of the methods {METHODS}") from err


def predict_chip(
    chip: sen1floods11.Chip,
    *,
    method: Method | str,
    band: str = "vh",
    events: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """The water mask of ``method`` for one chip.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.evaluation import predict_chip
    >>> chip = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP)
    >>> predict_chip(chip, method="otsu", band="vh").shape
    (512, 512)
    """
    if method not in _PREDICTORS:
        image = chip.stack(_model_bands(method))
        if image is None:
            raise MissingBandError(
                f"model {method!r} reads Sentinel-2 bands that chip {chip.id!r} lacks; give it "
                "an S2Hand file or evaluate a Sentinel-1 model"
            )
        return segment(image, model=method, output="mask")
    if method == "event-threshold" and events is None:
        raise InvalidOptionError("method 'event-threshold' needs events=read_events(metadata)")
    return _PREDICTORS[method](chip, band, events or {})


@contextlib.contextmanager
def _reading(chip: str, root: Path) -> Iterator[None]:
    """Name the chip when its files fail to read (GDAL's errors name only a file, or nothing)."""
    try:
        yield
    except FloodxrError as err:
        if not isinstance(err, AssetReadError):
            raise
        raise ChipReadError(f"chip {chip!r}: {err}; or skip unreadable chips (on_error='skip', "
                            "floodxr evaluate --skip-unreadable)") from err  # fmt: skip
    except (OSError, RuntimeError) as err:  # rasterio's RasterioIOError is an OSError
        raise ChipReadError(
            f"chip {chip!r} under {str(root)!r} cannot be read ({type(err).__name__}: "
            f"{str(err)[:300]}); replace its files, remove it from the split list, or skip "
            "unreadable chips (on_error='skip', floodxr evaluate --skip-unreadable)"
        ) from err


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def evaluate_split(
    data: str | Path,
    *,
    method: Method | str = "otsu",
    band: str = "vh",
    split: str = "test",
    split_file: str | Path | None = None,
    metadata: str | Path | None = None,
    progress: bool | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> dict[str, Any]:
    """Score ``method`` (a baseline or a model) on the chips of ``split`` present under ``data``.

    A chip whose files cannot be read (truncated, corrupt) raises
    :class:`~floodxr.errors.ChipReadError` naming it; with ``on_error="skip"`` it is left out,
    listed under ``failed`` with the reason, and the other chips are scored.

    Returns a JSON-ready dict: method, band, split, ``n_chips`` (present and scored),
    ``n_missing`` (listed but absent), ``n_skipped`` / ``skipped`` (present but lacking the
    S2 bands a teacher reads), ``aggregate_iou`` (sum of intersections / sum of unions),
    ``n_failed`` / ``failed`` (unreadable chips skipped with ``on_error="skip"``),
    ``mean_iou`` (over chips with a non-empty union), precision, recall, F1 and accuracy over
    all valid pixels, and per chip ``{"chip", "iou", "intersection", "union"}``. Undefined
    scores (an empty union) are ``None``.

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.evaluation import evaluate_split
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     result = evaluate_split(s11.SAMPLE_DIR, method="otsu", band="vh", progress=False)
    >>> result["n_chips"], result["chips"][0]["chip"], 0 < result["aggregate_iou"] < 1
    (1, 'Spain_7370579', True)
    """
    if on_error not in ("raise", "skip"):
        raise InvalidOptionError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    bands = None if method in _PREDICTORS else _model_bands(method)
    if band not in ("vv", "vh"):
        raise InvalidOptionError(f"band must be 'vv' or 'vh', got {band!r}")
    root = Path(data)
    chips = sen1floods11.read_split(root, split, split_file=split_file)
    events = None
    if method == "event-threshold":
        events = sen1floods11.read_events(
            metadata if metadata is not None else root / "Sen1Floods11_Metadata.geojson"
        )
    show = OPTIONS["progress"] if progress is None else progress
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    confusions: list[Confusion] = []
    failed: list[dict[str, str]] = []
    for chip_id in tqdm(chips, total=len(chips), desc=f"{method} on {split}", disable=not show):
        try:
            with _reading(chip_id, root):
                chip = sen1floods11.open_chip(root, chip_id)
                for array in (chip.s1, chip.label, chip.s2):
                    if array is not None:
                        array.load()  # read now: a truncated file fails here, named
        except ChipReadError as err:
            if on_error == "raise":
                raise
            failed.append({"chip": chip_id, "error": str(err)})
            continue
        assert chip.label is not None  # read_split lists only chips with a label
        if bands is not None and chip.stack(bands) is None:
            skipped.append(chip.id)
            continue
        counts = confusion(predict_chip(chip, method=method, band=band, events=events), chip.label)
        confusions.append(counts)
        rows.append({"chip": chip.id, "iou": _number(counts.iou),
                     "intersection": counts.intersection, "union": counts.union})  # fmt: skip
    pooled = sum(confusions, Confusion())
    return {
        "method": method,
        "band": band if bands is None else None,
        "split": split,
        "n_chips": len(rows),
        "n_missing": len(chips.missing),
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_failed": len(failed),
        "failed": failed,
        "aggregate_iou": _number(aggregate_iou(confusions)),
        "mean_iou": _number(mean_iou(confusions)),
        "precision": _number(pooled.precision),
        "recall": _number(pooled.recall),
        "f1": _number(pooled.f1),
        "accuracy": _number(pooled.accuracy),
        "chips": rows,
    }


def evaluate_models(
    data: str | Path, models: Sequence[str], **kwargs: Any
) -> dict[str, Any]:
    """:func:`evaluate_split` for each of ``models`` (runs of one setting) with mean and std.

    Returns ``{"runs": [...], "n_runs", "aggregate_iou_mean", "aggregate_iou_std",
    "mean_iou_mean", "mean_iou_std"}`` (population std; 0 for one run).

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.evaluation import evaluate_models
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     result = evaluate_models(s11.SAMPLE_DIR, ["otsu", "otsu-tiled"], progress=False)
    >>> result["n_runs"], result["aggregate_iou_std"] >= 0
    (2, True)
    """
    if not models:
        raise InvalidOptionError("evaluate_models needs at least one model or method")
    runs = [evaluate_split(data, method=model, **kwargs) for model in models]
    summary: dict[str, Any] = {"runs": runs, "n_runs": len(runs)}
    for key in ("aggregate_iou", "mean_iou"):
        values = [r[key] for r in runs if r[key] is not None]
        summary[f"{key}_mean"] = statistics.fmean(values) if values else None
        summary[f"{key}_std"] = statistics.pstdev(values) if values else None
    return summary
