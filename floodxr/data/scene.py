"""A scene: one image ``(band, y, x)`` with the labels that exist for it, all on one grid.

The one unit that training, validation, ``floodxr evaluate``, Table 1 and the model card read:
a Sen1Floods11 chip (:meth:`floodxr.data.sen1floods11.Chip.scene`), a time step of a paired cube
or a synthetic scene all become a :class:`Scene`.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

__all__ = ["Scene"]


@dataclass(frozen=True)
class Scene:
    """One image with the labels that exist for it (all on one grid).

    ``label`` is the hand label (1 water, 0 not water, -1 invalid), ``weak_label`` a weak one,
    ``event`` the flood event the scene belongs to (Sen1Floods11's per-event thresholds use it).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from floodxr.data.scene import Scene
    >>> image = xr.DataArray(np.zeros((2, 4, 6), "float32"), dims=("band", "y", "x"),
    ...                      coords={"band": ["vv", "vh"]})
    >>> scene = Scene("chip", image)
    >>> scene.bands, scene.shape
    (('vv', 'vh'), (4, 6))
    """

    name: str
    image: xr.DataArray
    label: xr.DataArray | None = None
    weak_label: xr.DataArray | None = None
    event: str | None = None

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(str(b) for b in self.image["band"].values)

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.sizes["y"], self.image.sizes["x"]
