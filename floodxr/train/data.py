"""Training data: scenes from chunked cubes, random crops that read only the chunks they touch.

A **scene** is one image ``(band, y, x)`` (lazy or not) with optional hand and weak labels on its
grid. A **source** is a named list of scenes: a Sen1Floods11 folder, a paired cube (a
:func:`floodxr.data.pairing.load_pair` result, or any Zarr store written from one), or the
synthetic world of :mod:`floodxr.data.synthetic`.

:class:`CropDataset` draws crop *k* of training step *s* as a pure function of
``(seed, s, k)``: which source (equal shares when there are several: the paper's stage 2), which
scene, where, the scale distortion, the flips and the jitter. Runs are therefore repeatable with
any number of loader worker processes, and a resumed run sees exactly the batches the
interrupted one would have seen. A crop reads ``image.isel(y=..., x=...)`` of a dask-backed
scene, which computes the chunks under the window and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
import torch
import xarray as xr

from floodxr._valid import select_bands
from floodxr.bands import PAPER_RANGES, S1_BANDS
from floodxr.data import sen1floods11
from floodxr.data.scene import Scene
from floodxr.errors import DataLayoutError, InvalidOptionError, MissingBandError
from floodxr.preprocess import clip_scale

__all__ = [
    "Scene",
    "Source",
    "Augment",
    "CropDataset",
    "StepSampler",
    "sen1floods11_source",
    "sen1floods11_weak_source",
    "cube_source",
    "zarr_source",
    "synthetic_source",
    "loader",
    "source_from_spec",
]

Target = Literal["label", "weak_label"]


@dataclass(frozen=True)
class Source:
    """A named list of scenes."""

    name: str
    scenes: tuple[Scene, ...]

    def __post_init__(self) -> None:
        if not self.scenes:
            raise DataLayoutError(f"source {self.name!r} has no scene; check its path and split")

    def require(self, bands: Sequence[str], target: Target | None) -> None:
        """Raise unless every scene has ``bands`` and, if asked, the ``target`` labels."""
        lacking = [s.name for s in self.scenes if not set(bands) <= set(s.bands)]
        if lacking:
            raise MissingBandError(
                f"source {self.name!r}: {len(lacking)} scenes lack bands of {tuple(bands)} "
                f"(first {lacking[:3]}, which have {self.scenes[0].bands}); a teacher and a "
                "student's teacher input need Sentinel-2 (S2Hand/ or a paired cube)"
            )
        if target is not None:
            unlabelled = [s.name for s in self.scenes if getattr(s, target) is None]
            if unlabelled:
                raise DataLayoutError(
                    f"source {self.name!r}: {len(unlabelled)} scenes have no {target} (first "
                    f"{unlabelled[:3]}); use labels of another kind or another source"
                )


def sen1floods11_source(
    root: str | Path,
    split: str = "train",
    *,
    chunks: int | None = 256,
    name: str | None = None,
    exclude: Sequence[str] = (),
    chips: Sequence[str] | None = None,
) -> Source:
    """The hand-labelled chips of a Sen1Floods11 split: S1 (+ B02 B03 B04 B08 when S2Hand has them).

    ``chips`` keeps only the chips it names, ``exclude`` leaves the ones it names out (e.g. a demo
    chip that must stay unseen); a name that is not in the split is an error, so a typo cannot
    let a chip through.

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import sen1floods11 as s11
    >>> from floodxr.train.data import sen1floods11_source
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     source = sen1floods11_source(s11.SAMPLE_DIR, "test")
    ...     sen1floods11_source(s11.SAMPLE_DIR, "test", exclude=["Spain_737057"])
    Traceback (most recent call last):
    ...
    floodxr.errors.InvalidOptionError: chips / exclude name chips ['Spain_737057'] that are ...
    >>> source.scenes[0].name, source.scenes[0].bands
    ('Spain_7370579', ('vv', 'vh', 'B02', 'B03', 'B04', 'B08'))
    """
    split_list = sen1floods11.read_split(root, split)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    chips = [chips] if isinstance(chips, str) else chips
    named = exclude + list(chips or [])
    unknown = sorted(set(named) - set(split_list.chips) - set(split_list.missing))
    if unknown:
        raise InvalidOptionError(
            f"chips / exclude name chips {unknown} that are not in split {split!r} of "
            f"{str(root)!r}; "
            "check their spelling (e.g. 'Spain_7370579')"
        )
    scenes = [
        sen1floods11.open_chip(root, chip, chunks=chunks).scene()
        for chip in split_list.chips
        if chip not in set(exclude) and (chips is None or chip in set(chips))
    ]
    return Source(name or f"sen1floods11:{split}", tuple(scenes))


#: Sen1Floods11's weakly-labelled folders: label kind -> (folder, file suffix).
WEAK_LABELS = {"s2index": "S2IndexLabelWeak", "s1otsu": "S1OtsuLabelWeak"}


def sen1floods11_weak_source(
    root: str | Path,
    *,
    labels: Literal["s2index", "s1otsu"] = "s2index",
    chunks: int | None = 256,
    name: str | None = None,
) -> Source:
    """Sen1Floods11's weakly-labelled chips: ``S1Weak/<chip>_S1Weak.tif`` with the weak label.

    ``labels`` picks ``S2IndexLabelWeak`` (MNDWI/NDVI from Sentinel-2) or ``S1OtsuLabelWeak``.
    Sen1Floods11 ships no Sentinel-2 image for these chips, so they serve S1-only stages.

    Examples
    --------
    A WeakLabeled folder made from the bundled chip (its hand label standing in for a weak one):

    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> from floodxr.data.sen1floods11 import SAMPLE_DIR
    >>> from floodxr.train.data import sen1floods11_weak_source
    >>> root = Path(tempfile.mkdtemp())
    >>> for folder, name in (("S1Weak", "S1Hand"), ("S2IndexLabelWeak", "LabelHand")):
    ...     (root / folder).mkdir()
    ...     _ = shutil.copy(SAMPLE_DIR / name / f"Spain_7370579_{name}.tif",
    ...                     root / folder / f"Spain_7370579_{folder}.tif")
    >>> source = sen1floods11_weak_source(root)
    >>> [scene.name for scene in source.scenes], source.scenes[0].weak_label is not None
    (['Spain_7370579'], True)
    """
    if labels not in WEAK_LABELS:
        raise InvalidOptionError(f"labels must be one of {tuple(WEAK_LABELS)}, got {labels!r}")
    root = Path(root)
    folder = WEAK_LABELS[labels]
    if not (root / "S1Weak").is_dir() or not (root / folder).is_dir():
        raise DataLayoutError(
            f"{str(root)!r} needs S1Weak/ and {folder}/ (Sen1Floods11's WeakLabeled folder); "
            "pass the folder that holds them"
        )
    scenes = []
    for path in sorted((root / "S1Weak").glob("*_S1Weak.tif")):
        chip = path.name.removesuffix("_S1Weak.tif")
        label_path = root / folder / f"{chip}_{folder}.tif"
        if not label_path.is_file():
            raise DataLayoutError(f"{str(path)!r} has no weak label {str(label_path)!r}")
        s1 = sen1floods11.open_s1(path, chunks=chunks)
        weak = sen1floods11.open_label(label_path, chunks=chunks)
        weak = weak.assign_coords(y=s1["y"], x=s1["x"])
        scenes.append(Scene(name=chip, image=s1, weak_label=weak))
    return Source(name or f"sen1floods11-weak:{labels}", tuple(scenes))


def cube_source(obj: xr.Dataset | xr.DataArray, *, name: str = "cube") -> Source:
    """Scenes of a paired cube: one per step of every leading dim (e.g. ``time``).

    ``obj`` is a DataArray ``([time,] band, y, x)`` such as :func:`floodxr.data.pairing.load_pair`
    returns, or a Dataset with such an ``image`` variable (or ``bands`` / ``s1``, or its only
    variable with a ``band`` dim) and optional ``label`` / ``weak_label`` ``([time,] y, x)``.

    Examples
    --------
    >>> from floodxr.data.synthetic import paired_scene
    >>> from floodxr.train.data import cube_source
    >>> source = cube_source(paired_scene((64, 64), seed=1))
    >>> len(source.scenes), source.scenes[0].label is not None
    (1, True)
    """
    if isinstance(obj, xr.DataArray):
        image, labels = obj, {}
    else:
        with_band = [str(v) for v in obj.data_vars if "band" in obj[v].dims]
        named = [v for v in ("image", "bands", "s1") if v in obj.data_vars]
        image_name = named[0] if named else (with_band[0] if len(with_band) == 1 else None)
        if image_name is None:
            raise DataLayoutError(
                f"cube {name!r} has variables {sorted(map(str, obj.data_vars))}; expected an "
                "'image' variable (band, y, x) and optional 'label' / 'weak_label'"
            )
        image = obj[image_name]
        labels = {k: obj[k] for k in ("label", "weak_label") if k in obj.data_vars}
    if "band" not in image.dims:
        raise DataLayoutError(f"cube {name!r}: the image has dims {image.dims}, no 'band'")
    lead = [str(d) for d in image.dims if d not in ("band", "y", "x")]
    steps: list[dict[str, int]] = [{}]
    for dim in lead:
        steps = [{**s, dim: i} for s in steps for i in range(image.sizes[dim])]
    scenes = []
    for index in steps:
        suffix = "".join(f"[{d}={i}]" for d, i in index.items())
        picked = {
            k: v.isel({d: i for d, i in index.items() if d in v.dims}) for k, v in labels.items()
        }
        scenes.append(
            Scene(
                name=f"{name}{suffix}",
                image=image.isel(index).transpose("band", "y", "x"),
                label=picked.get("label"),
                weak_label=picked.get("weak_label"),
            )
        )
    return Source(name, tuple(scenes))


def zarr_source(path: str | Path, *, name: str | None = None) -> Source:
    """:func:`cube_source` over a Zarr store, opened lazily with its own chunks.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr.data import synthetic as world
    >>> from floodxr.train.data import zarr_source
    >>> store = world.write_world(tempfile.mkdtemp() + "/paired.zarr", 2, shape=(64, 64))
    >>> source = zarr_source(store)
    >>> len(source.scenes), source.scenes[0].bands[:2]
    (2, ('vv', 'vh'))
    """
    path = Path(path)
    if not path.exists():
        raise DataLayoutError(f"no Zarr store at {str(path)!r}; write one with cube.to_zarr(...)")
    return cube_source(xr.open_zarr(path, consolidated=False), name=name or path.name)


def synthetic_source(
    scenes: int, *, seed: int = 0, size: int = 512, name: str | None = None
) -> Source:
    """``scenes`` paired scenes of :mod:`floodxr.data.synthetic` (in memory).

    Examples
    --------
    >>> from floodxr.train.data import synthetic_source
    >>> synthetic_source(2, seed=5, size=64).scenes[1].name
    'synthetic:500016'
    """
    from floodxr.data.synthetic import paired_scenes

    made = paired_scenes(scenes, seed=seed, shape=(size, size))
    return Source(
        name or f"synthetic:{seed}",
        tuple(
            Scene(
                name=f"synthetic:{s.attrs['floodxr_world_seed']}",
                image=s.image,
                label=s.label,
                weak_label=s.weak_label,
            )
            for s in made
        ),
    )


def normalized(raw: np.ndarray, bands: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(bands, y, x)`` values scaled as the paper does (NaN -> 0), and where all are finite."""
    low = np.array([PAPER_RANGES[b][0] for b in bands], "float32")[:, None, None]
    high = np.array([PAPER_RANGES[b][1] for b in bands], "float32")[:, None, None]
    return np.nan_to_num(clip_scale(raw, low, high), nan=0.0), np.isfinite(raw).all(axis=0)


