"""The floodxr checkpoint: ``NAME.safetensors`` (weights) and ``NAME.json`` (configuration).

The JSON says everything needed to rebuild and use the model without guessing: architecture,
encoder, output stride, input bands in order and the normalisation of each, output classes,
training provenance (data, steps, seed, floodxr version) and measured scores. Loading reads the
JSON and the safetensors header, checks every tensor name and shape against the rebuilt
architecture *before* any weight is used, and never unpickles anything.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from floodxr._valid import Rule, integer, multiple, real, unknown_keys, violations
from floodxr.bands import VERSION
from floodxr.errors import CheckpointError, OutputExistsError
from floodxr.models.architecture import COMPACT, COMPACT_CONTEXT, DeepLabV3PlusS2, check_encoder
from floodxr.writers import atomic

__all__ = ["FORMAT", "ModelConfig", "save", "read_config", "load_weights", "paths"]

FORMAT = "floodxr-checkpoint/1"
#: Architecture names a checkpoint may carry: the paper's head, the same with bounded context, and
#: compact ones with a small bounded context (output stride 8 only).
ARCHITECTURES = {
    "deeplabv3plus-s2": functools.partial(DeepLabV3PlusS2, pooling="global"),
    "deeplabv3plus-s2-local": functools.partial(DeepLabV3PlusS2, pooling="local"),
    "deeplabv3plus-s2-compact": functools.partial(DeepLabV3PlusS2, **COMPACT),
    "deeplabv3plus-s2-compact-context": functools.partial(DeepLabV3PlusS2, **COMPACT_CONTEXT),
}
#: Architectures whose encoder stops at stride 8: their output stride must be 8.
STRIDE_8 = ("deeplabv3plus-s2-compact", "deeplabv3plus-s2-compact-context")


def _stride(value: Any) -> str | None:
    return None if value in (8, 16) else f"must be 8 or 16, got {value!r}"


#: What the numeric fields of a ModelConfig must be (checked on construction).
_RULES: dict[str, Rule] = {
    "output_stride": _stride,
    "tile": multiple(16, 32, "the encoder's stride", optional=True),
    "temperature": real(above=0),
    "cut": real(above=0, below=1),
    "context": integer(1, optional=True),
}


@dataclass(frozen=True)
class ModelConfig:
    """What a checkpoint's JSON holds; :meth:`build` makes the (untrained) network."""

    name: str
    bands: tuple[str, ...]
    normalization: Mapping[str, tuple[float, float]]
    encoder: str = "tu-xception65"
    architecture: str = "deeplabv3plus-s2"
    output_stride: int = 16
    decoder_channels: int = 256
    classes: tuple[str, ...] = ("not_water", "water")
    tile: int | None = None
    #: logits are divided by it before the softmax (temperature scaling; 1: as trained)
    temperature: float = 1.0
    #: water where the (tempered) probability is >= cut: ``segment(output="mask")``, scores, maps
    cut: float = 0.5
    #: px of input on each side that an output pixel depends on (measured by ``save``); None:
    #: the whole window (global pooling) or unknown
    context: int | None = None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    scores: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        numbers = {name: getattr(self, name) for name in _RULES}
        problems = violations(numbers, _RULES)
        if self.architecture not in ARCHITECTURES:
            problems.append(
                f"architecture {self.architecture!r} is not one of {list(ARCHITECTURES)}"
            )
        if self.output_stride == 16 and self.architecture in STRIDE_8:
            problems.append(
                f"architecture {self.architecture!r} has output stride 8, got "
                f"output_stride={self.output_stride!r}"
            )
        if not self.bands:
            problems.append("bands is empty")
        missing = [b for b in self.bands if b not in self.normalization]
        if missing:
            problems.append(f"normalization has no (low, high) for bands {missing}")
        for band, bounds in self.normalization.items():
            if (
                len(bounds) != 2
                or not all(math.isfinite(v) for v in bounds)
                or not bounds[0] < bounds[1]
            ):
                problems.append(
                    f"normalization[{band!r}] must be finite (low, high), got {bounds!r}"
                )
        if "water" not in self.classes:
            problems.append(f"classes must include 'water', got {self.classes!r}")
        if len(set(self.bands)) != len(self.bands):
            problems.append(f"bands must not repeat, got {self.bands!r}")
        if problems:
            raise CheckpointError(
                f"invalid model configuration {self.name!r}: " + "; ".join(problems)
            )
        check_encoder(self.encoder)

    @property
    def water_index(self) -> int:
        return self.classes.index("water")

    def build(self) -> torch.nn.Module:
        """The architecture with freshly initialised weights (no download)."""
        return ARCHITECTURES[self.architecture](
            self.encoder,
            in_channels=len(self.bands),
            classes=len(self.classes),
            output_stride=self.output_stride,
            decoder_channels=self.decoder_channels,
        )

    def replace(self, **changes: Any) -> ModelConfig:
        return ModelConfig(**{**asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["normalization"] = {b: list(v) for b, v in self.normalization.items()}
        return {"format": FORMAT, **data, "bands": list(self.bands), "classes": list(self.classes)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "<json>") -> ModelConfig:
        if data.get("format") != FORMAT:
            raise CheckpointError(
                f"{source}: format {data.get('format')!r} is not {FORMAT!r}; is it a floodxr "
                "checkpoint configuration?"
            )
        fields = {k: v for k, v in data.items() if k != "format"}
        unknown = unknown_keys(fields, cls.__dataclass_fields__)
        if unknown:
            raise CheckpointError(f"{source}: unknown keys {unknown}")
        try:
            fields["bands"] = tuple(fields["bands"])
            fields["classes"] = tuple(fields.get("classes", ("not_water", "water")))
            fields["normalization"] = {
                b: (float(v[0]), float(v[1])) for b, v in fields["normalization"].items()
            }
            return cls(**fields)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(
                f"{source}: incomplete or malformed configuration: {err!r}"
            ) from err


def paths(path: str | Path) -> tuple[Path, Path]:
    """``(weights, config)`` paths of a checkpoint given either file or the common stem.

    Examples
    --------
    >>> from floodxr.models.checkpoint import paths
    >>> [p.name for p in paths("runs/teacher/best.json")]
    ['best.safetensors', 'best.json']
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def save(
    model: torch.nn.Module,
    config: ModelConfig,
    path: str | Path,
    *,
    overwrite: bool = False,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights and ``config`` as a floodxr checkpoint; returns the weights path.

    ``half=True`` stores floating-point tensors as float16 (half the size, for shipping); they
    load back into the float32 network. The network's ``context`` is measured
    (:func:`floodxr.models.context.radius`) and recorded, whatever ``config`` says.

    Examples
    --------
    >>> import tempfile, floodxr
    >>> from floodxr.models import STUDENT, checkpoint
    >>> config = STUDENT.replace(encoder="resnet18", provenance={"note": "untrained"})
    >>> path = checkpoint.save(config.build(), config, tempfile.mkdtemp() + "/tiny")
    >>> path.name, checkpoint.read_config(path).encoder
    ('tiny.safetensors', 'resnet18')
    """
    weights, config_path = paths(path)
    existing = [str(p) for p in (weights, config_path) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{existing} exist already; pass overwrite=True or another path")
    weights.parent.mkdir(parents=True, exist_ok=True)
    from floodxr.models.context import radius

    config = config.replace(
        provenance={"floodxr_version": VERSION, **config.provenance}, context=radius(config)
    )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    # the bands and their ranges travel with the weights too: a JSON edited afterwards that
    # reorders or rescales them would feed the network the wrong channels (see _checked)
    metadata = {
        "format": FORMAT,
        "name": config.name,
        "bands": json.dumps(list(config.bands)),
        "normalization": json.dumps({b: list(v) for b, v in config.normalization.items()}),
        "context": json.dumps(config.context),
    }
    # the weights first, the config last: a checkpoint loads only once both are whole
    with atomic(weights, overwrite=overwrite) as partial:
        save_file(state, str(partial), metadata=metadata)
    with atomic(config_path, overwrite=overwrite) as partial:
        partial.write_text(json.dumps(config.to_json(), indent=2) + "\n")
    return weights


def _checked(path: str | Path) -> tuple[ModelConfig, torch.nn.Module]:
    """The configuration and the freshly built network, once the weights' header matches it."""
    weights, config_path = paths(path)
    for required in (weights, config_path):
        if not required.is_file():
            raise CheckpointError(
                f"checkpoint file {str(required)!r} is missing; a checkpoint is NAME.safetensors "
                "plus NAME.json side by side (floodxr.models.save writes both)"
            )
    try:
        config = ModelConfig.from_json(json.loads(config_path.read_text()), source=str(config_path))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(config_path)!r} is not valid JSON: {err}") from err
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{str(weights)!r} is not a readable safetensors file: {err}"
        ) from err
    network = config.build()
    expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    wrong = [
        f"{k}: file {shapes[k]} vs config {expected[k]}"
        for k in sorted(set(expected) & set(shapes))
        if shapes[k] != expected[k]
    ]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{str(weights)!r} does not match its configuration ({config.encoder}, "
            f"{len(config.bands)} bands {config.bands}): {len(missing)} missing tensors "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}, wrong shapes "
            f"{wrong[:3]}; the JSON beside it must describe the weights"
        )
    _check_inputs(config, metadata, config_path)
    return config, network


