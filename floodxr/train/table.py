"""Reproduce the paper's Table 1: train every row's configuration, score each on its test scenes.

The rows run in the order their dependencies need (the teacher before the student); each
training run resumes where it stopped, so an interrupted reproduction continues. Scores are the
pooled water IoU over the test scenes (Sen1Floods11's aggregate IoU, from
:func:`floodxr.evaluation.score`, the one scoring path), as mean +- standard
deviation over the configuration's ``runs`` seeds, x 100 like the paper.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodxr.evaluation import score
from floodxr.train.config import build_sources, load_config, run_stage
from floodxr.train.data import Scene

__all__ = ["PAPER_TABLE", "Row", "reproduce_table", "format_table"]

#: (row label, configuration stem, paper IoU, paper std) in Table 1's order, plus the teacher.
PAPER_TABLE: tuple[tuple[str, str, float, float | None], ...] = (
    ("Otsu thresholding", "otsu", 54.58, None),
    ("Hand labeled supervised", "supervised-hand", 67.63, 0.45),
    ("Weak labeled supervised: Sen1Floods11 weak", "supervised-weak", 67.76, 2.41),
    ("Weak labeled supervised: Sen1Floods11 + ED weak", "supervised-weak-ed", 68.94, 1.11),
    ("Cross modal distillation (student)", "student", 71.91, 0.41),
    ("Teacher (S1 + S2)", "teacher", 79.25, 1.07),
)
#: Training order: the student needs the teacher's checkpoint.
ORDER = ("teacher", "supervised-hand", "supervised-weak", "supervised-weak-ed", "student")


@dataclass(frozen=True)
class Row:
    """One line of the table: ours beside the paper's."""

    label: str
    key: str
    paper_iou: float
    paper_std: float | None
    iou: float | None
    std: float | None
    runs: int
    scenes: int
    skipped: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return 100 * statistics.fmean(values), 100 * statistics.pstdev(values)


def reproduce_table(
    configs: str | Path, *, overrides: Sequence[str] = (), progress: bool | None = None
) -> list[Row]:
    """Train each ``CONFIGS/<row>.yaml`` that exists and score it; Otsu on the first's test set.

    Examples
    --------
    One row (the weak-label baseline) in a tiny setting, beside the paper's and Otsu:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from floodxr.train.table import format_table, reproduce_table
    >>> folder = Path(tempfile.mkdtemp())
    >>> data = lambda seed, n: f"[{{kind: synthetic, scenes: {n}, seed: {seed}, size: 96}}]"
    >>> _ = (folder / "supervised-weak.yaml").write_text(
    ...     f"{{stage: supervised, labels: weak, out: {folder / 'weak'}, train: {data(1, 2)}, "
    ...     f"valid: {data(2, 1)}, test: {data(3, 2)}, settings: {{base: cpu, encoder: resnet18, "
    ...     "decoder_channels: 16, crop: 64, batch_size: 2, steps: 2, eval_every: 2, "
    ...     "bn_batches: 1}}")
    >>> rows = reproduce_table(folder, progress=False)
    >>> [(row.key, row.paper_iou, row.iou is not None) for row in rows][:2]
    [('otsu', 54.58, True), ('supervised-hand', 67.63, False)]
    """
    folder = Path(configs)
    stems = [stem for stem in ORDER if (folder / f"{stem}.yaml").is_file()]
    if not stems:
        from floodxr.errors import InvalidOptionError

        raise InvalidOptionError(
            f"{str(folder)!r} has none of {[s + '.yaml' for s in ORDER]}; pass a folder like "
            "examples/configs/cpu"
        )
    scores: dict[str, tuple[list[float], int, int]] = {}
    test_scenes: tuple[Scene, ...] = ()
    for stem in stems:
        config = load_config(folder / f"{stem}.yaml", overrides)
        results = run_stage(config, progress=progress)
        scenes = tuple(s for source in build_sources(config.test) for s in source.scenes)
        test_scenes = test_scenes or scenes
        ious, skipped = [], 0
        for result in results:
            found = score(result.best, scenes, progress=False)
            ious.append(found.aggregate_iou)
            skipped = len(found.skipped)
        scores[stem] = (ious, len(scenes) - skipped, skipped)
    otsu = score("otsu", test_scenes, progress=False)
    scores["otsu"] = ([otsu.aggregate_iou], len(test_scenes), 0)
    rows = []
    for label, key, paper, paper_std in PAPER_TABLE:
        ious, n, skipped = scores.get(key, ([], 0, 0))
        mean, std = _mean_std(ious)
        rows.append(Row(label, key, paper, paper_std, mean, std, len(ious), n, skipped))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (ours: mean +- std over runs; '-' where not run).

    Examples
    --------
    >>> from floodxr.train.table import Row, format_table
    >>> print(format_table([Row("Otsu thresholding", "otsu", 54.58, None, 59.2, None, 1, 24, 0)]))
    | method | paper IoU | floodxr IoU | runs | test scenes |
    |---|---|---|---|---|
    | Otsu thresholding | 54.58 | 59.20 | 1 | 24 |
    """

    def cell(value: float | None, std: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" + (f" ± {std:.2f}" if std else "")

    lines = ["| method | paper IoU | floodxr IoU | runs | test scenes |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.label} | {cell(row.paper_iou, row.paper_std)} | "
            f"{cell(row.iou, row.std)} | {row.runs} | {row.scenes} |"
        )
    return "\n".join(lines)
