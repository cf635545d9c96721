"""Training: the paper's teacher, cross-modal-distilled student and supervised baselines.

Quick start on a laptop (the synthetic world, a light encoder, minutes on 2 cores)::

    from floodxr import train
    labelled = train.synthetic_source(32, seed=1)
    valid = train.synthetic_source(8, seed=2)
    teacher = train.teacher(labelled, valid=valid, out="runs/teacher", config=train.CPU)
    unlabelled = train.synthetic_source(64, seed=3)
    student = train.student([labelled, unlabelled], teacher=teacher.best, valid=valid,
                            out="runs/student", config=train.CPU)

``train.PAPER`` is the paper's GPU setting (Xception-65, batch 64, 321 px, 30k steps, the
4 x 4 learning-rate x weight-decay grid); the same calls take Sen1Floods11 folders
(:func:`sen1floods11_source`) and paired Zarr cubes (:func:`zarr_source`). From a shell:
``floodxr train teacher|student|supervised --config FILE``.
"""

from floodxr.train.cv import cross_validate
from floodxr.train.data import (
    Augment,
    CropDataset,
    Scene,
    Source,
    cube_source,
    loader,
    sen1floods11_source,
    sen1floods11_weak_source,
    source_from_spec,
    synthetic_source,
    zarr_source,
)
from floodxr.train.engine import RunResult, Schedule, fit
from floodxr.train.losses import distillation_loss, edge_weighted_cross_entropy, edge_weights
from floodxr.train.stages import (
    CPU,
    PAPER,
    GridResult,
    TrainConfig,
    student,
    supervised,
    teacher,
)

__all__ = [
    "Augment",
    "CPU",
    "CropDataset",
    "GridResult",
    "PAPER",
    "RunResult",
    "Scene",
    "Schedule",
    "Source",
    "TrainConfig",
    "cross_validate",
    "cube_source",
    "distillation_loss",
    "edge_weighted_cross_entropy",
    "edge_weights",
    "fit",
    "loader",
    "sen1floods11_source",
    "sen1floods11_weak_source",
    "source_from_spec",
    "student",
    "supervised",
    "synthetic_source",
    "teacher",
    "zarr_source",
]