def _check_inputs(config: ModelConfig, metadata: Mapping[str, str], source: Path) -> None:
    """Refuse a JSON whose bands or ranges differ from those the weights were saved with."""
    try:
        bands = tuple(json.loads(metadata["bands"])) if "bands" in metadata else None
        ranges = json.loads(metadata["normalization"]) if "normalization" in metadata else None
        context = json.loads(metadata["context"]) if "context" in metadata else config.context
    except ValueError as err:
        raise CheckpointError(
            f"the weights beside {str(source)!r} carry malformed metadata "
            f"({err}); save the checkpoint again"
        ) from err
    if bands is not None and bands != tuple(config.bands):
        how = "reorders" if sorted(bands) == sorted(config.bands) else "changes"
        raise CheckpointError(
            f"{str(source)!r} {how} the input bands: it lists {tuple(config.bands)}, the weights "
            f'were trained on {bands} in that order; restore "bands": {list(bands)} in the '
            "JSON (the network would read the wrong channels)"
        )
    if ranges is not None:
        changed = [
            b for b in config.bands if tuple(ranges.get(b, ())) != tuple(config.normalization[b])
        ]
        if changed:
            raise CheckpointError(
                f"{str(source)!r} changes the normalisation of bands {changed} from the one the "
                f"weights were trained with ({ {b: ranges.get(b) for b in changed} }); restore it"
            )
    if context != config.context:
        raise CheckpointError(
            f'{str(source)!r} says "context": {json.dumps(config.context)}, the weights were '
            f"saved with {json.dumps(context)} (measured from the architecture); restore it "
            "(a smaller context would cut chunks with too thin a halo)"
        )


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=64)
def _checked_config(
    weights: str, signature: tuple[tuple[int, int], tuple[int, int]]
) -> ModelConfig:
    return _checked(weights)[0]


