"""The paper's training stages, each a learning-rate x weight-decay grid of resumable runs.

* :func:`supervised` -- a Sentinel-1 model on hand labels or on weak labels (Table 1's baselines);
* :func:`teacher` -- stage 1: stacked S1 + S2 (``vv vh B02 B03 B04 B08``) on hand labels;
* :func:`student` -- stage 2: S1 only, trained to match the frozen teacher's soft predictions on
  paired, unlabelled scenes, each batch drawn equally from every source.

Every run of the grid is scored on the valid scenes; ``OUT/best`` is the checkpoint with the best
valid water IoU over all runs and steps (the paper's checkpoint selection), ``OUT/grid.csv``
lists each run's best.
"""

from __future__ import annotations

import csv
import itertools
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import torch

from floodxr import models
from floodxr._valid import Rule, integer, real, violations
from floodxr.bands import S1_BANDS, S2_PAPER_BANDS
from floodxr.errors import InvalidOptionError
from floodxr.models import ModelConfig
from floodxr.models.architecture import check_encoder
from floodxr.models.checkpoint import ARCHITECTURES, STRIDE_8, paths
from floodxr.train.data import Augment, CropDataset, Scene, Source
from floodxr.train.engine import RunResult, Schedule, device, fit
from floodxr.train.losses import distillation_loss, edge_weighted_cross_entropy
from floodxr.writers import atomic

__all__ = ["TrainConfig", "PAPER", "CPU", "GridResult", "supervised", "teacher", "student"]

Labels = Literal["hand", "weak"]
TEACHER_BANDS = S1_BANDS + S2_PAPER_BANDS


