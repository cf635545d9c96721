"""Figures: radar backscatter beside the water map (and the label), training curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from floodxr._valid import select_band
from floodxr.bands import NODATA
from floodxr.errors import MissingDimensionError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["basin_areas", "overlay", "reliability", "side_by_side", "training_curves"]

_MASK_COLOURS = {0: (0.80, 0.74, 0.55), 1: (0.12, 0.38, 0.85)}  # dry sand, water blue
_NODATA_COLOUR = (0.0, 0.0, 0.0)


def _mask_rgb(mask: np.ndarray) -> np.ndarray:
    rgb = np.empty(mask.shape + (3,), dtype="float32")
    rgb[...] = _NODATA_COLOUR
    for value, colour in _MASK_COLOURS.items():
        rgb[mask == value] = colour
    return rgb


def _scale_bar(axis: Axes, crs: object, x: np.ndarray, y: np.ndarray) -> None:
    """A bar of a round length (m or km) in the lower left, true on the ground."""
    from matplotlib.patches import Rectangle
    from pyproj import CRS

    width = abs(float(x[-1] - x[0])) or 1.0
    metres_per_unit = 1.0
    if crs is not None and CRS.from_user_input(crs).is_geographic:
        metres_per_unit = 111_320.0 * np.cos(np.deg2rad(float(np.mean(y))))
    target = width * metres_per_unit / 5
    length = 10 ** np.floor(np.log10(target))
    length *= max(m for m in (1, 2, 5) if m * length <= target)
    span = length / metres_per_unit
    left, bottom = min(x[0], x[-1]) + width * 0.05, min(y[0], y[-1]) + abs(y[-1] - y[0]) * 0.05
    height = abs(float(y[-1] - y[0])) * 0.012
    axis.add_patch(Rectangle((left, bottom), span, height, color="white", ec="black", lw=0.8))
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    axis.text(
        left + span / 2,
        bottom + height * 1.8,
        text,
        ha="center",
        va="bottom",
        fontsize="small",
        color="white",
        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0},
    )


def overlay(
    s1: xr.DataArray,
    water: xr.DataArray | None = None,
    *,
    band: str = "vh",
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Sentinel-1 ``band`` backscatter (dB, grey) with a water mask or probability on top.

    A mask (uint8: 1 water, 255 nodata) is drawn in blue over water only; a probability
    (float in [0, 1]) as a blue ramp whose opacity grows with it. Axes are in the CRS's
    coordinates; a legend and a scale bar say what is drawn and how big it is. A ``time`` dim
    must be selected first (``.isel(time=0)``).

    Returns
    -------
    matplotlib Axes (a new figure's when ``ax`` is None)

    Examples
    --------
    >>> import floodxr
    >>> scene = floodxr.testing.synthetic_scene((96, 96), seed=0)
    >>> axis = scene.s1.flood.plot(scene.s1.flood.otsu())
    >>> axis.get_title(), axis.get_legend() is not None
    ('Sentinel-1 VH with water mask', True)
    """
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    values = np.asarray(select_band(s1, band).values, dtype="float32")
    if values.ndim != 2:
        raise MissingDimensionError(
            f"plot draws one scene; the {band} band has dims {select_band(s1, band).dims}: "
            "select one, e.g. da.isel(time=0).flood.plot(...)"
        )
    if ax is None:
        ax = Figure(figsize=(7, 6), layout="constrained").subplots()
    x, y = s1["x"].values, s1["y"].values
    extent = (x[0], x[-1], y[-1], y[0])
    finite = values[np.isfinite(values)]
    vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (-30.0, 0.0)
    ax.imshow(values, cmap="gray", vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest")
    handles = [Patch(color="0.5", label=f"{band.upper()} backscatter {vmin:.0f} to {vmax:.0f} dB")]
    kind = "water"
    if water is not None:
        layer = np.asarray(water.values)
        blue = (0.12, 0.38, 0.85)
        if layer.dtype.kind == "f":
            kind = "water probability"
            ramp = LinearSegmentedColormap.from_list("water", [(*blue, 0.0), (*blue, 0.9)])
            shown = ax.imshow(
                np.where(np.isfinite(layer), layer, np.nan),
                cmap=ramp,
                vmin=0,
                vmax=1,
                extent=extent,
                interpolation="nearest",
            )
            ax.figure.colorbar(shown, ax=ax, shrink=0.7, label="water probability")
            handles.append(Patch(color=(*blue, 0.9), label="water probability (opacity)"))
        else:
            kind = "water mask"
            rgba = np.zeros(layer.shape + (4,), "float32")
            rgba[layer == 1] = (*blue, 0.75)
            rgba[layer == NODATA] = (0.0, 0.0, 0.0, 0.6)
            ax.imshow(rgba, extent=extent, interpolation="nearest")
            handles += [
                Patch(color=(*blue, 0.75), label="water"),
                Patch(color=(0, 0, 0, 0.6), label="no data"),
            ]
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    crs = s1.rio.crs
    _scale_bar(ax, crs, x, y)
    ax.set_xlabel(f"x ({crs})" if crs else "x")
    ax.set_ylabel(f"y ({crs})" if crs else "y")
    ax.set_title(
        title or f"Sentinel-1 {band.upper()}" + (f" with {kind}" if water is not None else "")
    )
    return ax


def side_by_side(
    s1: xr.DataArray,
    mask: xr.DataArray,
    *,
    label: xr.DataArray | None = None,
    band: str = "vh",
    title: str | None = None,
) -> Figure:
    """A figure with the ``band`` backscatter (dB), the water mask and, if given, the label.

    Axes are in the data's CRS coordinates; nodata is black in the maps.

    Examples
    --------
    >>> import floodxr
    >>> from floodxr.plot import side_by_side
    >>> scene = floodxr.testing.synthetic_scene((64, 64), seed=0)
    >>> fig = side_by_side(scene.s1, scene.s1.flood.otsu(), label=scene.water)
    >>> len(fig.axes)
    4
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    values = select_band(s1, band).values
    x, y = s1["x"].values, s1["y"].values
    extent = (x[0], x[-1], y[-1], y[0])
    panels: list[tuple[str, xr.DataArray]] = [("water map", mask)]
    if label is not None:
        panels.append(("reference label", label))
    fig = Figure(figsize=(5 * (1 + len(panels)), 5), layout="constrained")
    axes = fig.subplots(1, 1 + len(panels), sharex=True, sharey=True)
    finite = values[np.isfinite(values)]
    vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (-30.0, 0.0)
    image = axes[0].imshow(values, cmap="gray", vmin=vmin, vmax=vmax, extent=extent)
    fig.colorbar(image, ax=axes[0], shrink=0.8, label=f"{band.upper()} backscatter (dB)")
    axes[0].set_title(f"Sentinel-1 {band.upper()}")
    for axis, (name, data) in zip(axes[1:], panels, strict=True):
        axis.imshow(_mask_rgb(np.asarray(data.values)), extent=extent, interpolation="nearest")
        axis.set_title(name)
    axes[-1].legend(
        handles=[
            Patch(color=_MASK_COLOURS[1], label="water"),
            Patch(color=_MASK_COLOURS[0], label="not water"),
            Patch(color=_NODATA_COLOUR, label="no data"),
        ],
        loc="lower right",
        fontsize="small",
    )
    crs = s1.rio.crs
    for axis in axes:
        axis.set_xlabel(f"x ({crs})" if crs else "x")
    axes[0].set_ylabel(f"y ({crs})" if crs else "y")
    if title:
        fig.suptitle(title)
    return fig


def training_curves(metrics_csv: str | Path) -> Figure:
    """Loss (and its running mean) and validation IoU against step, from a run's metrics.csv.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from floodxr.plot import training_curves
    >>> csv = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
    >>> _ = csv.write_text("step,lr,loss,valid_iou,seconds\\n1,0.1,0.7,,1\\n2,0.05,0.5,0.6,2\\n")
    >>> [axis.get_ylabel() for axis in training_curves(csv).axes]
    ['training loss', 'valid water IoU']
    """
    import csv

    from matplotlib.figure import Figure

    with open(metrics_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    scored = [(int(r["step"]), float(r["valid_iou"])) for r in rows if r["valid_iou"]]
    fig = Figure(figsize=(10, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(steps, loss, color="0.7", lw=0.8, label="per step")
    if len(loss) >= 10:
        window = max(len(loss) // 20, 5)
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        left.plot(steps[window - 1 :], smooth, color="C0", label=f"mean of {window}")
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    left.legend(fontsize="small")
    if scored:
        right.plot(*zip(*scored, strict=True), marker="o", color="C1")
    right.set_xlabel("step")
    right.set_ylabel("valid water IoU")
    right.set_ylim(0, 1)
    return fig


def reliability(curves: Mapping[str, Mapping[str, list[float | None]]]) -> Figure:
    """Reliability diagram: water fraction against predicted probability, one line per model.

    ``curves`` maps a label to a curve: ``Calibration.curve()``, or the ``"reliability"`` entry
    of :func:`floodxr.evaluation.evaluate_split`'s result for a model. A calibrated model lies
    on the diagonal; below it, it claims water more surely than it is.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.metrics import calibration
    >>> from floodxr.plot import reliability
    >>> p = xr.DataArray(np.array([0.1, 0.9, 0.9], "float32"), dims="x")
    >>> curve = calibration(p, xr.DataArray(np.array([0, 1, 0], "int8"), dims="x")).curve()
    >>> [line.get_label() for line in reliability({"model": curve}).axes[0].lines]
    ['calibrated', 'model']
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), layout="constrained")
    axis = fig.subplots()
    axis.plot([0, 1], [0, 1], color="0.6", ls="--", label="calibrated")
    for label, curve in curves.items():
        points = [
            (p, w)
            for p, w in zip(curve["mean_probability"], curve["water_fraction"], strict=True)
            if p is not None and w is not None
        ]
        if points:
            axis.plot(*zip(*points, strict=True), marker="o", label=label)
    axis.set_xlabel("predicted water probability (bin mean)")
    axis.set_ylabel("fraction that is water")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    return fig


