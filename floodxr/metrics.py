"""Water-class scores (IoU and friends) with invalid pixels masked, and flooded area.

A pixel counts only where the label is 0 or 1 (Sen1Floods11's -1 is invalid) *and* the
prediction is valid: 0 or 1 in a floodxr mask (255 is nodata), or a finite probability. So a
chip whose radar is all NaN adds nothing to any score rather than counting as missed water.

Scores over a split follow the Sen1Floods11 convention: the **aggregate IoU** sums intersections
and unions over all chips before dividing; the **mean IoU** averages per-chip IoUs over the chips
whose union is not empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import dask.array as dsa
import numpy as np
import xarray as xr

from floodxr._valid import declared_nodata, masked, number
from floodxr.bands import NODATA
from floodxr.errors import (
    InvalidLabelError,
    MissingDimensionError,
    NotAMaskError,
    ShapeMismatchError,
    WrongTypeError,
)
from floodxr.grid import pixel_area_km2

__all__ = [
    "Calibration",
    "Confusion",
    "calibration",
    "confusion",
    "iou",
    "aggregate_iou",
    "mean_iou",
    "pixel_area_km2",
    "water_area_km2",
]

#: Equal-width probability bins of :func:`calibration` (the usual 10 of the ECE literature).
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of the water class over valid pixels; add them to pool chips."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def intersection(self) -> int:
        return self.tp

    @property
    def union(self) -> int:
        return self.tp + self.fp + self.fn

    @property
    def valid(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def iou(self) -> float:
        """Water IoU, NaN when the union is empty (no water predicted nor labelled)."""
        return _ratio(self.tp, self.union)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.valid)

    def scores(self) -> dict[str, float | int]:
        """Counts and scores as a plain dict (JSON-ready; NaN where undefined)."""
        return {
            **asdict(self),
            "intersection": self.intersection,
            "union": self.union,
            "iou": self.iou,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "accuracy": self.accuracy,
        }


@dataclass(frozen=True)
class Calibration:
    """Reliability counts of water probabilities in equal-width bins; add them to pool scenes.

    Per bin: ``count`` valid pixels, ``probability`` the sum of their water probabilities,
    ``water`` how many are labelled water. The expected calibration error (Guo et al. 2017) is
    the count-weighted mean over the bins of the absolute difference between the mean probability
    and the water fraction: 0.05 means a
    probability is off by five points on average (0.8 is water 75 % or 85 % of the time).
    """

    count: tuple[int, ...] = (0,) * CALIBRATION_BINS
    probability: tuple[float, ...] = (0.0,) * CALIBRATION_BINS
    water: tuple[int, ...] = (0,) * CALIBRATION_BINS

    def __add__(self, other: Calibration) -> Calibration:
        return Calibration(
            tuple(a + b for a, b in zip(self.count, other.count, strict=True)),
            tuple(a + b for a, b in zip(self.probability, other.probability, strict=True)),
            tuple(a + b for a, b in zip(self.water, other.water, strict=True)),
        )

    @property
    def ece(self) -> float:
        """Expected calibration error; NaN without valid pixels."""
        total = sum(self.count)
        if not total:
            return math.nan
        return (
            sum(
                abs(p - w)
                for n, p, w in zip(self.count, self.probability, self.water, strict=True)
                if n
            )
            / total
        )

    def curve(self) -> dict[str, list[float | None]]:
        """Per bin: lower edge, mean probability, water fraction, pixel count (for plots)."""
        bins = len(self.count)
        return {
            "lower": [k / bins for k in range(bins)],
            "mean_probability": [
                p / n if n else None for n, p in zip(self.count, self.probability, strict=True)
            ],
            "water_fraction": [
                w / n if n else None for n, w in zip(self.count, self.water, strict=True)
            ],
            "count": [float(n) for n in self.count],
        }


def calibration(
    probability: xr.DataArray, label: xr.DataArray, *, bins: int = CALIBRATION_BINS
) -> Calibration:
    """Reliability counts of a water ``probability`` against ``label`` (computes).

    Pixels count where the probability is finite and the label is 0 or 1.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> p = xr.DataArray(np.array([0.95, 0.95, 0.05, np.nan], "float32"), dims="x")
    >>> label = xr.DataArray(np.array([1, 0, 0, 1], "int8"), dims="x")
    >>> c = floodxr.metrics.calibration(p, label)
    >>> c.count[9], c.water[9], round(c.ece, 3)
    (2, 1, 0.317)
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise WrongTypeError(f"bins must be a positive integer, got {bins!r}")
    values = np.asarray(masked(probability).values, "float64").ravel()
    truth = np.asarray(label.values).ravel()
    valid = np.isfinite(values) & ((truth == 0) | (truth == 1))
    if (values[valid] < 0).any() or (values[valid] > 1).any():
        raise InvalidLabelError(
            "the probability has values outside [0, 1]; pass a floodxr "
            "water probability (segment(..., output='probability'))"
        )
    values, truth = values[valid], truth[valid] == 1
    index = np.minimum((values * bins).astype("int64"), bins - 1)
    return Calibration(
        tuple(int(n) for n in np.bincount(index, minlength=bins)),
        tuple(float(p) for p in np.bincount(index, weights=values, minlength=bins)),
        tuple(int(w) for w in np.bincount(index, weights=truth, minlength=bins)),
    )


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _predicted_water(prediction: xr.DataArray, threshold: float) -> tuple[xr.DataArray, ...]:
    if prediction.dtype.kind == "f":
        values = masked(prediction)
        return values >= threshold, values.notnull()
    if prediction.dtype == bool:
        return prediction, xr.ones_like(prediction, dtype=bool)
    return prediction == 1, (prediction == 0) | (prediction == 1)


