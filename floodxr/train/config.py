"""YAML configurations for ``floodxr train`` and ``floodxr reproduce-table``.

A configuration names the stage, its data and its settings::

    stage: student                  # teacher | student | supervised
    labels: hand                    # supervised only: hand | weak
    out: runs/cpu/student
    teacher: runs/cpu/teacher/best.safetensors      # student only
    train:                          # sources; a student draws equal shares of each per batch
      - {kind: sen1floods11, root: data/sen1floods11, split: train}
      - {kind: zarr, path: data/external.zarr}
    labelled:                       # student only: S1 + hand labels learnt directly (no S2)
      - {kind: sen1floods11, root: data/sen1floods11, split: test, exclude: [Spain_7370579]}
    valid: [{kind: sen1floods11, root: data/sen1floods11, split: valid}]
    test: [{kind: sen1floods11, root: data/sen1floods11, split: test}]
    runs: 5                         # repeated with seeds seed, seed+1, ... (mean +- std)
    settings:                       # floodxr.train.TrainConfig fields; unset ones keep `base`
      base: paper                   # paper | cpu
      steps: 30000

Relative paths are taken from the current directory. ``key.sub=value`` overrides (values
parsed as YAML) change any entry: ``settings.steps=200``, ``out=/tmp/run``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from floodxr._valid import integer, number, unknown_keys, violations
from floodxr.errors import InvalidOptionError
from floodxr.train.data import Augment, Source, source_from_spec
from floodxr.train.stages import CPU, PAPER, GridResult, TrainConfig, student, supervised, teacher

__all__ = ["StageConfig", "load_config", "read_yaml", "run_stage"]

STAGES = ("teacher", "student", "supervised")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading numbers as YAML 1.2 does: ``1e-3`` is a float.

    PyYAML implements YAML 1.1, whose floats need a dot (``1.0e-3``); people write ``1e-3``.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$""", re.X),
    list("-+0123456789"),
)


def read_yaml(text: str) -> Any:
    """Parse YAML with YAML 1.2 numbers (``1e-3`` is a float, as in every other tool).

    Examples
    --------
    >>> from floodxr.train.config import read_yaml
    >>> read_yaml("lr: 1e-3\\nweight_decay: [1e-4, 5E-4]\\nsteps: 200")
    {'lr': 0.001, 'weight_decay': [0.0001, 0.0005], 'steps': 200}
    """
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


BASES = {"paper": PAPER, "cpu": CPU}


@dataclass(frozen=True)
class StageConfig:
    """A parsed configuration file."""

    stage: str
    out: Path
    train: tuple[Mapping[str, Any], ...]
    settings: TrainConfig
    valid: tuple[Mapping[str, Any], ...] = ()
    test: tuple[Mapping[str, Any], ...] = ()
    labels: str = "hand"
    teacher: Path | None = None
    runs: int = 1
    name: str = ""
    labelled: tuple[Mapping[str, Any], ...] = ()

    def seeds(self) -> list[tuple[int, Path]]:
        """``(seed, out)`` of each repeated run (``out`` itself when there is one run)."""
        first = self.settings.seed
        if self.runs == 1:
            return [(first, self.out)]
        return [(first + k, self.out / f"seed{first + k}") for k in range(self.runs)]


def _apply(data: dict[str, Any], override: str) -> None:
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise InvalidOptionError(
            f"override {override!r} is not KEY=VALUE (e.g. settings.steps=200)"
        )
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise InvalidOptionError(f"override {override!r}: {part!r} is not a section")
    try:
        node[last] = read_yaml(value)
    except yaml.YAMLError as err:
        raise InvalidOptionError(f"override {override!r}: the value is not YAML ({err})") from err


def _settings(raw: Mapping[str, Any], source: str) -> TrainConfig:
    raw = dict(raw)
    base_name = raw.pop("base", "cpu")
    if base_name not in BASES:
        raise InvalidOptionError(
            f"{source}: settings.base must be one of {list(BASES)}, got {base_name!r}"
        )
    known = sorted(f.name for f in fields(TrainConfig))
    unknown = unknown_keys(raw, known)
    if unknown:
        raise InvalidOptionError(f"{source}: unknown settings {unknown}; known: {known}")
    if raw.get("shares") is not None:
        if not isinstance(raw["shares"], list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw["shares"]
        ):
            raise InvalidOptionError(
                f"{source}: settings.shares must be a list of crops per source, e.g. [6, 2]; "
                f"got {raw['shares']!r}"
            )
        raw["shares"] = tuple(raw["shares"])
    for key in ("lr", "weight_decay"):
        if key in raw and (isinstance(raw[key], str) or not isinstance(raw[key], Sequence)):
            raw[key] = [raw[key]]
        if key in raw:
            raw[key] = tuple(_float(v, f"{source}: settings.{key}") for v in raw[key])
    if "augment" in raw:
        augment: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in dict(raw["augment"]).items()
        }
        raw["augment"] = Augment(**augment)
    return BASES[base_name].replace(**raw)