def basin_areas(areas: pd.DataFrame) -> Figure:
    """Water (and flood) area against time, one colour per basin, from
    :func:`floodxr.basin.report`.

    Examples
    --------
    >>> import pandas as pd
    >>> from floodxr.plot import basin_areas
    >>> areas = pd.DataFrame({"basin": ["a", "a"], "water_km2": [1.0, 3.0],
    ...                       "flood_km2": [0.0, 2.0],
    ...                       "time": pd.to_datetime(["2019-09-13", "2019-09-25"])})
    >>> [line.get_label() for line in basin_areas(areas).axes[0].lines]
    ['a: water', 'a: flood (new water)']
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), layout="constrained")
    axis = fig.subplots()
    for index, (basin_id, rows) in enumerate(areas.groupby("basin", sort=True)):
        colour = f"C{index % 10}"
        axis.plot(
            rows["time"], rows["water_km2"], marker="o", color=colour, label=f"{basin_id}: water"
        )
        if rows["flood_km2"].notna().any():
            axis.plot(
                rows["time"],
                rows["flood_km2"],
                marker="s",
                ls="--",
                color=colour,
                label=f"{basin_id}: flood (new water)",
            )
    axis.set_ylabel("area (km²)")
    axis.set_xlabel("acquisition time (UTC)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    for label in axis.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return fig