def _label_allowed(label: xr.DataArray) -> xr.DataArray:
    accepted = (label == 0) | (label == 1) | (label == -1)
    nodata = declared_nodata(label)
    if nodata is not None:
        accepted = accepted | (label == nodata)
    if label.dtype.kind == "f":
        accepted = accepted | label.isnull()
    return accepted


def _prediction_allowed(prediction: xr.DataArray) -> xr.DataArray:
    if prediction.dtype == bool:
        return xr.ones_like(prediction, dtype=bool)
    nodata = declared_nodata(prediction)
    if prediction.dtype.kind == "f":
        finite: xr.DataArray = np.isfinite(prediction)  # type: ignore[assignment]
        accepted = ~finite | ((prediction >= 0) & (prediction <= 1))
        return accepted | (prediction == nodata) if nodata is not None else accepted
    accepted = (prediction == 0) | (prediction == 1) | (prediction == NODATA)
    return accepted | (prediction == nodata) if nodata is not None else accepted


def confusion(
    prediction: xr.DataArray, label: xr.DataArray, *, threshold: float = 0.5
) -> Confusion:
    """Count water true/false positives/negatives of ``prediction`` against ``label``.

    This computes (dask input is reduced chunk by chunk; only four integers come back).

    Parameters
    ----------
    prediction : water mask (uint8 0/1 with 255 nodata, or bool) or water probability
        (float, NaN invalid; water where ``>= threshold``)
    label : int labels, 1 water, 0 not water, anything else (Sen1Floods11's -1) invalid
    threshold : probability cut-off for float predictions

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> pred = xr.DataArray(np.array([[1, 1, 0, 255]], "uint8"), dims=("y", "x"))
    >>> label = xr.DataArray(np.array([[1, 0, 1, 1]], "int8"), dims=("y", "x"))
    >>> c = floodxr.metrics.confusion(pred, label)
    >>> c, c.iou
    (Confusion(tp=1, fp=1, fn=1, tn=0), 0.3333333333333333)
    """
    for name, given in (("prediction", prediction), ("label", label)):
        if not isinstance(given, xr.DataArray):
            hint = (
                f"pick its variable, e.g. {name}[{next(iter(given.data_vars))!r}]"
                if isinstance(given, xr.Dataset) and given.data_vars
                else "wrap it: xr.DataArray(values, dims=('y', 'x'), coords=...) on the "
                "other's grid"
            )
            raise WrongTypeError(
                f"{name} must be an xarray DataArray, got {type(given).__name__}; {hint}"
            )
    try:
        xr.align(prediction, label, join="exact")
    except ValueError as err:
        raise ShapeMismatchError(
            f"prediction (sizes {dict(prediction.sizes)}) and label (sizes "
            f"{dict(label.sizes)}) are not on the same coordinates ({err}); put them on one "
            "grid first, e.g. prediction.rio.reproject_match(label), or assign_coords when "
            "they differ only by rounding"
        ) from err
    if label.dtype.kind not in "biuf":
        raise WrongTypeError(
            f"label must be numeric (1 water, 0 not water, -1 invalid), got dtype {label.dtype}"
        )
    number(threshold, "threshold")
    water, valid_prediction = _predicted_water(prediction, threshold)
    valid = valid_prediction & ((label == 0) | (label == 1))
    truth = label == 1
    sums = {
        "tp": (water & truth & valid).sum(),
        "fp": (water & ~truth & valid).sum(),
        "fn": (~water & truth & valid).sum(),
        "tn": (~water & ~truth & valid).sum(),
        "bad_label": (~_label_allowed(label)).sum(),
        "bad_prediction": (~_prediction_allowed(prediction)).sum(),
    }
    # scalar coordinates (a scene's time, id) may differ between prediction and label
    counts = xr.Dataset({k: v.reset_coords(drop=True) for k, v in sums.items()}).compute()
    found = {str(k): int(v) for k, v in counts.items()}
    if found.pop("bad_label"):
        values = np.unique(np.asarray(label.where(~_label_allowed(label)).values))
        raise InvalidLabelError(
            f"the label has values other than 1 (water), 0 (not water) and -1 / its nodata "
            f"(invalid), e.g. {values[np.isfinite(values)][:5].tolist()}; recode it, e.g. "
            "xr.where(label == <water value>, 1, 0) (floodxr never guesses which value is water)"
        )
    if found.pop("bad_prediction"):
        kind = (
            "probabilities in [0, 1]"
            if prediction.dtype.kind == "f"
            else "a mask of 0 (not water), 1 (water) and 255 (nodata)"
        )
        raise InvalidLabelError(
            f"the prediction is not {kind}: it has other values (dtype {prediction.dtype}); pass "
            "a floodxr mask or probability (segment, otsu), not backscatter"
        )
    return Confusion(**found)


