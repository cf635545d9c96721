"""Score a water-mapping method on the chips of a Sen1Floods11 split (the paper's metric)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import xarray as xr
from tqdm.auto import tqdm

from floodxr import threshold
from floodxr.data import sen1floods11
from floodxr.errors import InvalidOptionError
from floodxr.metrics import Confusion, aggregate_iou, confusion, mean_iou
from floodxr.options import OPTIONS

__all__ = ["METHODS", "Method", "evaluate_split", "predict_chip"]

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
        raise InvalidOptionError(f"unknown method {method!r}; known methods are {METHODS}")
    if method == "event-threshold" and events is None:
        raise InvalidOptionError("method 'event-threshold' needs events=read_events(metadata)")
    return _PREDICTORS[method](chip, band, events or {})


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
) -> dict[str, Any]:
    """Score ``method`` on the chips of ``split`` present under ``data``.

    Returns a JSON-ready dict: method, band, split, ``n_chips`` (present and scored),
    ``n_missing`` (listed but absent), ``aggregate_iou`` (sum of intersections / sum of unions),
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
    if method not in _PREDICTORS:
        raise InvalidOptionError(f"unknown method {method!r}; known methods are {METHODS}")
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
    confusions: list[Confusion] = []
    for chip in tqdm(chips.open(), total=len(chips), desc=f"{method} on {split}", disable=not show):
        assert chip.label is not None  # read_split lists only chips with a label
        counts = confusion(predict_chip(chip, method=method, band=band, events=events), chip.label)
        confusions.append(counts)
        rows.append({"chip": chip.id, "iou": _number(counts.iou),
                     "intersection": counts.intersection, "union": counts.union})  # fmt: skip
    pooled = sum(confusions, Confusion())
    return {
        "method": method,
        "band": band,
        "split": split,
        "n_chips": len(rows),
        "n_missing": len(chips.missing),
        "aggregate_iou": _number(aggregate_iou(confusions)),
        "mean_iou": _number(mean_iou(confusions)),
        "precision": _number(pooled.precision),
        "recall": _number(pooled.recall),
        "f1": _number(pooled.f1),
        "accuracy": _number(pooled.accuracy),
        "chips": rows,
    }