#: What each TrainConfig field must be (checked on construction).
_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        ("crop", "batch_size", "steps", "eval_every", "checkpoint_every", "decoder_channels"),
        integer(1),
    ),
    "edge_width": integer(1),
    "threads": integer(1, optional=True),
    **dict.fromkeys(("bn_batches", "seed", "num_workers"), integer(0)),
    **dict.fromkeys(
        ("momentum", "power", "edge_weight", "temperature", "min_valid", "label_weight"), real()
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a stage needs besides data; defaults are the paper's GPU setting (appendix B).

    ``lr`` and ``weight_decay`` list the grid; every pair is one run. ``edge_weight`` and
    ``edge_width`` are the edge weighting of :mod:`floodxr.train.losses`; ``temperature`` the
    distillation temperature (1 = the paper's plain soft targets); ``bn_batches`` how many fixed
    training batches BatchNorm statistics are recomputed on before each evaluation. ``threads``
    fixes torch's CPU threads for the run (None: torch's default, the machine's cores): a
    reduction split over another number of threads adds in another order, so the same run on a
    machine with other cores drifts apart within a few steps (measured: 10 steps at 1 vs 2
    threads gave valid IoU 0.12 vs 0.05).

    ``init`` starts every run from a checkpoint's weights (fine-tuning; same architecture and
    bands) instead of a random initialisation. ``shares`` gives each training source its crops
    per batch (``train`` sources, then a student's ``labelled`` ones; default: equal shares).
    ``label_weight`` scales a student's cross-entropy on hand-labelled crops against the
    distillation loss on paired ones.
    """

    encoder: str = "tu-xception65"
    architecture: str = "deeplabv3plus-s2"
    decoder_channels: int = 256
    output_stride: int = 16
    crop: int = 321
    batch_size: int = 64
    steps: int = 30_000
    lr: tuple[float, ...] = (0.3, 0.1, 0.003, 0.001)
    weight_decay: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6)
    momentum: float = 0.9
    power: float = 0.9
    edge_weight: float = 5.0
    edge_width: int = 3
    temperature: float = 1.0
    eval_every: int = 1000
    checkpoint_every: int = 500
    min_valid: float = 0.5
    bn_batches: int = 16
    seed: int = 0
    num_workers: int = 4
    device: str = "auto"
    augment: Augment = field(default_factory=Augment)
    threads: int | None = None
    init: str | None = None
    shares: tuple[int, ...] | None = None
    label_weight: float = 1.0

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values |= {f"lr[{i}]": v for i, v in enumerate(self.lr)}
        values |= {f"weight_decay[{i}]": v for i, v in enumerate(self.weight_decay)}
        grid = {name: real() for name in values if "[" in name}  # lr[0], weight_decay[1], ...
        problems = violations(values, {**_RULES, **grid})
        if problems:
            raise InvalidOptionError("invalid training configuration: " + "; ".join(problems))
        check_encoder(self.encoder)
        if self.architecture not in ARCHITECTURES:
            problems.append(
                f"architecture must be one of {list(ARCHITECTURES)}, got {self.architecture!r}"
            )
        elif self.architecture in STRIDE_8 and self.output_stride != 8:
            problems.append(
                f"architecture {self.architecture!r} needs output_stride=8, got "
                f"{self.output_stride!r}"
            )
        if not self.lr or not self.weight_decay:
            problems.append("lr and weight_decay must each list at least one value")
        if any(v <= 0 for v in self.lr) or any(v < 0 for v in self.weight_decay):
            problems.append(
                f"lr must be > 0 and weight_decay >= 0, got {self.lr}, {self.weight_decay}"
            )
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2 (BatchNorm in the ASPP pooling branch)")
        if problems:
            raise InvalidOptionError("invalid training configuration: " + "; ".join(problems))

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @property
    def grid(self) -> list[tuple[float, float]]:
        return list(itertools.product(self.lr, self.weight_decay))


#: The paper's setting: Xception-65, batch 64, 321 px crops, 30k steps, the 4 x 4 grid.
PAPER = TrainConfig()
#: A light setting that trains in minutes on 2 CPU cores.
CPU = TrainConfig(
    encoder="tu-mobilenetv2_100",
    architecture="deeplabv3plus-s2-local",
    decoder_channels=64,
    crop=160,
    batch_size=8,
    steps=600,
    lr=(0.05,),
    weight_decay=(1e-4,),
    eval_every=100,
    checkpoint_every=50,
    num_workers=0,
    device="cpu",
)


@dataclass(frozen=True)
class GridResult:
    """The runs of one stage and the checkpoint chosen among them (``best``)."""

    out: Path
    best: Path
    best_iou: float
    runs: tuple[RunResult, ...]


def _scenes(sources: Sequence[Source] | Source | None) -> tuple[Scene, ...]:
    if sources is None:
        return ()
    if isinstance(sources, Source):
        sources = [sources]
    return tuple(scene for source in sources for scene in source.scenes)


def _sources(sources: Sequence[Source] | Source) -> tuple[Source, ...]:
    return (sources,) if isinstance(sources, Source) else tuple(sources)


def _describe(sources: Sequence[Source]) -> list[str]:
    return [f"{s.name} ({len(s.scenes)} scenes)" for s in sources]


def _real_chips(sources: Sequence[Source]) -> list[str]:
    """The real scenes (those of a flood event) a run trains on: scoring on them is in-sample."""
    return sorted({scene.name for s in sources for scene in s.scenes if scene.event})


def _grid(
    out: Path,
    config: TrainConfig,
    one: Callable[[Schedule, Path], RunResult],
) -> GridResult:
    runs = []
    for lr, weight_decay in config.grid:
        schedule = Schedule(
            steps=config.steps,
            lr=lr,
            weight_decay=weight_decay,
            momentum=config.momentum,
            power=config.power,
            eval_every=config.eval_every,
            checkpoint_every=config.checkpoint_every,
        )
        runs.append(one(schedule, out / f"lr{lr:g}_wd{weight_decay:g}"))
    chosen = max(runs, key=lambda r: r.best_iou)
    for source, target in zip(paths(chosen.best), paths(out / "best"), strict=True):
        with atomic(target, overwrite=True) as partial:  # the grid's choice, made again on resume
            shutil.copyfile(source, partial)
    with (
        atomic(out / "grid.csv", overwrite=True) as partial,
        partial.open("w", newline="") as handle,
    ):
        writer = csv.writer(handle)
        writer.writerow(["run", "best_valid_iou", "best_step", "chosen"])
        for run in runs:
            writer.writerow([run.out.name, f"{run.best_iou:.6f}", run.best_step, run is chosen])
    return GridResult(
        out=out, best=out / "best.safetensors", best_iou=chosen.best_iou, runs=tuple(runs)
    )


def _model_config(
    base: ModelConfig, name: str, config: TrainConfig, provenance: Mapping[str, Any]
) -> ModelConfig:
    # the network is validated and later run on windows of its training crop (see segment)
    return base.replace(
        name=name,
        encoder=config.encoder,
        architecture=config.architecture,
        output_stride=config.output_stride,
        decoder_channels=config.decoder_channels,
        tile=max(32, config.crop // 16 * 16),
        provenance=dict(provenance),
    )


def _valid_scenes(valid: Sequence[Source] | Source | None) -> tuple[Scene, ...]:
    scenes = _scenes(valid)
    for source in _sources(valid) if valid is not None else ():
        source.require((), "label")
    return scenes


def supervised(
    train: Sequence[Source] | Source,
    *,
    out: str | Path,
    valid: Sequence[Source] | Source | None = None,
    labels: Labels = "hand",
    bands: Sequence[str] = S1_BANDS,
    config: TrainConfig = CPU,
    name: str | None = None,
    progress: bool | None = None,
) -> GridResult:
    """Train on ``labels`` (``"hand"``: ``label``, ``"weak"``: ``weak_label``), edge-weighted CE.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import train
    >>> tiny = train.CPU.replace(encoder="resnet18", decoder_channels=16, crop=64, batch_size=2,
    ...                          steps=2, eval_every=2, checkpoint_every=2)
    >>> scenes = train.synthetic_source(2, size=96)
    >>> result = train.supervised(scenes, valid=scenes, out=tempfile.mkdtemp(), config=tiny,
    ...                           progress=False)
    >>> result.best.name, len(result.runs), 0 <= result.best_iou <= 1
    ('best.safetensors', 1, True)
    """
    if labels not in ("hand", "weak"):
        raise InvalidOptionError(f"labels must be 'hand' or 'weak', got {labels!r}")
    sources, bands = _sources(train), tuple(bands)
    name = name or f"supervised-{labels}"
    base = models.STUDENT if bands == S1_BANDS else models.TEACHER.replace(bands=bands)
    model_config = _model_config(
        base,
        name,
        config,
        {
            "stage": name,
            "labels": labels,
            "data": _describe(sources),
            "chips": _real_chips(sources),
            "trainer": "floodxr.train",
            "config": _jsonable(config),
        },
    )
    valid_scenes = _valid_scenes(valid)

    def one(schedule: Schedule, run_out: Path) -> RunResult:
        dataset = CropDataset(
            sources,
            bands=bands,
            target="label" if labels == "hand" else "weak_label",
            crop=config.crop,
            augment=config.augment,
            min_valid=config.min_valid,
            seed=config.seed,
            batch_size=config.batch_size,
            shares=config.shares,
        )

        def loss(network: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return edge_weighted_cross_entropy(
                network(batch["image"]),
                batch["target"],
                width=config.edge_width,
                edge_weight=config.edge_weight,
            )

        return fit(
            config=model_config,
            dataset=dataset,
            loss=loss,
            schedule=schedule,
            out=run_out,
            valid=valid_scenes,
            seed=config.seed,
            device=device(config.device),
            num_workers=config.num_workers,
            bn_batches=config.bn_batches,
            progress=progress,
            threads=config.threads,
            settings=_settings(config, sources, name),
            init=config.init,
        )

    return _grid(Path(out), config, one)


def teacher(
    train: Sequence[Source] | Source,
    *,
    out: str | Path,
    valid: Sequence[Source] | Source | None = None,
    config: TrainConfig = CPU,
    progress: bool | None = None,
) -> GridResult:
    """Stage 1: the S1 + S2 teacher on hand labels (``vv vh B02 B03 B04 B08``).

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import train
    >>> tiny = train.CPU.replace(encoder="resnet18", decoder_channels=16, crop=64, batch_size=2,
    ...                          steps=2, eval_every=2, checkpoint_every=2, bn_batches=1)
    >>> scenes = train.synthetic_source(2, size=96)
    >>> result = train.teacher(scenes, valid=scenes, out=tempfile.mkdtemp(), config=tiny,
    ...                        progress=False)
    >>> from floodxr import models
    >>> models.read_config(result.best).bands
    ('vv', 'vh', 'B02', 'B03', 'B04', 'B08')
    """
    return supervised(
        train,
        out=out,
        valid=valid,
        labels="hand",
        bands=TEACHER_BANDS,
        config=config,
        name="teacher",
        progress=progress,
    )


def student(
    sources: Sequence[Source] | Source,
    *,
    teacher: str | Path,
    out: str | Path,
    valid: Sequence[Source] | Source | None = None,
    labelled: Sequence[Source] | Source | None = None,
    config: TrainConfig = CPU,
    progress: bool | None = None,
) -> GridResult:
    """Stage 2: an S1 student distilled from the frozen ``teacher`` on paired scenes.

    Each batch holds ``batch_size / len(sources)`` crops of every source (or ``config.shares``).
    The student sees the jittered S1 crop, the teacher the same crop of S1 + S2 without jitter.
    Labels in the paired sources are not used (validation uses the ``valid`` scenes' hand
    labels). ``labelled`` sources (S1 with hand labels, no S2 needed: real chips) add crops
    learnt from their labels with the edge-weighted cross-entropy, weighted by
    ``config.label_weight`` against the distillation loss.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import train
    >>> tiny = train.CPU.replace(encoder="resnet18", decoder_channels=16, crop=64, batch_size=2,
    ...                          steps=2, eval_every=2, checkpoint_every=2, bn_batches=1)
    >>> scenes = train.synthetic_source(2, size=96)
    >>> teacher = train.teacher(scenes, valid=scenes, out=tempfile.mkdtemp(), config=tiny,
    ...                         progress=False)
    >>> result = train.student(scenes, teacher=teacher.best, valid=scenes,
    ...                        out=tempfile.mkdtemp(), config=tiny, progress=False)
    >>> from floodxr import models
    >>> config = models.read_config(result.best)
    >>> config.bands, config.provenance["stage"], config.provenance["teacher"] == str(teacher.best)
    (('vv', 'vh'), 'student', True)
    """
    sources = _sources(sources)
    with_labels = _sources(labelled) if labelled is not None else ()
    frozen = models.load(teacher, device=device(config.device))
    teacher_bands = tuple(frozen.config.bands)
    if not set(S1_BANDS) < set(teacher_bands):
        raise InvalidOptionError(
            f"{str(teacher)!r} reads bands {teacher_bands}; a teacher reads S1 and S2 (e.g. "
            "the result of floodxr.train.teacher)"
        )
    network_teacher = frozen.module.eval()
    for parameter in network_teacher.parameters():
        parameter.requires_grad_(False)
    model_config = _model_config(
        models.STUDENT,
        "student",
        config,
        {
            "stage": "student",
            "teacher": str(frozen.path),
            "data": _describe(sources),
            **({"labelled": _describe(with_labels)} if with_labels else {}),
            "chips": _real_chips(sources + with_labels),
            "trainer": "floodxr.train",
            "config": _jsonable(config),
        },
    )
    valid_scenes = _valid_scenes(valid)

    def loss(network: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        logits = network(batch["image"])
        distil = batch["distil"]
        value = logits.new_zeros(())
        if bool(distil.any()):
            with torch.no_grad():
                soft = network_teacher(batch["teacher"][distil])
            value = distillation_loss(
                logits[distil], soft, batch["valid"][distil], temperature=config.temperature
            )
        if with_labels and not bool(distil.all()):
            value = value + config.label_weight * edge_weighted_cross_entropy(
                logits[~distil],
                batch["target"][~distil],
                width=config.edge_width,
                edge_weight=config.edge_weight,
            )
        return value

    def one(schedule: Schedule, run_out: Path) -> RunResult:
        dataset = CropDataset(
            sources,
            bands=S1_BANDS,
            target=None,
            teacher_bands=teacher_bands,
            crop=config.crop,
            augment=config.augment,
            min_valid=config.min_valid,
            seed=config.seed,
            batch_size=config.batch_size,
            labelled=with_labels,
            shares=config.shares,
        )
        settings = {
            **_settings(config, sources + with_labels, "student"),
            "teacher": str(frozen.path),
        }
        return fit(
            config=model_config,
            dataset=dataset,
            loss=loss,
            schedule=schedule,
            out=run_out,
            valid=valid_scenes,
            seed=config.seed,
            device=device(config.device),
            num_workers=config.num_workers,
            bn_batches=config.bn_batches,
            progress=progress,
            threads=config.threads,
            settings=settings,
            init=config.init,
        )

    return _grid(Path(out), config, one)


def _jsonable(config: TrainConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def _settings(config: TrainConfig, sources: Sequence[Source], stage: str) -> dict[str, Any]:
    """What determines a run's result besides the model, schedule and seed (checked on resume)."""
    return {
        "stage": stage,
        "data": [[s.name, [scene.name for scene in s.scenes]] for s in sources],
        # an augmentation that is off (None) is not recorded: runs from before it resume
        "augment": {k: v for k, v in asdict(config.augment).items() if v is not None},
        "edge": [config.edge_weight, config.edge_width],
        "temperature": config.temperature,
        "min_valid": config.min_valid,
        # results depend on the thread count; None (the machine's default) is not recorded
        **({"threads": config.threads} if config.threads is not None else {}),
        # settings added later are recorded only when set: older runs resume
        **({"init": config.init} if config.init is not None else {}),
        **({"shares": list(config.shares)} if config.shares is not None else {}),
        **({"label_weight": config.label_weight} if config.label_weight != 1.0 else {}),
    }