def _float(value: Any, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    return float(number(value, name))


def _sources(value: Any, key: str, source: str) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise InvalidOptionError(
            f"{source}: {key} must be a list of sources like {{kind: synthetic, scenes: 32}}"
        )
    return tuple(value)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> StageConfig:
    """Read a stage configuration and apply ``KEY=VALUE`` overrides.

    Examples
    --------
    >>> from pathlib import Path
    >>> import floodxr
    >>> from floodxr.train.config import load_config
    >>> configs = Path(floodxr.__file__).parents[1] / "examples" / "configs"
    >>> config = load_config(configs / "paper" / "student.yaml")
    >>> config.stage, config.settings.encoder, config.settings.batch_size, config.settings.steps
    ('student', 'tu-xception65', 64, 30000)
    >>> load_config(configs / "cpu" / "teacher.yaml", ["settings.steps=20"]).settings.steps
    20
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidOptionError(f"no configuration file {str(path)!r}")
    try:
        data = read_yaml(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise InvalidOptionError(f"{str(path)!r} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise InvalidOptionError(f"{str(path)!r} is not a mapping of keys (stage:, out:, ...)")
    data = copy.deepcopy(data)
    for override in overrides:
        _apply(data, override)
    stage = data.get("stage")
    if stage not in STAGES:
        raise InvalidOptionError(f"{str(path)!r}: stage must be one of {STAGES}, got {stage!r}")
    known = sorted(f.name for f in fields(StageConfig))
    unknown = unknown_keys(data, known)
    if unknown:
        raise InvalidOptionError(f"{str(path)!r}: unknown keys {unknown}; known: {known}")
    if "out" not in data or not data.get("train"):
        raise InvalidOptionError(f"{str(path)!r} needs 'out' (a folder) and 'train' (sources)")
    if stage == "student" and not data.get("teacher"):
        raise InvalidOptionError(f"{str(path)!r}: a student needs 'teacher' (a checkpoint path)")
    runs = data.get("runs", 1)
    problems = violations({"runs": runs}, {"runs": integer(1)})
    if problems:
        raise InvalidOptionError(f"{str(path)!r}: {problems[0]}")
    labels = data.get("labels", "hand")
    if data.get("labelled") and stage != "student":
        raise InvalidOptionError(
            f"{str(path)!r}: 'labelled' sources belong to a student; a {stage} learns from the "
            "labels of its 'train' sources"
        )
    return StageConfig(
        stage=stage,
        out=Path(data["out"]),
        train=_sources(data["train"], "train", str(path)),
        valid=_sources(data.get("valid"), "valid", str(path)),
        test=_sources(data.get("test"), "test", str(path)),
        settings=_settings(data.get("settings") or {}, str(path)),
        labels=labels,
        teacher=Path(data["teacher"]) if data.get("teacher") else None,
        runs=runs,
        name=data.get("name") or (f"supervised-{labels}" if stage == "supervised" else stage),
        labelled=_sources(data.get("labelled"), "labelled", str(path)),
    )


def build_sources(specs: Sequence[Mapping[str, Any]]) -> list[Source]:
    return [source_from_spec(spec) for spec in specs]


def run_stage(
    config: StageConfig,
    *,
    progress: bool | None = None,
    sources: tuple[Sequence[Source], Sequence[Source]] | None = None,
) -> list[GridResult]:
    """Train every repeated run of ``config`` (each resumable); one result per seed.

    ``sources`` (``train``, ``labelled``), when given, replace the ones the configuration names
    (cross-validation passes each fold's).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import floodxr
    >>> from floodxr.train.config import load_config, run_stage
    >>> configs = Path(floodxr.__file__).parents[1] / "examples" / "configs" / "cpu"
    >>> config = load_config(configs / "supervised-weak.yaml", [
    ...     f"out={tempfile.mkdtemp()}", "settings.encoder=resnet18",
    ...     "settings.decoder_channels=16", "settings.crop=64", "settings.batch_size=2",
    ...     "settings.steps=2", "settings.eval_every=2", "settings.bn_batches=1",
    ...     "train=[{kind: synthetic, scenes: 2, seed: 1, size: 96}]",
    ...     "valid=[{kind: synthetic, scenes: 1, seed: 2, size: 96}]"])
    >>> [result.best.name for result in run_stage(config, progress=False)]
    ['best.safetensors']
    """
    if sources is None:
        train, labelled = build_sources(config.train), build_sources(config.labelled)
    else:
        train, labelled = list(sources[0]), list(sources[1])
    valid = build_sources(config.valid) or None
    results = []
    for seed, out in config.seeds():
        settings = config.settings.replace(seed=seed)
        if config.stage == "teacher":
            result = teacher(train, out=out, valid=valid, config=settings, progress=progress)
        elif config.stage == "student":
            assert config.teacher is not None  # load_config requires it
            result = student(
                train,
                teacher=config.teacher,
                out=out,
                valid=valid,
                labelled=labelled or None,
                config=settings,
                progress=progress,
            )
        else:
            result = supervised(
                train,
                out=out,
                valid=valid,
                labels=config.labels,  # type: ignore[arg-type]
                config=settings,
                name=config.name,
                progress=progress,
            )
        results.append(result)
    return results
