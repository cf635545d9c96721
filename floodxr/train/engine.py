"""One training run: SGD with polynomial decay, validation, checkpoints, resume, curves.

A run lives in one folder::

    OUT/state.safetensors   resumable state: weights, momentum buffers, torch RNG, step, best
                            score and the run's settings (one file, replaced atomically)
    OUT/best.safetensors    floodxr checkpoint (+ best.json) with the best valid IoU so far
    OUT/last.safetensors    floodxr checkpoint (+ last.json) of the final weights
    OUT/candidate.*         the checkpoint last validated: validation scores it with
                            floodxr.evaluation.score, i.e. through segment() as users run it
    OUT/metrics.csv         step, lr, loss, valid_iou, seconds
    OUT/curves.png          loss and valid IoU against step

Killed at any moment, the same call continues from the last saved state and reaches the same
final weights as an uninterrupted run: batches are a pure function of (seed, step, slot), the
learning rate a function of the step, and the state holds everything else that changes.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from floodxr.errors import CheckpointError, RunMismatchError
from floodxr.evaluation import score
from floodxr.models import ModelConfig, save
from floodxr.options import OPTIONS, set_options
from floodxr.train.data import CropDataset, Scene, loader
from floodxr.writers import atomic

__all__ = [
    "Schedule",
    "RunResult",
    "fit",
    "poly_lr",
    "recalibrate_batchnorm",
    "device",
]

STATE_FORMAT = "floodxr-train-state/1"
CSV_FIELDS = ("step", "lr", "loss", "valid_iou", "seconds")
#: Step index of the fixed batches BatchNorm statistics are recomputed on (beyond any run).
CALIBRATION_STEP = 2**40


@dataclass(frozen=True)
class Schedule:
    """Optimiser and bookkeeping settings of one run (the paper's appendix B by default)."""

    steps: int
    lr: float
    weight_decay: float
    momentum: float = 0.9
    power: float = 0.9
    eval_every: int = 100
    checkpoint_every: int = 50


@dataclass(frozen=True)
class RunResult:
    """Where a finished run left its checkpoints, and its best validation score."""

    out: Path
    best: Path
    last: Path
    best_iou: float
    best_step: int
    steps: int


def poly_lr(base: float, step: int, steps: int, power: float = 0.9) -> float:
    """Polynomial decay from ``base`` at step 0 to zero at ``steps``.

    Examples
    --------
    >>> from floodxr.train.engine import poly_lr
    >>> poly_lr(0.1, 0, 100), round(poly_lr(0.1, 50, 100), 5), poly_lr(0.1, 100, 100)
    (0.1, 0.05359, 0.0)
    """
    return base * (1.0 - step / steps) ** power


def device(name: str | None = None) -> str:
    """``name``, or the ``device`` option; ``"auto"`` is ``"cuda"`` when a GPU is present.

    Examples
    --------
    >>> import torch
    >>> from floodxr.train.engine import device
    >>> device("cpu"), device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    ('cpu', True)
    """
    name = name or OPTIONS["device"]
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def recalibrate_batchnorm(
    network: torch.nn.Module, dataset: CropDataset, batches: int, *, device: str = "cpu"
) -> None:
    """Recompute BatchNorm running statistics as plain means over ``batches`` fixed batches.

    "Precise BN" (Wu & Johnson 2021): with small batches of very different scenes, the running
    averages training leaves behind follow the last few batches, and the evaluated network
    swings with them; means over the same fixed batches at every evaluation do not. The batches
    are crops at steps no run reaches, so they are the same whenever this runs; torch's RNG
    (dropout) is left as it was, so a resumed run stays exact.

    Examples
    --------
    >>> import torch
    >>> from floodxr import models, train
    >>> from floodxr.train.engine import recalibrate_batchnorm
    >>> network = models.STUDENT.replace(encoder="resnet18", decoder_channels=16).build()
    >>> dataset = train.CropDataset((train.synthetic_source(2, size=96),), bands=("vv", "vh"),
    ...                             crop=64, batch_size=2)
    >>> norm = next(m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d))
    >>> recalibrate_batchnorm(network, dataset, 2)
    >>> bool(norm.running_var.ne(1).any())  # statistics of the data, not the initial ones
    True
    """
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or batches < 1:
        return
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative mean
    was_training = network.training
    network.train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for batch in loader(dataset, start=CALIBRATION_STEP, stop=CALIBRATION_STEP + batches):
            network(batch["image"].to(device))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    network.train(was_training)


def _write_state(
    path: Path, network: torch.nn.Module, optimiser: torch.optim.Optimizer, meta: Mapping[str, Any]
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    names = {id(p): n for n, p in network.named_parameters()}
    for group in optimiser.param_groups:
        for param in group["params"]:
            buffer = optimiser.state.get(param, {}).get("momentum_buffer")
            if buffer is not None:
                tensors[f"momentum.{names[id(param)]}"] = buffer.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    # a kill leaves the old state or the new one, never half
    with atomic(path, overwrite=True) as partial:
        save_file(
            tensors, str(partial), metadata={"format": STATE_FORMAT, "meta": json.dumps(meta)}
        )


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != STATE_FORMAT:
                raise CheckpointError(f"{str(path)!r} is not a floodxr training state")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        return tensors, json.loads(metadata["meta"])
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"cannot read the training state {str(path)!r} ({err}); delete it to start the run "
            "again from step 0"
        ) from err


def _restore(
    tensors: Mapping[str, torch.Tensor], network: torch.nn.Module, optimiser: torch.optim.Optimizer
) -> None:
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    params = dict(network.named_parameters())
    for key, value in tensors.items():
        if key.startswith("momentum."):
            optimiser.state[params[key[9:]]]["momentum_buffer"] = value.clone()
    torch.set_rng_state(tensors["rng.torch"])


def _csv_rows(path: Path, upto: int) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) <= upto]


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with atomic(path, overwrite=True) as partial, partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _start_from(network: torch.nn.Module, config: ModelConfig, path: Path) -> None:
    from floodxr.models.checkpoint import load_weights

    start, start_config = load_weights(path)
    mine = (config.architecture, config.encoder, tuple(config.bands), config.output_stride)
    theirs = (
        start_config.architecture,
        start_config.encoder,
        tuple(start_config.bands),
        start_config.output_stride,
    )
    if mine != theirs or config.decoder_channels != start_config.decoder_channels:
        raise CheckpointError(
            f"init checkpoint {str(path)!r} is a {theirs} network with decoder "
            f"{start_config.decoder_channels}; this run trains {mine} with decoder "
            f"{config.decoder_channels}: start from a checkpoint of the same network"
        )
    network.load_state_dict({k: v.float() for k, v in start.state_dict().items()})


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def fit(
    *,
    config: ModelConfig,
    dataset: CropDataset,
    loss: Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], torch.Tensor],
    schedule: Schedule,
    out: str | Path,
    valid: Sequence[Scene] = (),
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str = "cpu",
    num_workers: int = 0,
    bn_batches: int = 16,
    progress: bool | None = None,
    threads: int | None = None,
    init: str | Path | None = None,
) -> RunResult:
    """Train ``config.build()`` on ``dataset`` with ``loss``; resume if ``out`` holds this run.

    ``settings`` (JSON-ready) describes everything else that determines the result (data,
    augmentation, loss weights); with the model configuration, the schedule and the seed it must
    equal the saved state's for a resume, else :class:`~floodxr.errors.RunMismatchError`.
    ``valid`` scenes (with labels) are scored every ``schedule.eval_every`` steps and at the
    end; the best is kept as ``best``. Without them ``best`` is the last step. Before each
    evaluation and the final checkpoint, BatchNorm statistics are recomputed over ``bn_batches``
    fixed training batches (:func:`recalibrate_batchnorm`). A finished run is returned as it is.
    ``threads`` sets torch's CPU threads for the run (and restores them after): results depend
    on it, so fix it for runs that must agree across machines. ``init`` (a checkpoint of the
    same architecture and bands) gives the starting weights instead of a random initialisation.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import models, train
    >>> from floodxr.train.engine import Schedule, fit
    >>> from floodxr.train.losses import edge_weighted_cross_entropy
    >>> scenes = train.synthetic_source(2, size=96)
    >>> dataset = train.CropDataset((scenes,), bands=("vv", "vh"), crop=64, batch_size=2)
    >>> config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16, tile=64)
    >>> def loss(network, batch):
    ...     return edge_weighted_cross_entropy(network(batch["image"]), batch["target"])
    >>> out = tempfile.mkdtemp()
    >>> result = fit(config=config, dataset=dataset, loss=loss, out=out, valid=scenes.scenes,
    ...              schedule=Schedule(steps=2, lr=0.01, weight_decay=1e-4, eval_every=2),
    ...              bn_batches=1, progress=False)
    >>> result.steps, result.best.name, sorted(p.stem for p in result.out.iterdir())[:5]
    (2, 'best.safetensors', ['best', 'best', 'candidate', 'candidate', 'curves'])
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _fit(
            config=config,
            dataset=dataset,
            loss=loss,
            schedule=schedule,
            out=out,
            valid=valid,
            settings=settings,
            seed=seed,
            device=device,
            num_workers=num_workers,
            bn_batches=bn_batches,
            progress=progress,
            init=init,
        )
    finally:
        torch.set_num_threads(previous)


def _fit(
    *,
    config: ModelConfig,
    dataset: CropDataset,
    loss: Callable[[torch.nn.Module, Mapping[str, torch.Tensor]], torch.Tensor],
    schedule: Schedule,
    out: str | Path,
    valid: Sequence[Scene],
    settings: Mapping[str, Any] | None,
    seed: int,
    device: str,
    num_workers: int,
    bn_batches: int,
    progress: bool | None,
    init: str | Path | None,
) -> RunResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # the context is measured from the architecture when a checkpoint is saved, and the water
    # cut is chosen after training: neither is a setting, and runs saved before they existed,
    # or with them recorded, resume alike
    run = {
        "model": {
            k: v
            for k, v in config.to_json().items()
            if k not in ("provenance", "scores", "context", "cut")
        },
        "schedule": schedule.__dict__,
        "seed": seed,
        "batch_size": dataset.batch_size,
        "crop": dataset.crop,
        "bn_batches": bn_batches,
        **(settings or {}),
    }
    run = json.loads(json.dumps(run))
    torch.manual_seed(seed)
    network = config.build().to(device)
    if init is not None:
        _start_from(network, config, Path(init))
    optimiser = torch.optim.SGD(
        network.parameters(),
        lr=schedule.lr,
        momentum=schedule.momentum,
        weight_decay=schedule.weight_decay,
    )
    state_path, csv_path = out / "state.safetensors", out / "metrics.csv"
    start, best_iou, best_step = 0, -math.inf, -1
    if state_path.is_file():
        tensors, meta = _read_state(state_path)
        saved = {
            **meta["run"],
            "model": {k: v for k, v in meta["run"]["model"].items() if k not in ("context", "cut")},
        }
        if saved != run:
            raise RunMismatchError(
                f"{str(out)!r} holds a run with other settings ("
                + "; ".join(_differences(saved, run))
                + "); pass another output folder, or delete it to start again"
            )
        _restore(tensors, network, optimiser)
        start, best_iou, best_step = meta["step"], meta["best_iou"], meta["best_step"]
        finished = [out / f"{kind}.safetensors" for kind in ("best", "last")]
        if start >= schedule.steps and all(p.is_file() for p in finished):
            return RunResult(
                out=out,
                best=finished[0],
                last=finished[1],
                best_iou=best_iou,
                best_step=best_step,
                steps=schedule.steps,
            )
    rows: list[dict[str, Any]] = list(_csv_rows(csv_path, start))
    show = OPTIONS["progress"] if progress is None else progress

    def checkpoint(kind: str, step: int, iou: float | None) -> Path:
        provenance = {
            **dict(config.provenance),
            "steps": step,
            "seed": seed,
            "torch_threads": torch.get_num_threads(),
            "lr": schedule.lr,
            "weight_decay": schedule.weight_decay,
            "batch_size": dataset.batch_size,
            "crop": dataset.crop,
            "run": str(out),
        }
        scores = {} if iou is None else {"valid_iou": iou, "valid_step": step}
        chosen = config.replace(provenance=provenance, scores={**dict(config.scores), **scores})
        return save(network, chosen, out / kind, overwrite=True)

    def evaluate(step: int) -> float | None:
        nonlocal best_iou, best_step
        if not valid:
            return None
        recalibrate_batchnorm(network, dataset, bn_batches, device=device)
        # scored as users run it: segment() on the saved checkpoint (its normalisation, windows)
        network.eval()
        candidate = checkpoint("candidate", step, None)
        threads = torch.get_num_threads()
        # loading the candidate builds networks (random init) in dask threads: keep that off the
        # training RNG, or dropout would differ between a resumed and an uninterrupted run
        # eager torch: an ONNX export of every candidate would cost more than scoring it
        with (
            torch.random.fork_rng(devices=[]),
            set_options(device=device, progress=False, engine="torch"),
        ):
            iou = score(candidate, valid).pooled.iou
        torch.set_num_threads(threads)  # segment may set them in this thread
        network.train()
        iou = -1.0 if math.isnan(iou) else iou
        if iou > best_iou:
            best_iou, best_step = iou, step
            checkpoint("best", step, iou)
        return iou

    network.train()
    began = time.perf_counter()
    bar = tqdm(total=schedule.steps, initial=start, desc=out.name, disable=not show)
    batches = loader(dataset, start=start, stop=schedule.steps, num_workers=num_workers)
    step = start
    for step, batch in enumerate(batches, start=start + 1):
        lr = poly_lr(schedule.lr, step - 1, schedule.steps, schedule.power)
        for group in optimiser.param_groups:
            group["lr"] = lr
        batch = {k: v.to(device) for k, v in batch.items()}
        value = loss(network, batch)
        loss_value = float(value.detach())
        if not math.isfinite(loss_value):
            raise CheckpointError(
                f"loss became {loss_value} at step {step} of {str(out)!r} (lr {lr:g}); the "
                "learning rate is too high for this setting: lower it"
            )
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()
        iou = evaluate(step) if step % schedule.eval_every == 0 or step == schedule.steps else None
        rows.append(
            {
                "step": step,
                "lr": f"{lr:.6g}",
                "loss": f"{loss_value:.6f}",
                "valid_iou": "" if iou is None else f"{iou:.6f}",
                "seconds": f"{time.perf_counter() - began:.2f}",
            }
        )
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", best=f"{max(best_iou, 0):.3f}")
        if step % schedule.checkpoint_every == 0 or step == schedule.steps:
            _write_csv(csv_path, rows)
            _write_state(
                state_path,
                network,
                optimiser,
                {"run": run, "step": step, "best_iou": best_iou, "best_step": best_step},
            )
    bar.close()
    recalibrate_batchnorm(network, dataset, bn_batches, device=device)
    last = checkpoint("last", schedule.steps, None)
    if not valid:
        best_step = schedule.steps
        best = checkpoint("best", schedule.steps, None)
    else:
        best = out / "best.safetensors"
    _write_csv(csv_path, rows)
    from floodxr.plot import training_curves

    with atomic(out / "curves.png", overwrite=True) as partial:  # redrawn with the csv
        training_curves(csv_path).savefig(partial, dpi=80)
    return RunResult(
        out=out, best=best, last=last, best_iou=best_iou, best_step=best_step, steps=schedule.steps
    )