@dataclass(frozen=True)
class Augment:
    """The paper's augmentations (section 3.1), and radiometric ones, drawn per crop.

    The paper's: ``scale``: the crop reads a window of ``crop * s`` px, ``s`` uniform in the
    range, resized to ``crop`` (scale distortion); ``flips``: horizontal and vertical, each with
    probability 0.5; ``s1_jitter``: an offset (sd, normalised units; 0.03 is ~0.6 dB in VV) and a
    gain (sd) per S1 band; ``s2_jitter``: colour jitter, a brightness gain and a per-band gain
    (sd) on S2; ``s1_speckle``: re-sampled speckle, an extra multiplicative Gamma field of that
    many looks (mean 1) on each S1 band's intensity, i.e. ``10 log10(g)`` added in dB after the
    clipping (``None``: off; not one of the paper's).

    Radiometric, in dB before the paper's clipping, so that a network cannot learn the absolute
    levels of the scenes it trained on (all off by default; none is the paper's):

    * ``s1_gain_db``: a per-crop, per-polarisation offset uniform in ``[-g, g]`` dB (calibration,
      sigma-0 vs gamma-0, season, moisture);
    * ``s1_contrast``: ``(low, high)``: each S1 band pulled toward the crop's median by a factor
      uniform in the range (1 keeps it): weak water/land contrast;
    * ``s1_ramp_db``: a linear ramp of up to that many dB across the crop in a random direction
      (the incidence angle's fall-off across a swath);
    * ``s1_noise_floor_db``: ``(low, high)``: thermal noise of a level uniform in the range (dB,
      same for both polarisations) added to the intensity with its own speckle: dark water rises
      to the noise floor, as before ESA's noise removal.

    Geometry applies to inputs and targets alike; jitter and the radiometric changes only to the
    model's input, never to the teacher's.
    """

    scale: tuple[float, float] = (0.75, 1.25)
    flips: bool = True
    s1_jitter: tuple[float, float] = (0.03, 0.05)
    s2_jitter: tuple[float, float] = (0.1, 0.05)
    s1_speckle: float | None = None
    s1_gain_db: float | None = None
    s1_contrast: tuple[float, float] | None = None
    s1_ramp_db: float | None = None
    s1_noise_floor_db: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.s1_speckle is not None and not self.s1_speckle > 0:
            raise InvalidOptionError(
                f"Augment(s1_speckle={self.s1_speckle!r}): the speckle's number of looks must be "
                "> 0 (e.g. 10), or None for no re-sampled speckle"
            )
        for name in ("s1_gain_db", "s1_ramp_db"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise InvalidOptionError(
                    f"Augment({name}={value!r}) must be a number of dB >= 0 (e.g. 4), or None"
                )
        contrast = self.s1_contrast
        if contrast is not None and not (
            len(contrast) == 2 and 0 < contrast[0] <= contrast[1] <= 1
        ):
            raise InvalidOptionError(
                f"Augment(s1_contrast={contrast!r}) must be (low, high) with "
                "0 < low <= high <= 1, e.g. (0.5, 1.0), or None"
            )
        floor = self.s1_noise_floor_db
        if floor is not None and not (len(floor) == 2 and floor[0] <= floor[1] < 0):
            raise InvalidOptionError(
                f"Augment(s1_noise_floor_db={floor!r}) must be (low, high) dB with "
                "low <= high < 0, e.g. (-30, -22), or None"
            )

    @classmethod
    def none(cls) -> Augment:
        return cls(scale=(1.0, 1.0), flips=False, s1_jitter=(0.0, 0.0), s2_jitter=(0.0, 0.0))

    @property
    def radiometric(self) -> bool:
        """Whether any dB-space change is on."""
        return any(
            v is not None
            for v in (self.s1_gain_db, self.s1_contrast, self.s1_ramp_db, self.s1_noise_floor_db)
        )

    def s1_db(self, db: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``db`` ``(band, y, x)`` (S1 bands, dB, NaN kept) with the radiometric changes drawn.

        Examples
        --------
        >>> import numpy as np
        >>> from floodxr.train.data import Augment
        >>> db = np.full((2, 8, 8), -20.0)
        >>> out = Augment(s1_gain_db=4.0).s1_db(db, np.random.default_rng(0))
        >>> bool(np.all(np.abs(out - db) <= 4.0)), bool(np.ptp(out[0]) == 0)
        (True, True)
        """
        out = np.array(db, "float64")
        bands, ny, nx = out.shape
        if self.s1_noise_floor_db is not None:
            level = rng.uniform(*self.s1_noise_floor_db)
            for b in range(bands):
                looks = 4.4
                noise = 10 ** (level / 10) * rng.gamma(looks, 1 / looks, size=(ny, nx))
                out[b] = 10 * np.log10(10 ** (out[b] / 10) + noise)
        if self.s1_contrast is not None:
            for b in range(bands):
                factor = rng.uniform(*self.s1_contrast)
                finite = np.isfinite(out[b])
                if finite.any():
                    median = float(np.median(out[b][finite]))
                    out[b] = median + factor * (out[b] - median)
        if self.s1_ramp_db is not None:
            angle, size = rng.uniform(0, 2 * np.pi), rng.uniform(-1, 1) * self.s1_ramp_db
            yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx, 1)
            out += size * ((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle))
        if self.s1_gain_db is not None:
            out += rng.uniform(-self.s1_gain_db, self.s1_gain_db, size=(bands, 1, 1))
        return out


@dataclass(frozen=True)
class CropDataset(torch.utils.data.Dataset):
    """Random crops of ``sources`` (and ``labelled``): item ``(step, slot)`` -> dict of tensors.

    Keys: ``image`` (``bands``, normalised, jittered), ``teacher`` (``teacher_bands``, normalised,
    not jittered; when asked), ``target`` (int64, -1 where invalid; when ``target`` is set or
    there are ``labelled`` sources) and ``valid`` (bool: every input band finite).

    ``labelled`` sources give hand-labelled crops beside a student's paired ones: they need only
    ``bands`` and a ``label``; their ``teacher`` input is zeros and ``distil`` (bool per item)
    says which crops the teacher sees. ``shares`` gives each source's slots per batch, in the
    order ``sources + labelled`` (default: equal shares).
    """

    sources: tuple[Source, ...]
    bands: tuple[str, ...]
    target: Target | None = "label"
    teacher_bands: tuple[str, ...] = ()
    crop: int = 321
    augment: Augment = field(default_factory=Augment)
    min_valid: float = 0.5
    seed: int = 0
    batch_size: int = 8
    tries: int = 10
    labelled: tuple[Source, ...] = ()
    shares: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.sources:
            raise InvalidOptionError("CropDataset needs at least one source")
        every = self.sources + self.labelled
        if self.shares is None:
            if self.batch_size % len(every):
                raise InvalidOptionError(
                    f"batch_size {self.batch_size} cannot be shared equally by {len(every)} "
                    f"sources; use a multiple of {len(every)}, or give shares"
                )
        elif (
            len(self.shares) != len(every)
            or sum(self.shares) != self.batch_size
            or min(self.shares) < 1
        ):
            raise InvalidOptionError(
                f"shares {list(self.shares)} must give each of the {len(every)} sources "
                f"({[s.name for s in every]}) at least one slot and add up to the batch size "
                f"{self.batch_size}"
            )
        for source in self.sources:
            source.require(self.read_bands, self.target)
        for source in self.labelled:
            source.require(self.bands, "label")

    @property
    def read_bands(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.bands + self.teacher_bands))

    @property
    def slots(self) -> tuple[int, ...]:
        """How many crops of each source (``sources + labelled``) a batch holds."""
        every = self.sources + self.labelled
        return self.shares or (self.batch_size // len(every),) * len(every)

    def __len__(self) -> int:  # items are addressed by (step, slot); no epochs
        return 2**62

    def source_of(self, slot: int) -> Source:
        return (self.sources + self.labelled)[self._index_of(slot)]

    def _index_of(self, slot: int) -> int:
        return int(np.searchsorted(np.cumsum(self.slots), slot, side="right"))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        step, slot = key
        rng = np.random.default_rng([self.seed, step, slot])
        index = self._index_of(slot)
        source = (self.sources + self.labelled)[index]
        best: dict[str, torch.Tensor] = {}
        best_usable = -1.0
        for _ in range(self.tries):  # the first draw usable enough, else the most usable one
            scene = source.scenes[int(rng.integers(len(source.scenes)))]
            item = self._draw(scene, rng, labelled=index >= len(self.sources))
            usable = float(item.pop("usable").float().mean())
            if usable > best_usable:
                best, best_usable = item, usable
            if usable >= self.min_valid:
                break
        return best

    def _draw(
        self, scene: Scene, rng: np.random.Generator, *, labelled: bool = False
    ) -> dict[str, torch.Tensor]:
        ny, nx = scene.shape
        side = round(self.crop * rng.uniform(*self.augment.scale))
        side = max(1, min(side, ny, nx))
        y0, x0 = int(rng.integers(ny - side + 1)), int(rng.integers(nx - side + 1))
        window = {"y": slice(y0, y0 + side), "x": slice(x0, x0 + side)}
        read = self.bands if labelled else self.read_bands
        raw = select_bands(scene.image.isel(window), read).values
        scaled, finite = normalized(raw, read)
        s1 = [i for i, b in enumerate(read) if b in S1_BANDS and b in self.bands]
        layers = [scaled]
        if self.augment.radiometric:  # in dB, before clipping; the teacher sees the original
            layers.append(normalized(self.augment.s1_db(raw[s1], rng), [read[i] for i in s1])[0])
        layers.append(finite[None].astype("float32"))
        planes = torch.from_numpy(np.concatenate(layers).astype("float32"))
        target = None
        name = "label" if labelled else self.target
        if name is not None:
            labels = getattr(scene, name)
            assert labels is not None  # checked by Source.require
            target = torch.from_numpy(labels.isel(window).values.astype("float32"))[None]
        if side != self.crop:
            planes = torch.nn.functional.interpolate(
                planes[None], size=(self.crop, self.crop), mode="bilinear", align_corners=False
            )[0]
            if target is not None:
                target = torch.nn.functional.interpolate(
                    target[None], size=(self.crop, self.crop), mode="nearest"
                )[0]
        if self.augment.flips:
            for axis in (-1, -2):
                if rng.uniform() < 0.5:
                    planes = planes.flip(axis)
                    target = None if target is None else target.flip(axis)
        image, valid = planes[: len(read)], planes[-1] > 0.999
        inputs = image
        if self.augment.radiometric:  # the student's changed S1 planes sit after the image
            inputs = image.clone()
            inputs[s1] = planes[len(read) : -1]
        item = {"valid": valid, "image": self._jitter(inputs, read, rng)[self._index(read)]}
        if self.teacher_bands:
            item["teacher"] = (
                torch.zeros((len(self.teacher_bands), self.crop, self.crop))
                if labelled
                else image[[read.index(b) for b in self.teacher_bands]].contiguous()
            )
            item["distil"] = torch.tensor(not labelled)
        usable = valid
        if target is not None:
            labels = torch.where(valid, target[0], torch.tensor(-1.0)).long()
            item["target"] = labels
            usable = labels >= 0
        elif self.labelled:  # every item of a batch carries the same keys
            item["target"] = torch.full((self.crop, self.crop), -1, dtype=torch.long)
        item["usable"] = usable
        return item

    def _index(self, read: tuple[str, ...]) -> list[int]:
        return [read.index(b) for b in self.bands]

    def _jitter(
        self, image: torch.Tensor, read: tuple[str, ...], rng: np.random.Generator
    ) -> torch.Tensor:
        out = image.clone()
        s1_offset, s1_gain = self.augment.s1_jitter
        s2_brightness, s2_gain = self.augment.s2_jitter
        brightness = 1.0 + rng.normal(0, s2_brightness) if s2_brightness else 1.0
        for i, band in enumerate(read):
            if band in S1_BANDS:
                if self.augment.s1_speckle is not None:
                    looks, (low, high) = self.augment.s1_speckle, PAPER_RANGES[band]
                    speckle = rng.gamma(looks, 1.0 / looks, size=tuple(out.shape[1:]))
                    db = 10.0 * np.log10(np.maximum(speckle, 1e-12))
                    out[i] = out[i] + torch.from_numpy((db / (high - low)).astype("float32"))
                gain, offset = 1.0 + rng.normal(0, s1_gain), rng.normal(0, s1_offset)
            else:
                gain, offset = brightness * (1.0 + rng.normal(0, s2_gain)), 0.0
            out[i] = (out[i] * gain + offset).clamp(0.0, 1.0)
        return out


@dataclass(frozen=True)
class StepSampler(torch.utils.data.Sampler):
    """Yields the keys ``[(step, 0), ..., (step, batch_size - 1)]`` for steps ``start..stop-1``."""

    start: int
    stop: int
    batch_size: int

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield [(step, slot) for slot in range(self.batch_size)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _init_worker(worker_id: int) -> None:
    # one torch thread per loader process and no dask thread pool inside it: the main process
    # owns the cores
    torch.set_num_threads(1)
    dask.config.set(scheduler="synchronous")


def loader(
    dataset: CropDataset, *, start: int, stop: int, num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over steps ``start..stop-1``; the same batches whatever ``num_workers``.

    Examples
    --------
    >>> from floodxr.train.data import CropDataset, loader, synthetic_source
    >>> dataset = CropDataset((synthetic_source(2, size=96),), bands=("vv", "vh"), crop=64,
    ...                       batch_size=2)
    >>> batch = next(iter(loader(dataset, start=0, stop=1)))
    >>> tuple(batch["image"].shape), tuple(batch["target"].shape)
    ((2, 2, 64, 64), (2, 64, 64))
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepSampler(start, stop, dataset.batch_size),
        num_workers=num_workers,
        worker_init_fn=_init_worker if num_workers else None,
        # a private generator: the loader must not draw from torch's global RNG, which the
        # resumable training state owns
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
        multiprocessing_context="fork" if num_workers else None,
    )


def source_from_spec(spec: Mapping[str, Any]) -> Source:
    """A source from a config entry: ``{"kind": "synthetic" | "sen1floods11" | ..., ...}``.

    Kinds: ``sen1floods11`` (``root``, ``split``), ``sen1floods11-weak`` (``root``, ``labels``),
    ``zarr`` (``path``), ``synthetic`` (``scenes``, ``seed``, ``size``).

    Examples
    --------
    >>> from floodxr.train.data import source_from_spec
    >>> source_from_spec({"kind": "synthetic", "scenes": 1, "seed": 2, "size": 64}).name
    'synthetic:2'
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    makers = {
        "sen1floods11": lambda s: sen1floods11_source(s.pop("root"), s.pop("split", "train"), **s),
        "sen1floods11-weak": lambda s: sen1floods11_weak_source(s.pop("root"), **s),
        "zarr": lambda s: zarr_source(s.pop("path"), **s),
        "synthetic": lambda s: synthetic_source(s.pop("scenes"), **s),
    }
    if kind not in makers:
        raise InvalidOptionError(
            f"data source kind {kind!r} is not one of {sorted(makers)}; e.g. "
            "{kind: synthetic, scenes: 32, seed: 1}"
        )
    try:
        return makers[kind](spec)
    except (KeyError, TypeError) as err:
        raise InvalidOptionError(
            f"data source {kind!r}: bad or missing keys ({err}); "
            f"see floodxr.train.data.source_from_spec"
        ) from err
