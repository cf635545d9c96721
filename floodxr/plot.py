"""Figures: radar backscatter beside the water map (and the label), training curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from floodxr._bands import select_band

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["basin_areas", "side_by_side", "training_curves"]

_MASK_COLOURS = {0: (0.80, 0.74, 0.55), 1: (0.12, 0.38, 0.85)}  # dry sand, water blue
_NODATA_COLOUR = (0.0, 0.0, 0.0)


def _mask_rgb(mask: np.ndarray) -> np.ndarray:
    rgb = np.empty(mask.shape + (3,), dtype="float32")
    rgb[...] = _NODATA_COLOUR
    for value, colour in _MASK_COLOURS.items():
        rgb[mask == value] = colour
    return rgb


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
        handles=[Patch(color=_MASK_COLOURS[1], label="water"),
                 Patch(color=_MASK_COLOURS[0], label="not water"),
                 Patch(color=_NODATA_COLOUR, label="no data")],
        loc="lower right", fontsize="small",
    )  # fmt: skip
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
        axis.plot(rows["time"], rows["water_km2"], marker="o", color=colour,
                  label=f"{basin_id}: water")  # fmt: skip
        if rows["flood_km2"].notna().any():
            axis.plot(rows["time"], rows["flood_km2"], marker="s", ls="--", color=colour,
                      label=f"{basin_id}: flood (new water)")  # fmt: skip
    axis.set_ylabel("area (km²)")
    axis.set_xlabel("acquisition time (UTC)")
    axis.legend(fontsize="small")
    axis.grid(alpha=0.3)
    for label in axis.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return fig
