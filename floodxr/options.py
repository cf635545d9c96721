"""Library-wide options: :func:`set_options` works as a call and as a context manager."""

from __future__ import annotations

import re
from typing import Any

from floodxr._valid import (
    Rule,
    boolean,
    choice,
    integer,
    multiple,
    real,
    unknown_keys,
    violations,
)
from floodxr.errors import InvalidOptionError

__all__ = ["OPTIONS", "checked_run_options", "get_options", "set_options"]

OPTIONS: dict[str, Any] = {
    "otsu_bins": 256,
    "otsu_tile_size": 128,
    "otsu_bimodality": 0.7,
    "progress": True,
    "tile": None,
    "halo": None,
    "batch_size": 1,
    "device": "cpu",
    "torch_threads": None,
    "engine": "auto",
    "http_timeout": 30.0,
    "http_retries": 4,
    "http_backoff": 0.5,
}


def _device(value: Any) -> str | None:
    if isinstance(value, str) and re.fullmatch(r"cpu|mps|cuda(:\d+)?", value):
        return None  # whether this machine has it is checked where a model is loaded
    return f"must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}"


#: How a model runs (``set_options(engine=...)``, ``floodxr evaluate --engine``).
ENGINES = ("auto", "torch", "onnx", "onnx-int8")

_RULES: dict[str, Rule] = {
    "otsu_bins": integer(2),
    "otsu_tile_size": integer(8),
    "otsu_bimodality": real(above=0, below=1),
    "progress": boolean(),
    "tile": multiple(16, 32, "the encoder's stride", optional=True),
    "halo": integer(0, optional=True),
    "batch_size": integer(1),
    "device": _device,
    "torch_threads": integer(1, optional=True),
    "engine": choice(ENGINES),
    "http_timeout": real(above=0),
    "http_retries": integer(0),
    "http_backoff": real(above=0),
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
    tile : int or None, default None
        Side of the square windows a network sees in :func:`floodxr.segment.segment`
        (a multiple of 16). For a network with global context (the paper's) None is the window
        the model was trained on (its checkpoint's ``tile``), else 320 (the paper's 321 px
        crops): DeepLab's image-level pooling averages over the whole window. For a window-free
        network (bounded ``context``, e.g. the shipped student) it is the core each window
        keeps, on a grid from the scene's first pixel; None: 512.
    halo : int or None, default None
        Blended windows: their overlap, blended across (None: 64; at most ``tile / 2``).
        Window-free: the context each window reads beyond its core (None: 32 px, rounded up to
        the network's stride; its full ``context`` gives exactly the unwindowed output).
    batch_size : int, default 1
        Windows per forward pass. On CPUs 1 is fastest and smallest (measured: batch 4 was 35 %
        slower and took 0.3 GiB more per thread); raise it on a GPU.
    device : str, default "cpu"
        Torch device (``"cuda"`` when a GPU is present).
    torch_threads : int or None, default None
        Torch intra-op threads per process; None picks cores / concurrent dask tasks so that
        dask threads and torch threads do not oversubscribe the cores.
    engine : {"auto", "torch", "onnx", "onnx-int8"}, default "auto"
        Run networks with eager torch, through an ONNX Runtime export (exported once per
        machine and cached), or through the checkpoint's int8 model (``NAME.int8.onnx``, see
        :func:`floodxr.models.onnx.quantize`). ``"auto"``: the int8 model when the checkpoint
        has one (the shipped student does when it cost it less than 0.005 IoU), else ONNX
        Runtime when it is installed and the model exports, else torch.
    http_timeout : float, default 30
        Seconds to wait for a STAC API or an asset server to connect or answer; no network call
        waits longer.
    http_retries : int, default 4
        Retries of a request that failed with a connection error, a timeout or HTTP 429 / 500 /
        502 / 503 / 504 (STAC searches and asset reads alike).
    http_backoff : float, default 0.5
        Back-off factor in seconds: retry ``n`` waits ``http_backoff * 2 ** (n - 1)``.

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
        unknown = unknown_keys(kwargs, OPTIONS)
        if unknown:
            raise InvalidOptionError(
                f"unknown option {unknown[0]!r}; valid options are {sorted(OPTIONS)}"
            )
        problems = violations(kwargs, _RULES, label="option {name!r}")
        if problems:
            raise InvalidOptionError("; ".join(problems))
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


def checked_run_options(engine: str | None, threads: int | None) -> dict[str, Any]:
    """The :func:`set_options` of a run's ``engine`` option, with ``engine`` and ``threads``
    (a run's thread count) checked before any work.

    Examples
    --------
    >>> from floodxr.options import checked_run_options
    >>> checked_run_options("onnx", 2)
    {'engine': 'onnx'}
    """
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InvalidOptionError(f"threads must be a whole number >= 1, got {threads!r}")
    if engine is None:
        return {}
    if engine not in ENGINES:
        raise InvalidOptionError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    return {"engine": engine}