def read_config(path: str | Path) -> ModelConfig:
    """Read a checkpoint and check it: valid JSON, weights present, tensor shapes as configured.

    Raises :class:`~floodxr.errors.CheckpointError` before any weight is used. A checkpoint whose
    files have not changed is checked once per process (checking builds the network).

    Examples
    --------
    >>> from floodxr import models
    >>> config = models.read_config(models.resolve("student"))
    >>> config.bands, config.normalization["vh"], config.tile
    (('vv', 'vh'), (-30.0, 0.0), 160)
    """
    weights, config_path = paths(path)
    if not (weights.is_file() and config_path.is_file()):
        return _checked(path)[0]  # raises the missing-file error
    signature = (_signature(weights), _signature(config_path))
    return _checked_config(str(weights.resolve()), signature)


def load_weights(path: str | Path, *, device: str = "cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """Check the checkpoint, then load its weights into the network built for the check.

    Examples
    --------
    >>> from floodxr import models
    >>> from floodxr.models.checkpoint import load_weights
    >>> network, config = load_weights(models.resolve("teacher"))
    >>> network.training, config.name, len(config.bands)
    (False, 'teacher', 6)
    """
    config, network = _checked(path)
    network.load_state_dict(load_file(str(paths(path)[0]), device="cpu"))
    return network.eval().to(device), config