def iou(prediction: xr.DataArray, label: xr.DataArray, *, threshold: float = 0.5) -> float:
    """Water-class IoU of one prediction (NaN when neither has water); computes.

    Examples
    --------
    >>> import numpy as np, xarray as xr, floodxr
    >>> pred = xr.DataArray(np.array([1, 1, 0], "uint8"), dims="x")
    >>> floodxr.metrics.iou(pred, xr.DataArray(np.array([1, 0, -1], "int8"), dims="x"))
    0.5
    """
    return confusion(prediction, label, threshold=threshold).iou


def aggregate_iou(confusions: Iterable[Confusion]) -> float:
    """Sum of intersections over sum of unions (the Sen1Floods11 split score).

    Examples
    --------
    >>> from floodxr.metrics import Confusion, aggregate_iou
    >>> aggregate_iou([Confusion(tp=1, fp=1), Confusion(tp=3, fn=1)])
    0.6666666666666666
    """
    return sum(confusions, Confusion()).iou


def mean_iou(confusions: Iterable[Confusion]) -> float:
    """Mean of per-chip IoUs over the chips with a non-empty union (NaN if there is none).

    Examples
    --------
    >>> from floodxr.metrics import Confusion, mean_iou
    >>> mean_iou([Confusion(tp=1, fp=1), Confusion(tp=3, fn=1), Confusion(tn=5)])
    0.625
    """
    values = [c.iou for c in confusions if c.union]
    return float(np.mean(values)) if values else math.nan


def _mask_values_block(block: np.ndarray, allowed: tuple[float, ...]) -> np.ndarray:
    bad = ~np.isin(block, allowed)
    if block.dtype.kind == "f":
        bad &= ~np.isnan(block)
    if bad.any():
        found = np.unique(block[bad])[:5].tolist()
        raise NotAMaskError(
            f"area_km2 needs a water mask (1 water, 0 not water, {NODATA} / NaN nodata), got "
            f"other values, e.g. {found}: a probability or backscatter; threshold it first, "
            "e.g. da.flood.segment(output='mask') or (probability >= 0.5).astype('uint8')"
        )
    return block


def checked_mask(mask: xr.DataArray) -> xr.DataArray:
    """``mask`` with its values checked to be a water mask (lazily for dask input): 1 water, 0
    not water, nodata (255, -1, NaN or the declared nodata); else :class:`NotAMaskError`."""
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise NotAMaskError(f"area_km2 needs a numeric water mask, got dtype {mask.dtype}")
    nodata = declared_nodata(mask)
    allowed = tuple(v for v in (0, 1, NODATA, -1, nodata) if v is not None)
    data = mask.data
    if isinstance(data, dsa.Array):
        checked = dsa.map_blocks(_mask_values_block, data, allowed, dtype=data.dtype)
        return mask.copy(data=checked)
    _mask_values_block(np.asarray(data), allowed)
    return mask


def water_area_km2(mask: xr.DataArray) -> xr.DataArray:
    """Water area in km² of a floodxr mask, per scene (summed over ``y, x``); lazy.

    The mask must hold 1 (water), 0 (not water) and nodata (255, -1, NaN or its declared
    nodata) only: a probability or backscatter raises :class:`~floodxr.errors.NotAMaskError`
    (at compute time for dask input).

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene(seed=0)
    >>> truth = float(floodxr.metrics.water_area_km2(scene.water))
    >>> predicted = float(scene.s1.flood.otsu().flood.area_km2())
    >>> abs(predicted - truth) / truth < 0.1
    True
    """
    if "y" not in mask.dims or "x" not in mask.dims:
        raise MissingDimensionError(f"expected dims 'y' and 'x', got {tuple(mask.dims)}")
    checked = checked_mask(mask)
    water = pixel_area_km2(mask).where(checked == 1, 0.0).sum(("y", "x"))
    water.attrs["units"] = "km2"
    return water.rename("water_area")
