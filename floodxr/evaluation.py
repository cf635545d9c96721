"""One scoring path: every score floodxr reports comes from :func:`score` over scenes.

``floodxr evaluate``, validation during training, ``floodxr reproduce-table`` and the model card
all call :func:`score` on :class:`~floodxr.data.scene.Scene` objects (a Sen1Floods11 chip via
:meth:`~floodxr.data.sen1floods11.Chip.scene`, a synthetic or cube scene). :func:`predict` runs
a method the way users run it:

* a *baseline* (:data:`METHODS`): ``otsu``, ``otsu-tiled``, ``fixed`` (one threshold in dB,
  nothing fitted) and ``event-threshold`` (Sen1Floods11's per-event VH threshold);
* anything else is a *model* (a registered name or a checkpoint path), run by
  :func:`floodxr.segment.segment` on the bands its checkpoint names with the checkpoint's own
  normalisation, windows and blending. Its water probability is scored at 0.5 (the rule of
  ``segment(output="mask")``) and its calibration counted (:func:`floodxr.metrics.calibration`).
  Scenes lacking a band the model reads (a teacher's S2) are skipped and named.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from floodxr import threshold
from floodxr.bands import S1_BANDS
from floodxr.data import sen1floods11
from floodxr.data.scene import Scene
from floodxr.errors import (
    AssetReadError,
    ChipReadError,
    FloodxrError,
    InSampleWarning,
    InvalidOptionError,
    MissingBandError,
    UnknownModelError,
)
from floodxr.metrics import Calibration, Confusion, aggregate_iou, calibration, confusion, mean_iou
from floodxr.options import OPTIONS
from floodxr.segment import segment, water_cut

if TYPE_CHECKING:
    from floodxr.models import ModelConfig

__all__ = [
    "METHODS",
    "Method",
    "SceneScore",
    "Scores",
    "evaluate_models",
    "evaluate_split",
    "fit_logit_temperature",
    "fit_temperature",
    "predict",
    "score",
]

Method = Literal["otsu", "otsu-tiled", "fixed", "event-threshold"]
Predictor = Callable[[Scene, str, Mapping[str, Any], "float | None"], xr.DataArray]


def _s1(scene: Scene) -> xr.DataArray:
    return scene.image.sel(band=[b for b in scene.bands if b in S1_BANDS])


def _event_threshold(
    scene: Scene, band: str, events: Mapping[str, Any], _: float | None
) -> xr.DataArray:
    if band != "vh":
        raise InvalidOptionError(
            f"event-threshold uses the per-event VH thresholds of the metadata; got band "
            f"{band!r}, use --band vh"
        )
    if not events:
        raise InvalidOptionError("method 'event-threshold' needs events=read_events(metadata)")
    value = float(sen1floods11.event_of(scene.name, events)["VH_thresh"])
    return threshold.fixed(_s1(scene), value, band="vh")


def _require_threshold(method: str, db: float | None) -> None:
    if method == "fixed" and db is None:
        raise InvalidOptionError(
            "method 'fixed' needs a threshold in dB, e.g. threshold_db=-18.0 (floodxr evaluate "
            "--method fixed --threshold -18)"
        )


def _fixed(scene: Scene, band: str, events: Mapping[str, Any], db: float | None) -> xr.DataArray:
    _require_threshold("fixed", db)
    assert db is not None
    return threshold.fixed(_s1(scene), db, band=band)  # type: ignore[arg-type]


def _on_s1(method: Callable[..., xr.DataArray]) -> Predictor:
    return lambda scene, band, events, db: method(_s1(scene), band=band)


_PREDICTORS: dict[str, Predictor] = {
    **{name: _on_s1(method) for name, method in threshold.METHODS.items()},
    "fixed": _fixed,
    "event-threshold": _event_threshold,
}

#: Baselines that :func:`score` and ``floodxr evaluate --method`` know.
METHODS: tuple[str, ...] = tuple(_PREDICTORS)


def _model_config(model: str | Path) -> ModelConfig:
    from floodxr import models

    try:
        return models.read_config(models.resolve(model))
    except UnknownModelError as err:
        raise UnknownModelError(f"{err}; or one of the methods {METHODS}") from err


def _model_bands(model: str | Path) -> tuple[str, ...]:
    return tuple(_model_config(model).bands)


def predict(
    scene: Scene,
    *,
    method: Method | str | Path,
    band: str = "vh",
    events: Mapping[str, Any] | None = None,
    threshold_db: float | None = None,
) -> xr.DataArray:
    """What ``method`` makes of one scene: a model's water probability, a baseline's mask.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.evaluation import predict
    >>> scene = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).scene()
    >>> predict(scene, method="fixed", threshold_db=-18.0).attrs["floodxr_method"]
    "fixed(band='vh', threshold=-18.0)"
    """
    if band not in S1_BANDS:
        raise InvalidOptionError(f"band must be 'vv' or 'vh', got {band!r}")
    if str(method) in _PREDICTORS:
        return _PREDICTORS[str(method)](scene, band, events or {}, threshold_db)
    bands = _model_bands(method)
    if not set(bands) <= set(scene.bands):
        raise MissingBandError(
            f"model {str(method)!r} reads bands {list(bands)}; scene {scene.name!r} has "
            f"{list(scene.bands)}: give it the missing bands (a teacher needs Sentinel-2) or "
            "evaluate a Sentinel-1 model"
        )
    return segment(scene.image.sel(band=list(bands)), model=str(method), output="probability")


@dataclass(frozen=True)
class SceneScore:
    """One scene's confusion, and a model's calibration counts (None for baselines)."""

    name: str
    confusion: Confusion
    calibration: Calibration | None = None


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Scores:
    """What :func:`score` found: per scene, pooled, and the scenes it could not score."""

    method: str
    scenes: tuple[SceneScore, ...]
    skipped: tuple[str, ...] = ()

    @property
    def pooled(self) -> Confusion:
        return sum((s.confusion for s in self.scenes), Confusion())

    @property
    def aggregate_iou(self) -> float:
        """Sen1Floods11's aggregate IoU: summed intersections over summed unions."""
        return aggregate_iou(s.confusion for s in self.scenes)

    @property
    def mean_iou(self) -> float:
        return mean_iou(s.confusion for s in self.scenes)

    @property
    def calibration(self) -> Calibration | None:
        parts = [s.calibration for s in self.scenes if s.calibration is not None]
        return sum(parts[1:], parts[0]) if parts else None

    @property
    def ece(self) -> float:
        """Expected calibration error over all scenes (NaN for a baseline)."""
        pooled = self.calibration
        return math.nan if pooled is None else pooled.ece

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: pooled scores, ECE, reliability curve, per scene counts (None: undefined)."""
        pooled, cal = self.pooled, self.calibration
        return {
            "method": self.method,
            "n_scenes": len(self.scenes),
            "n_skipped": len(self.skipped),
            "skipped": list(self.skipped),
            "aggregate_iou": _number(self.aggregate_iou),
            "mean_iou": _number(self.mean_iou),
            "precision": _number(pooled.precision),
            "recall": _number(pooled.recall),
            "f1": _number(pooled.f1),
            "accuracy": _number(pooled.accuracy),
            "ece": None if cal is None else _number(cal.ece),
            "reliability": None if cal is None else cal.curve(),
            "scenes": [
                {
                    "name": s.name,
                    "iou": _number(s.confusion.iou),
                    "intersection": s.confusion.intersection,
                    "union": s.confusion.union,
                    "tp": s.confusion.tp,
                    "fp": s.confusion.fp,
                    "fn": s.confusion.fn,
                    "tn": s.confusion.tn,
                    "ece": None if s.calibration is None else _number(s.calibration.ece),
                }
                for s in self.scenes
            ],
        }


def score(
    method: Method | str | Path,
    scenes: Iterable[Scene],
    *,
    band: str = "vh",
    events: Mapping[str, Any] | None = None,
    threshold_db: float | None = None,
    progress: bool | None = None,
) -> Scores:
    """Score ``method`` (a baseline or a model) on labelled ``scenes``: the one scoring path.

    Pixels count where the label is 0 or 1 and the prediction is valid (NaN / nodata input
    gives no prediction). Scenes without a label raise; scenes lacking a model's band are
    skipped and listed.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.evaluation import score
    >>> scene = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).scene()
    >>> result = score("otsu", [scene], progress=False)
    >>> result.scenes[0].name, 0 < result.aggregate_iou < 1, result.calibration is None
    ('Spain_7370579', True, True)
    """
    is_model = str(method) not in _PREDICTORS
    scenes = list(scenes)
    bands: tuple[str, ...] = ()
    if is_model:
        config = _model_config(method)
        bands = tuple(config.bands)
        _warn_in_sample(method, config, scenes)
    show = OPTIONS["progress"] if progress is None else progress
    rows: list[SceneScore] = []
    skipped: list[str] = []
    for scene in tqdm(scenes, desc=f"scoring {Path(str(method)).stem}", disable=not show):
        if scene.label is None:
            raise MissingBandError(f"scene {scene.name!r} has no label to score against")
        if is_model and not set(bands) <= set(scene.bands):
            skipped.append(scene.name)
            continue
        prediction = predict(
            scene, method=method, band=band, events=events, threshold_db=threshold_db
        )
        if is_model:
            prediction = prediction.compute()
        rows.append(
            SceneScore(
                scene.name,
                confusion(prediction, scene.label, threshold=water_cut(prediction)),
                calibration(prediction, scene.label) if is_model else None,
            )
        )
    return Scores(str(method), tuple(rows), tuple(skipped))


def _warn_in_sample(model: str | Path, config: ModelConfig, scenes: Sequence[Scene]) -> None:
    seen = set(config.provenance.get("chips", ())) | set(config.scores.get("seen_chips", ()))
    overlap = sorted(seen & {scene.name for scene in scenes})
    if overlap:
        warnings.warn(
            InSampleWarning(
                f"model {str(model)!r} was trained on {overlap}: its scores on them are "
                "in-sample; score chips it never saw, or cross-validate (floodxr train ... "
                "--cv events)"
            ),
            stacklevel=3,
        )


def fit_temperature(model: str | Path, scenes: Iterable[Scene], *, pixels: int = 200_000) -> float:
    """The temperature that makes ``model``'s water probability honest on labelled ``scenes``.

    Temperature scaling (Guo et al. 2017): the logits are divided by one number ``T``, chosen to
    minimise the negative log-likelihood of the labels; the water mask (probability >= 0.5)
    does not change, only how sure the probability claims to be. Fit it on held-out scenes of
    the training world, never on the scenes it is scored on. The model's own temperature is
    undone first, so the result replaces it; up to ``pixels`` valid pixels (evenly strided)
    are used. Write it with ``models.save(..., config.replace(temperature=T))``.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import models, train
    >>> from floodxr.evaluation import fit_temperature
    >>> config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16, tile=64)
    >>> path = models.save(config.build(), config, tempfile.mkdtemp() + "/s")
    >>> scenes = train.synthetic_source(1, size=64, seed=2).scenes
    >>> 0.05 <= fit_temperature(path, scenes) <= 20.0
    True
    """
    from floodxr import models

    own = models.read_config(models.resolve(model)).temperature
    logits, truths = [], []
    for scene in scenes:
        if scene.label is None:
            raise MissingBandError(f"scene {scene.name!r} has no label to fit a temperature on")
        probability = np.asarray(predict(scene, method=model).values, "float64")
        label = np.asarray(scene.label.values)
        valid = np.isfinite(probability) & ((label == 0) | (label == 1))
        p = np.clip(probability[valid], 1e-7, 1 - 1e-7)
        logits.append(own * np.log(p / (1 - p)))
        truths.append(label[valid] == 1)
    if not logits or not sum(len(z) for z in logits):
        raise InvalidOptionError("fit_temperature needs scenes with valid labelled pixels")
    return fit_logit_temperature(np.concatenate(logits), np.concatenate(truths), pixels=pixels)


def fit_logit_temperature(logits: np.ndarray, truth: np.ndarray, *, pixels: int = 200_000) -> float:
    """The temperature ``T`` minimising the labels' NLL under ``sigmoid(logits / T)``.

    ``logits`` are water logits (``log(p / (1 - p))`` at temperature 1), ``truth`` whether each
    pixel is water; up to ``pixels`` of them (evenly strided) are used; ``T`` is searched on a
    log grid from 0.05 to 20. :func:`fit_temperature` and cross-validation use it.

    Examples
    --------
    >>> import numpy as np
    >>> from floodxr.evaluation import fit_logit_temperature
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0, 2, 20000)                      # calibrated logits ...
    >>> y = rng.uniform(size=z.size) < 1 / (1 + np.exp(-z))
    >>> round(fit_logit_temperature(3 * z, y), 1)       # ... made over-confident by 3
    3.0
    """
    z, y = np.asarray(logits, "float64").ravel(), np.asarray(truth, bool).ravel()
    if not len(z) or len(z) != len(y):
        raise InvalidOptionError(
            f"fit_logit_temperature needs as many logits as labels (> 0), got {len(z)} and {len(y)}"
        )
    stride = max(1, len(z) // pixels)
    z, y = z[::stride], y[::stride]
    grid = np.geomspace(0.05, 20.0, 241)
    signed = np.where(y, z, -z)  # NLL of a label under logit z / T is log(1 + exp(-signed / T))
    nll = [float(np.logaddexp(0.0, -signed / t).mean()) for t in grid]
    return float(grid[int(np.argmin(nll))])


@contextlib.contextmanager
def _reading(chip: str, root: Path) -> Iterator[None]:
    """Name the chip when its files fail to read (GDAL's errors name only a file, or nothing)."""
    try:
        yield
    except FloodxrError as err:
        if not isinstance(err, AssetReadError):
            raise
        raise ChipReadError(
            f"chip {chip!r}: {err}; or skip unreadable chips (on_error='skip', "
            "floodxr evaluate --skip-unreadable)"
        ) from err
    except (OSError, RuntimeError) as err:  # rasterio's RasterioIOError is an OSError
        raise ChipReadError(
            f"chip {chip!r} under {str(root)!r} cannot be read ({type(err).__name__}: "
            f"{str(err)[:300]}); replace its files, remove it from the split list, or skip "
            "unreadable chips (on_error='skip', floodxr evaluate --skip-unreadable)"
        ) from err


def _chip_scenes(
    root: Path, chips: Sequence[str], on_error: str, failed: list[dict[str, str]]
) -> Iterator[Scene]:
    for chip_id in chips:
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
        yield chip.scene()


def evaluate_split(
    data: str | Path,
    *,
    method: Method | str = "otsu",
    band: str = "vh",
    split: str = "test",
    split_file: str | Path | None = None,
    metadata: str | Path | None = None,
    threshold_db: float | None = None,
    progress: bool | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> dict[str, Any]:
    """:func:`score` ``method`` on the chips of ``split`` present under ``data``.

    A chip whose files cannot be read (truncated, corrupt) raises
    :class:`~floodxr.errors.ChipReadError` naming it; with ``on_error="skip"`` it is left out,
    listed under ``failed`` with the reason, and the other chips are scored.

    Returns a JSON-ready dict: method, band (baselines), threshold_db (``fixed``), split,
    ``n_chips`` (present and scored), ``n_missing`` (listed but absent), ``n_skipped`` /
    ``skipped`` (present but lacking the S2 bands a teacher reads), ``n_failed`` / ``failed``
    (unreadable chips skipped with ``on_error="skip"``), ``aggregate_iou`` (sum of
    intersections / sum of unions), ``mean_iou`` (over chips with a non-empty union), precision,
    recall, F1 and accuracy over all valid pixels, for models ``ece`` and the ``reliability``
    curve, and per chip ``{"chip", "iou", "intersection", "union", "tp", "fp", "fn", "tn",
    "ece"}``. Undefined scores (an empty union) are ``None``.

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
    is_model = method not in _PREDICTORS
    if is_model:
        _model_bands(method)  # an unknown name fails before any chip is read
    if band not in S1_BANDS:
        raise InvalidOptionError(f"band must be 'vv' or 'vh', got {band!r}")
    _require_threshold(str(method), threshold_db)  # before any chip is read
    root = Path(data)
    chips = sen1floods11.read_split(root, split, split_file=split_file)
    events = None
    if method == "event-threshold":
        events = sen1floods11.read_events(
            metadata if metadata is not None else root / "Sen1Floods11_Metadata.geojson"
        )
    show = OPTIONS["progress"] if progress is None else progress
    failed: list[dict[str, str]] = []
    scenes = tqdm(
        _chip_scenes(root, chips.chips, on_error, failed),
        total=len(chips),
        desc=f"{method} on {split}",
        disable=not show,
    )
    result = score(
        method, scenes, band=band, events=events, threshold_db=threshold_db, progress=False
    ).to_dict()
    chip_rows = [{"chip": row.pop("name"), **row} for row in result.pop("scenes")]
    result.pop("n_scenes")
    return {
        "method": method,
        "band": None if is_model else band,
        "threshold_db": threshold_db if method == "fixed" else None,
        "split": split,
        "n_chips": len(chip_rows),
        "n_missing": len(chips.missing),
        **{k: result.pop(k) for k in ("n_skipped", "skipped")},
        "n_failed": len(failed),
        "failed": failed,
        **{k: v for k, v in result.items() if k != "method"},
        "chips": chip_rows,
    }


def evaluate_models(data: str | Path, models: Sequence[str], **kwargs: Any) -> dict[str, Any]:
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
