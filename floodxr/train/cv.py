"""Leave-one-event-out cross-validation: every score on real chips is out of sample.

For each flood event among the labelled scenes of a configuration's sources (scenes whose
``event`` is set: Sen1Floods11 chips), the stage is trained again without that event's scenes and
scored on them; the confusion counts of all folds are pooled (Sen1Floods11's aggregate IoU over
the held-out chips). Scenes without an event (the synthetic world) train every fold. The same
held-out chips are scored with the non-learned baselines (a fixed VH threshold, per-chip Otsu and
Sen1Floods11's per-event thresholds), and the held-out water probabilities give the temperature
that calibrates them (fitted on out-of-sample predictions only) and the expected calibration error
before and after it.

``OUT/cv/<event>/`` holds each fold's run (resumable like any run), ``OUT/cv/summary.json`` the
result: ``floodxr train student --config ... --cv events``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from floodxr import models
from floodxr.data.scene import Scene
from floodxr.data.sen1floods11 import read_events
from floodxr.errors import InvalidOptionError
from floodxr.evaluation import fit_logit_temperature, predict
from floodxr.metrics import Calibration, Confusion, aggregate_iou, calibration, confusion
from floodxr.segment import water_cut
from floodxr.train.config import StageConfig, build_sources, run_stage
from floodxr.train.data import Source
from floodxr.writers import atomic

__all__ = ["BASELINES", "cross_validate", "events_of", "score_held_out", "score_unseen"]

#: The baselines scored on the same held-out chips: name -> (method, keyword arguments).
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "fixed -18 dB": ("fixed", {"threshold_db": -18.0}),
    "otsu": ("otsu", {}),
    "event thresholds": ("event-threshold", {}),
}


def events_of(sources: Sequence[Source]) -> list[str]:
    """The events of the scenes in ``sources``, sorted (scenes without one are not listed).

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.train.cv import events_of
    >>> from floodxr.train.data import sen1floods11_source, synthetic_source
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     chips = sen1floods11_source(s11.SAMPLE_DIR, "test")
    >>> events_of([chips, synthetic_source(1, size=64)])
    ['Spain']
    """
    return sorted({s.event for source in sources for s in source.scenes if s.event})


def _without(sources: Sequence[Source], event: str, *, shared: bool) -> list[Source]:
    """``sources`` without ``event``'s scenes; a source left empty is dropped when batches are
    shared equally (``shared``), refused when the configuration gives it a share."""
    kept = []
    for source in sources:
        scenes = tuple(s for s in source.scenes if s.event != event)
        if scenes:
            kept.append(Source(source.name, scenes))
        elif not shared:
            raise InvalidOptionError(
                f"source {source.name!r} holds only event {event!r}, and settings.shares gives "
                "it a share of each batch: without the event the fold has nothing to fill it "
                "with; add scenes of other events to that source, or drop settings.shares"
            )
    return kept


def _held_out(sources: Sequence[Source], event: str) -> list[Scene]:
    seen: dict[str, Scene] = {}
    for source in sources:
        for scene in source.scenes:
            if scene.event == event and scene.label is not None:
                seen.setdefault(scene.name, scene)
    return list(seen.values())


def _counts(c: Confusion) -> dict[str, Any]:
    return {"iou": None if np.isnan(c.iou) else c.iou, "tp": c.tp, "fp": c.fp, "fn": c.fn}


def _iou_at(logits: np.ndarray, truth: np.ndarray, cut: float) -> float | None:
    called = logits >= np.log(cut / (1 - cut))
    union = int((called | truth).sum())
    return int((called & truth).sum()) / union if union else None


def _plain(value: Any) -> Any:
    """JSON-ready: NaN (an undefined score) becomes None, numpy numbers plain ones."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: Path, data: Any) -> None:
    with atomic(path, overwrite=True) as partial:  # the fold's record, rewritten as it grows
        partial.write_text(json.dumps(data, indent=2))


def _events_metadata(config: StageConfig) -> dict[str, Any]:
    """Sen1Floods11's event metadata beside the chips the configuration reads (or none)."""
    for spec in config.train + config.labelled:
        if spec.get("kind") == "sen1floods11" and "root" in spec:
            path = Path(spec["root"]) / "Sen1Floods11_Metadata.geojson"
            if path.is_file():
                return read_events(path)
    return {}


