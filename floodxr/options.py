"""Library-wide options: :func:`set_options` works as a call and as a context manager."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from floodxr.errors import InvalidOptionError

__all__ = ["OPTIONS", "get_options", "set_options"]

OPTIONS: dict[str, Any] = {
    "otsu_bins": 256,
    "otsu_tile_size": 128,
    "otsu_bimodality": 0.7,
    "progress": True,
}


def _positive_int(name: str, minimum: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidOptionError(
                f"option {name!r} must be an integer >= {minimum}, got {value!r}"
            )

    return check


def _fraction(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise InvalidOptionError(
                f"option {name!r} must be a number strictly between 0 and 1, got {value!r}"
            )

    return check


def _boolean(name: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not isinstance(value, bool):
            raise InvalidOptionError(f"option {name!r} must be True or False, got {value!r}")

    return check


_VALIDATORS: dict[str, Callable[[Any], None]] = {
    "otsu_bins": _positive_int("otsu_bins", 2),
    "otsu_tile_size": _positive_int("otsu_tile_size", 8),
    "otsu_bimodality": _fraction("otsu_bimodality"),
    "progress": _boolean("progress"),
}


class set_options:  # noqa: N801 - lower case like xarray.set_options, used as a function
    """Set floodxr options globally or, as a context manager, for a block.

    Parameters
    ----------
    otsu_bins : int, default 256
        Histogram bins used by the Otsu thresholds (the scikit-image default).
    otsu_tile_size : int, default 128
        Side in pixels of the tiles scored for bimodality by :func:`floodxr.threshold.otsu_tiled`.
    otsu_bimodality : float, default 0.7
        Minimum bimodality score (between-class variance / total variance) for a tile to be used.
    progress : bool, default True
        Show progress bars for long loops (evaluation over many chips).

    Examples
    --------
    >>> import floodxr
    >>> with floodxr.set_options(otsu_tile_size=64):
    ...     floodxr.get_options()["otsu_tile_size"]
    64
    >>> floodxr.get_options()["otsu_tile_size"]
    128
    """

    def __init__(self, **kwargs: Any) -> None:
        self._old: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key not in OPTIONS:
                raise InvalidOptionError(
                    f"unknown option {key!r}; valid options are {sorted(OPTIONS)}"
                )
            _VALIDATORS[key](value)
        self._old = {key: OPTIONS[key] for key in kwargs}
        OPTIONS.update(kwargs)

    def __enter__(self) -> set_options:
        return self

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self._old)


def get_options() -> dict[str, Any]:
    """Return a copy of the current options.

    Examples
    --------
    >>> import floodxr
    >>> floodxr.get_options()["otsu_bins"]
    256
    """
    return dict(OPTIONS)
