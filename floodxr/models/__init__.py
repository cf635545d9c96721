"""Segmentation models: the registry, the paper's configurations, checkpoints and a load cache.

``student`` reads Sentinel-1 (``vv, vh``); ``teacher`` reads Sentinel-1 + Sentinel-2
(``vv, vh, B02, B03, B04, B08``). Both default to the paper's DeepLab v3+ / Xception-65 at output
stride 16; a light encoder is one argument away: ``STUDENT.replace(encoder="resnet18")``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from floodxr.bands import PAPER_RANGES, S1_BANDS, TEACHER_BANDS
from floodxr.errors import InvalidOptionError, ModelNotAvailableError, UnknownModelError
from floodxr.models import checkpoint
from floodxr.models.architecture import DeepLabV3PlusS2
from floodxr.models.checkpoint import ModelConfig, read_config, save

__all__ = [
    "DeepLabV3PlusS2",
    "LIGHT_ENCODERS",
    "LoadedModel",
    "ModelConfig",
    "STUDENT",
    "TEACHER",
    "WEIGHTS_DIR",
    "available",
    "check_device",
    "checkpoint",
    "load",
    "read_config",
    "register",
    "resolve",
    "save",
]

#: Encoders that run DeepLab v3+ at output stride 16 and 8 on a CPU in reasonable time.
LIGHT_ENCODERS = ("tu-mobilenetv3_large_100", "resnet18", "efficientnet-b0")

STUDENT = ModelConfig(
    name="student",
    bands=S1_BANDS,
    normalization={b: PAPER_RANGES[b] for b in S1_BANDS},
)
TEACHER = ModelConfig(
    name="teacher",
    bands=TEACHER_BANDS,
    normalization={b: PAPER_RANGES[b] for b in TEACHER_BANDS},
)

#: Where checkpoints shipped with floodxr live (``NAME.safetensors`` + ``NAME.json``).
WEIGHTS_DIR = Path(__file__).parent / "weights"

_REGISTRY: dict[str, Path] = {
    name: WEIGHTS_DIR / f"{name}.safetensors" for name in ("student", "teacher")
}


def register(name: str, path: str | Path) -> None:
    """Make ``name`` refer to the checkpoint at ``path`` (checked now, loaded when used).

    Examples
    --------
    >>> import tempfile, floodxr
    >>> from floodxr import models
    >>> config = models.STUDENT.replace(name="tiny", encoder="resnet18")
    >>> path = models.save(config.build(), config, tempfile.mkdtemp() + "/tiny")
    >>> models.register("tiny", path)
    >>> "tiny" in models.available()
    True
    """
    read_config(path)
    _REGISTRY[name] = checkpoint.paths(path)[0]


def available() -> list[str]:
    """Names :func:`load` and ``segment(model=...)`` know (weights may still be absent).

    Examples
    --------
    >>> from floodxr import models
    >>> {"student", "teacher"} <= set(models.available())
    True
    """
    return sorted(_REGISTRY)


def resolve(name_or_path: str | Path) -> Path:
    """The weights path of a registered name or of a checkpoint path, checked to exist.

    Examples
    --------
    >>> from floodxr import models
    >>> models.resolve("student").name
    'student.safetensors'
    >>> models.resolve("nonexistent")
    Traceback (most recent call last):
    ...
    floodxr.errors.UnknownModelError: unknown model 'nonexistent': not a registered name [...
    """
    key = str(name_or_path)
    if key in _REGISTRY:
        weights = _REGISTRY[key]
        if not weights.is_file():
            raise ModelNotAvailableError(
                f"model {key!r} has no weights on this machine (looked for {str(weights)!r}); "
                "train one (floodxr train) and pass its path, or register it with "
                "floodxr.models.register(name, path)"
            )
        return weights
    weights, config = checkpoint.paths(name_or_path)
    if weights.is_file() or config.is_file():
        return weights
    raise UnknownModelError(
        f"unknown model {key!r}: not a registered name {available()} and no checkpoint at "
        f"{str(weights)!r}; pass one of the names or a NAME.safetensors path"
    )


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network in eval mode with its configuration."""

    module: torch.nn.Module
    config: ModelConfig
    path: Path
    device: str

    def water_probability(self, batch: np.ndarray) -> np.ndarray:
        """Water probability ``(N, H, W)`` of a normalised float32 batch ``(N, bands, H, W)``."""
        with torch.inference_mode():
            logits = self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
            tempered = logits / self.config.temperature
            water = torch.softmax(tempered, dim=1)[:, self.config.water_index]
        return water.float().cpu().numpy()


_CACHE = threading.local()


def check_device(device: str) -> None:
    """Refuse a torch device this machine does not have, naming it and the fix.

    Examples
    --------
    >>> from floodxr.models import check_device
    >>> check_device("cpu")
    >>> check_device("cuda:7")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    floodxr.errors.InvalidOptionError: device='cuda:7': this machine has ... use device='cpu' ...
    """
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count()
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise InvalidOptionError(
                f"device={device!r}: this machine has {count} CUDA GPU(s) that torch can use "
                "(torch.cuda.device_count()); use device='cpu' (floodxr.set_options(device="
                "'cpu'), --device cpu)"
            )
    elif device == "mps" and not torch.backends.mps.is_available():
        raise InvalidOptionError(
            f"device={device!r}: torch has no MPS (Apple GPU) backend here; use device='cpu'"
        )


def load(name_or_path: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Load a registered model or a checkpoint, cached per thread (timm models are not thread-safe).

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import models
    >>> config = models.STUDENT.replace(encoder="resnet18")
    >>> path = models.save(config.build(), config, tempfile.mkdtemp() + "/s")
    >>> model = models.load(path)
    >>> model.config.bands, models.load(path) is model
    (('vv', 'vh'), True)
    """
    check_device(device)
    weights = resolve(name_or_path)
    cache: dict[tuple[str, int, str], LoadedModel] = _CACHE.__dict__.setdefault("models", {})
    key = (str(weights.resolve()), weights.stat().st_mtime_ns if weights.exists() else 0, device)
    if key not in cache:
        for stale in [k for k in cache if k[0] == key[0] and k[2] == device]:
            del cache[stale]  # a rewritten checkpoint (validation's candidate): keep one copy
        module, config = checkpoint.load_weights(weights, device=device)
        cache[key] = LoadedModel(module=module, config=config, path=weights, device=device)
    return cache[key]