def _folds(every: Sequence[Source], events: Sequence[str] | None) -> list[str]:
    folds = events_of(every) if events is None else list(events)
    if not folds:
        raise InvalidOptionError(
            "cross-validation by event needs labelled scenes with an event (Sen1Floods11 chips "
            "in 'train' or 'labelled'); the configuration's sources have none"
        )
    unknown = sorted(set(folds) - set(events_of(every)))
    if unknown:
        raise InvalidOptionError(
            f"events {unknown} are not in the sources, which hold {events_of(every)}"
        )
    return folds


def score_held_out(
    folds: Sequence[tuple[str, str | Path, Sequence[Scene]]], metadata: Mapping[str, Any]
) -> dict[str, Any]:
    """Score each fold's model on its held-out scenes, beside the baselines, and pool.

    ``folds`` are ``(event, checkpoint, scenes)``; ``metadata`` Sen1Floods11's event metadata
    (without it the per-event thresholds are left out). Returns the pooled and per-chip counts,
    the expected calibration error, the temperature fitted on the pooled held-out
    probabilities and the ECE at it, and the pooled IoU at other probability cuts.
    """
    chips: list[dict[str, Any]] = []
    model_total: list[Confusion] = []
    baselines = {
        name: found
        for name, found in BASELINES.items()
        if metadata or found[0] != "event-threshold"
    }
    baseline_total: dict[str, list[Confusion]] = {name: [] for name in baselines}
    cal = Calibration()
    logits: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    fold_rows = []
    for event, checkpoint, held in folds:
        own = models.read_config(models.resolve(checkpoint))
        scored, skipped = [], []
        for scene in held:
            labels = scene.label
            if labels is None:  # _held_out keeps labelled scenes only
                continue
            if not set(own.bands) <= set(scene.bands):  # a teacher on a chip without S2
                skipped.append(scene.name)
                continue
            # the model runs once per chip: its mask, calibration and logits all come from it
            probability = predict(scene, method=checkpoint).compute()
            found = confusion(probability, labels, threshold=water_cut(probability))
            scored.append(found)
            model_total.append(found)
            cal = cal + calibration(probability, labels)
            values, label = np.asarray(probability.values, "float64"), np.asarray(labels.values)
            valid = np.isfinite(values) & ((label == 0) | (label == 1))
            p = np.clip(values[valid], 1e-7, 1 - 1e-7)
            # undo the model's own temperature: the fitted one replaces it
            logits.append(own.temperature * np.log(p / (1 - p)))
            truths.append(label[valid] == 1)
            row = {"chip": scene.name, "event": event, "model": _counts(found)}
            for name, (method, kwargs) in baselines.items():
                base = confusion(predict(scene, method=method, events=metadata, **kwargs), labels)
                baseline_total[name].append(base)
                row[name] = _counts(base)
            chips.append(row)
        fold_rows.append(
            {
                "event": event,
                "checkpoint": str(checkpoint),
                "chips": [s.name for s in held],
                "skipped": skipped,
                **_counts(sum(scored, Confusion())),
            }
        )
    z, y = np.concatenate(logits or [np.zeros(0)]), np.concatenate(truths or [np.zeros(0, bool)])
    temperature = fit_logit_temperature(z, y) if len(z) else 1.0
    scaled = 1.0 / (1.0 + np.exp(-z / temperature))
    after = calibration(xr.DataArray(scaled), xr.DataArray(y.astype("int8")))
    return {
        "events": [event for event, _, _ in folds],
        "aggregate_iou": aggregate_iou(model_total),
        "pooled": _counts(sum(model_total, Confusion())),
        "baselines": {
            name: {"aggregate_iou": aggregate_iou(found), **_counts(sum(found, Confusion()))}
            for name, found in baseline_total.items()
        },
        "ece": cal.ece,
        "temperature": temperature,
        "ece_at_temperature": after.ece,
        # the pooled held-out IoU if the mask were cut elsewhere than 0.5 (logit 0), at T = 1
        "iou_at_cut": {f"{c:.1f}": _iou_at(z, y, c) for c in np.arange(0.1, 0.95, 0.1)},
        "reliability": cal.curve(),
        "reliability_at_temperature": after.curve(),
        "folds": fold_rows,
        "chips": chips,
    }


def score_unseen(
    model: str | Path, config: StageConfig, *, events: Sequence[str] | None = None
) -> dict[str, Any]:
    """The held-out table of :func:`cross_validate` for a ``model`` that saw none of the
    configuration's real chips (e.g. the synthetic-only start of a fine-tuning): every event's
    chips scored by the one model. A model that trained on any of them is refused.

    Examples
    --------
    >>> import warnings
    >>> from pathlib import Path
    >>> import floodxr
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.train.config import load_config
    >>> from floodxr.train.cv import score_unseen
    >>> configs = Path(floodxr.__file__).parents[1] / "examples" / "configs" / "cpu"
    >>> config = load_config(configs / "supervised-hand.yaml", [
    ...     f"train=[{{kind: sen1floods11, root: '{s11.SAMPLE_DIR}', split: test}}]"])
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     summary = score_unseen("student", config)
    >>> summary["protocol"], [c["chip"] for c in summary["chips"]]
    ('unseen', ['Spain_7370579'])
    """
    every = build_sources(config.train) + build_sources(config.labelled)
    folds = _folds(every, events)
    chosen = models.read_config(models.resolve(model))
    seen = set(chosen.provenance.get("chips", ())) | set(chosen.scores.get("seen_chips", ()))
    held = {event: _held_out(every, event) for event in folds}
    overlap = sorted(seen & {s.name for scenes in held.values() for s in scenes})
    if overlap:
        raise InvalidOptionError(
            f"model {str(model)!r} trained on {overlap}: score it by cross-validation "
            "(cross_validate / --cv events), not as unseen"
        )
    summary = {
        "protocol": "unseen",
        "stage": config.stage,
        "model": str(model),
        **score_held_out(
            [(event, model, held[event]) for event in folds], _events_metadata(config)
        ),
    }
    return dict(_plain(summary))


def cross_validate(
    config: StageConfig, *, progress: bool | None = None, events: Sequence[str] | None = None
) -> dict[str, Any]:
    """Leave-one-event-out: train ``config`` once per event without it, score the held-out chips.

    Returns (and writes to ``config.out / "cv" / "summary.json"``) the pooled aggregate IoU of
    the model and of each baseline over the held-out chips, per chip and per fold counts, the
    temperature fitted on the pooled held-out probabilities and the ECE before and after it.
    ``events`` restricts the folds (default: every event in the sources).

    Examples
    --------
    >>> import tempfile, warnings
    >>> from pathlib import Path
    >>> import floodxr
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.train.config import load_config
    >>> from floodxr.train.cv import cross_validate
    >>> configs = Path(floodxr.__file__).parents[1] / "examples" / "configs" / "cpu"
    >>> config = load_config(configs / "supervised-hand.yaml", [
    ...     f"out={tempfile.mkdtemp()}", "settings.encoder=resnet18",
    ...     "settings.decoder_channels=16", "settings.crop=64", "settings.batch_size=2",
    ...     "settings.steps=2", "settings.eval_every=2", "settings.bn_batches=1", "valid=[]",
    ...     "train=[{kind: synthetic, scenes: 2, seed: 1, size: 96}, "
    ...     f"{{kind: sen1floods11, root: '{s11.SAMPLE_DIR}', split: test}}]"])
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     summary = cross_validate(config, progress=False)
    >>> summary["events"], [c["chip"] for c in summary["chips"]]
    (['Spain'], ['Spain_7370579'])
    >>> sorted(summary["baselines"]) == sorted(["fixed -18 dB", "otsu", "event thresholds"])
    True
    """
    train, labelled = build_sources(config.train), build_sources(config.labelled)
    every = train + labelled
    folds = _folds(every, events)
    root = config.out / "cv"
    root.mkdir(parents=True, exist_ok=True)
    trained = []
    for event in folds:
        fold = replace(config, out=root / event, runs=1)
        shared = config.settings.shares is None
        fold_train = _without(train, event, shared=shared)
        if not fold_train:
            raise InvalidOptionError(
                f"without event {event!r} the 'train' sources are empty; add scenes that "
                "train every fold (e.g. {kind: synthetic, scenes: 32})"
            )
        (result,) = run_stage(
            fold,
            progress=progress,
            sources=(fold_train, _without(labelled, event, shared=shared)),
        )
        trained.append((event, result.best, _held_out(every, event)))
    summary = {
        "protocol": "leave-one-event-out",
        "stage": config.stage,
        "config": str(config.out),
        **score_held_out(trained, _events_metadata(config)),
    }
    summary = _plain(summary)
    _write_json(root / "summary.json", summary)
    return summary
