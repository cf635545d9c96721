"""Read Sen1Floods11 hand-labelled chips and the official split lists.

A data folder is laid out as the dataset's ``v1.1/data/flood_events/HandLabeled`` folder plus
the split lists and the event metadata::

    DIR/S1Hand/<chip>_S1Hand.tif        2 bands VV, VH in dB, NaN nodata
    DIR/S2Hand/<chip>_S2Hand.tif        13 bands B1..B12 with B8A, TOA reflectance x 10000, 0 nodata
    DIR/LabelHand/<chip>_LabelHand.tif  -1 invalid, 0 not water, 1 water
    DIR/splits/flood_<split>_data.csv   one "<chip>_S1Hand.tif,<chip>_LabelHand.tif" a line
    DIR/Sen1Floods11_Metadata.geojson   one feature per flood event (dates, orbit, VH threshold)

Bonafilia, Tellman, Anderson, Issenberg (2020), "Sen1Floods11: a georeferenced dataset to train
and test deep learning flood algorithms for Sentinel-1", CVPR Workshops.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as dsa
import numpy as np
import rioxarray
import xarray as xr

from floodxr.bands import S1_BANDS, S2_BANDS, S2_PAPER_BANDS
from floodxr.data.scene import Scene
from floodxr.errors import (
    AssetReadError,
    ChipNotFoundError,
    DataLayoutError,
    MissingChipsWarning,
    UnknownEventError,
)
from floodxr.grid import transform

__all__ = [
    "Chip",
    "Split",
    "SAMPLE_DIR",
    "SAMPLE_CHIP",
    "open_s1",
    "open_s2",
    "open_label",
    "open_chip",
    "read_split",
    "read_events",
    "event_of",
]

SplitName = Literal["train", "valid", "test", "bolivia"]
Chunks = None | int | Mapping[str, int]

#: A Sen1Floods11 folder shipped with the package: one real chip (S1, S2, label), the official
#: split lists and the event metadata; ``SAMPLE_DIR/README.md`` gives source and licence.
SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_CHIP = "Spain_7370579"

#: Chip-name prefixes that differ from the event metadata's ``location``.
EVENT_ALIASES: Mapping[str, str] = {"Mekong": "Cambodia"}

_LAYOUT = (
    "expected a Sen1Floods11 folder with S1Hand/<chip>_S1Hand.tif, "
    "LabelHand/<chip>_LabelHand.tif, optional S2Hand/<chip>_S2Hand.tif, "
    "splits/flood_<split>_data.csv and Sen1Floods11_Metadata.geojson"
)


def _open(path: str | Path, *, chunks: Chunks, masked: bool) -> xr.DataArray:
    path = Path(path)
    if not path.is_file():
        raise ChipNotFoundError(f"no file {str(path)!r}; {_LAYOUT}")
    try:
        opened = rioxarray.open_rasterio(path, masked=masked, cache=False)
    except (OSError, RuntimeError) as err:  # rasterio's RasterioIOError is an OSError
        raise AssetReadError(
            f"cannot open {str(path)!r} as a GeoTIFF ({err}); replace the "
            "file (truncated or corrupt download?)"
        ) from err
    assert isinstance(opened, xr.DataArray)  # a single-subdataset GeoTIFF; not user input
    if chunks is None:
        return opened
    # all bands of a pixel in one chunk: models and indices need them together
    sizes = {"y": chunks, "x": chunks} if isinstance(chunks, int) else dict(chunks)
    reads = dsa.from_array(
        _NamedReads(opened.variable, path),
        name=f"read-{path.name}-{dask.base.tokenize(str(path), path.stat().st_mtime_ns)}",
        chunks=(-1, sizes.get("y", -1), sizes.get("x", -1)),
        meta=np.array((), opened.dtype),
    )
    return opened.copy(data=reads)


class _NamedReads:
    """The lazily read pixels of a file; a failed read names the file (GDAL's errors do not)."""

    def __init__(self, variable: xr.Variable, path: Path) -> None:
        self.variable, self.path = variable, path
        self.shape, self.dtype, self.ndim = variable.shape, variable.dtype, variable.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.variable[key].values)
        except (OSError, RuntimeError) as err:
            raise AssetReadError(
                f"reading pixels of {str(self.path)!r} failed ({type(err).__name__}: {err}); the "
                "file is truncated or corrupt: replace it"
            ) from err


def _band_names(da: xr.DataArray, expected: tuple[str, ...], path: Path) -> list[str]:
    if da.sizes["band"] != len(expected):
        raise DataLayoutError(
            f"{str(path)!r} has {da.sizes['band']} bands, expected {len(expected)} "
            f"{expected}; is it the right kind of chip for this reader?"
        )
    return list(expected)


def open_s1(path: str | Path, *, chunks: Chunks = None) -> xr.DataArray:
    """Open an ``S1Hand`` chip: float32 dB with bands ``vv, vh``, NaN nodata, CRS and transform.

    Parameters
    ----------
    path : path of a ``<chip>_S1Hand.tif``
    chunks : None for numpy, or dask chunks: an int (y and x) or ``{"y": .., "x": ..}``;
        all bands of a pixel stay in one chunk

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> s1 = s11.open_s1(s11.SAMPLE_DIR / "S1Hand" / "Spain_7370579_S1Hand.tif")
    >>> s1.dims, s1.band.values.tolist(), s1.attrs["units"], str(s1.rio.crs)
    (('band', 'y', 'x'), ['vv', 'vh'], 'dB', 'EPSG:4326')
    """
    da = _open(path, chunks=chunks, masked=False)
    da = da.assign_coords(band=_band_names(da, S1_BANDS, Path(path)))
    da.attrs = {"units": "dB", "long_name": "Sentinel-1 GRD backscatter", "_FillValue": np.nan}
    return da.rename("s1")


def open_s2(path: str | Path, *, chunks: Chunks = None) -> xr.DataArray:
    """Open an ``S2Hand`` chip: bands ``B01 … B12`` with ``B8A``, float32, nodata 0 → NaN.

    Values stay TOA reflectance x 10000, the scale :func:`floodxr.preprocess.normalize` expects.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> s2 = s11.open_s2(s11.SAMPLE_DIR / "S2Hand" / "Spain_7370579_S2Hand.tif")
    >>> s2.band.values.tolist()[7:9], str(s2.dtype)
    (['B08', 'B8A'], 'float32')
    """
    da = _open(path, chunks=chunks, masked=True)
    da = da.assign_coords(band=_band_names(da, S2_BANDS, Path(path)))
    da.attrs = {"units": "TOA reflectance x 10000", "long_name": "Sentinel-2 L1C"}
    return da.astype("float32").rename("s2")


def open_label(path: str | Path, *, chunks: Chunks = None) -> xr.DataArray:
    """Open a ``LabelHand`` chip as int8 ``(y, x)``: -1 invalid, 0 not water, 1 water.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> label = s11.open_label(s11.SAMPLE_DIR / "LabelHand" / "Spain_7370579_LabelHand.tif")
    >>> label.dims, str(label.dtype), int(label.rio.nodata)
    (('y', 'x'), 'int8', -1)
    """
    da = _open(path, chunks=chunks, masked=False)
    if da.sizes["band"] != 1:
        raise DataLayoutError(f"{str(path)!r} has {da.sizes['band']} bands, a label has 1")
    label = da.squeeze("band", drop=True).astype("int8")
    label.attrs = {
        "long_name": "hand label",
        "flag_values": [-1, 0, 1],
        "flag_meanings": "invalid not_water water",
    }
    return label.rio.write_nodata(-1, encoded=False).rename("label")


@dataclass(frozen=True)
class Chip:
    """One Sen1Floods11 chip: ``s1`` always, ``s2`` and ``label`` when their files exist."""

    id: str
    s1: xr.DataArray
    label: xr.DataArray | None = None
    s2: xr.DataArray | None = None

    @property
    def event(self) -> str:
        """The chip-name prefix, e.g. ``"Mekong"`` for ``"Mekong_333434"``."""
        return self.id.rsplit("_", 1)[0]

    def stack(self, bands: tuple[str, ...]) -> xr.DataArray | None:
        """``bands`` in that order from ``s1`` and ``s2`` on one ``band`` dim; None if any lacks.

        Examples
        --------
        >>> from floodxr.data import sen1floods11 as s11
        >>> chip = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP)
        >>> chip.stack(("vv", "vh", "B02", "B08")).band.values.tolist()
        ['vv', 'vh', 'B02', 'B08']
        """
        s1_bands = [b for b in bands if b in S1_BANDS]
        s2_bands = [b for b in bands if b not in s1_bands]
        if not s2_bands:
            return self.s1.sel(band=list(bands))
        if self.s2 is None or not set(s2_bands) <= set(self.s2["band"].values.tolist()):
            return None
        image = xr.concat(
            [self.s1.sel(band=s1_bands), self.s2.sel(band=s2_bands)],
            dim="band",
            coords="minimal",
            compat="override",
            join="override",
        )
        return image.sel(band=list(bands))

    def scene(self) -> Scene:
        """The chip as a :class:`~floodxr.data.scene.Scene`: S1, plus the paper's S2 bands
        (``B02 B03 B04 B08``) when its S2 chip has them, with its label and event.

        Examples
        --------
        >>> from floodxr.data import sen1floods11 as s11
        >>> scene = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP).scene()
        >>> scene.name, scene.bands, scene.event
        ('Spain_7370579', ('vv', 'vh', 'B02', 'B03', 'B04', 'B08'), 'Spain')
        """
        image = self.stack(S1_BANDS + S2_PAPER_BANDS)
        return Scene(
            name=self.id,
            image=self.s1 if image is None else image,
            label=self.label,
            event=self.event,
        )


def _require_root(root: Path) -> None:
    if not (root / "S1Hand").is_dir():
        raise DataLayoutError(f"{str(root)!r} has no S1Hand/ folder; {_LAYOUT}")


def open_chip(root: str | Path, chip: str, *, chunks: Chunks = None) -> Chip:
    """Open the S1 chip ``chip`` under ``root``, with its label and S2 chip when present.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> chip = s11.open_chip(s11.SAMPLE_DIR, s11.SAMPLE_CHIP)
    >>> chip.event, chip.s1.shape, chip.label.shape, chip.s2.sizes["band"]
    ('Spain', (2, 512, 512), (512, 512), 13)
    """
    root = Path(root)
    _require_root(root)
    s1_path = root / "S1Hand" / f"{chip}_S1Hand.tif"
    if not s1_path.is_file():
        raise ChipNotFoundError(f"chip {chip!r} has no {str(s1_path)!r}; {_LAYOUT}")
    s2_path = root / "S2Hand" / f"{chip}_S2Hand.tif"
    label_path = root / "LabelHand" / f"{chip}_LabelHand.tif"
    s1 = open_s1(s1_path, chunks=chunks)
    return Chip(
        id=chip,
        s1=s1,
        label=(
            _on_grid(open_label(label_path, chunks=chunks), s1, label_path, s1_path)
            if label_path.is_file()
            else None
        ),
        s2=(
            _on_grid(open_s2(s2_path, chunks=chunks), s1, s2_path, s1_path)
            if s2_path.is_file()
            else None
        ),
    )


def _on_grid(
    da: xr.DataArray, reference: xr.DataArray, path: Path, reference_path: Path
) -> xr.DataArray:
    """Give ``da`` the exact coordinates of ``reference`` when both files share one grid.

    A chip's S1, S2 and label GeoTIFFs have the same grid, but their coordinates can differ in
    the last bits, which would make xarray's alignment drop rows and columns silently.
    """
    same_shape = da.sizes["y"] == reference.sizes["y"] and da.sizes["x"] == reference.sizes["x"]
    ours, theirs = np.array(transform(da))[:6], np.array(transform(reference))[:6]
    pixel = abs(theirs[0])
    if not same_shape or not np.allclose(ours, theirs, rtol=0, atol=1e-6 * pixel):
        mine, other = (", ".join(f"{v:.9g}" for v in t) for t in (ours, theirs))
        raise DataLayoutError(
            f"{str(path)!r} is not on the grid of {str(reference_path)!r} (sizes "
            f"{dict(da.sizes)} vs {dict(reference.sizes)}, transforms "
            f"({mine}) vs ({other}); a "
            "chip's S1, S2 and label files must share one grid"
        )
    return da.assign_coords(y=reference["y"], x=reference["x"])


@dataclass(frozen=True)
class Split:
    """The chips of one split list found under ``root``, and those listed but absent."""

    root: Path
    name: str
    chips: tuple[str, ...]
    missing: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.chips)

    def __iter__(self) -> Iterator[str]:
        return iter(self.chips)

    def open(self, *, chunks: Chunks = None) -> Iterator[Chip]:
        """Open the present chips one at a time (S1 + label, and S2 when present)."""
        for chip in self.chips:
            yield open_chip(self.root, chip, chunks=chunks)


def read_split(
    root: str | Path, split: SplitName | str = "test", *, split_file: str | Path | None = None
) -> Split:
    """List the chips of an official split that have both S1Hand and LabelHand under ``root``.

    Chips listed but absent are skipped and counted (``Split.missing``); a
    :class:`~floodxr.errors.MissingChipsWarning` says how many.

    Parameters
    ----------
    root : data folder (see the module docstring for its layout)
    split : ``train``, ``valid``, ``test`` or ``bolivia``; read from
        ``root/splits/flood_<split>_data.csv``
    split_file : path of a split CSV to use instead

    Examples
    --------
    >>> import warnings
    >>> from floodxr.data import sen1floods11 as s11
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     split = s11.read_split(s11.SAMPLE_DIR, "test")
    >>> split.chips, len(split.missing), caught[0].category.__name__
    (('Spain_7370579',), 89, 'MissingChipsWarning')
    """
    root = Path(root)
    _require_root(root)
    path = (
        Path(split_file) if split_file is not None else root / "splits" / f"flood_{split}_data.csv"
    )
    if not path.is_file():
        raise DataLayoutError(
            f"no split list {str(path)!r}; pass split_file=... or use split in "
            f"('train', 'valid', 'test', 'bolivia') with {_LAYOUT}"
        )
    try:
        text = path.read_bytes().decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte")
    except UnicodeDecodeError as err:
        raise DataLayoutError(
            f"{str(path)!r} is not a text split list ({err.reason}); a split list is CSV text, "
            "one '<chip>_S1Hand.tif,<chip>_LabelHand.tif' a line"
        ) from err
    listed: list[str] = []
    first_line: dict[str, int] = {}
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        if not row[0].strip().endswith("_S1Hand.tif"):
            raise DataLayoutError(
                f"{str(path)!r} line {line_no}: expected '<chip>_S1Hand.tif,"
                f"<chip>_LabelHand.tif', got {','.join(row)[:200]!r}"
            )
        chip = row[0].strip().removesuffix("_S1Hand.tif")
        if chip in first_line:
            raise DataLayoutError(
                f"{str(path)!r} lists chip {chip!r} twice (lines {first_line[chip]} and "
                f"{line_no}); a chip scored twice would count double: remove one line"
            )
        first_line[chip] = line_no
        listed.append(chip)
    present = tuple(
        chip
        for chip in listed
        if (root / "S1Hand" / f"{chip}_S1Hand.tif").is_file()
        and (root / "LabelHand" / f"{chip}_LabelHand.tif").is_file()
    )
    missing = tuple(chip for chip in listed if chip not in present)
    if missing:
        warnings.warn(
            f"{len(missing)} of {len(listed)} chips listed in {path.name} have no S1Hand + "
            f"LabelHand file under {str(root)!r} and are skipped (Split.missing lists them)",
            MissingChipsWarning,
            stacklevel=2,
        )
    return Split(root=root, name=str(split), chips=present, missing=missing)


def read_events(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read ``Sen1Floods11_Metadata.geojson`` into ``{location: properties}``.

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> events = s11.read_events(s11.SAMPLE_DIR / "Sen1Floods11_Metadata.geojson")
    >>> events["Spain"]["VH_thresh"], events["Spain"]["s1_date"]
    (-25.13, '2019/09/17')
    """
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(f"no event metadata {str(path)!r}; pass metadata=... ({_LAYOUT})")
    try:
        features = json.loads(path.read_text())["features"]
        return {f["properties"]["location"]: dict(f["properties"]) for f in features}
    except (ValueError, KeyError, TypeError) as err:
        raise DataLayoutError(
            f"{str(path)!r} is not Sen1Floods11 event metadata (a GeoJSON FeatureCollection "
            f"whose features have properties.location): {err!r}"
        ) from err


def event_of(chip: str, events: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The event properties of ``chip`` (``"Mekong_333434"`` → the ``Cambodia`` event).

    Examples
    --------
    >>> from floodxr.data import sen1floods11 as s11
    >>> events = s11.read_events(s11.SAMPLE_DIR / "Sen1Floods11_Metadata.geojson")
    >>> s11.event_of("Mekong_333434", events)["ISO_CC"]
    'KHM'
    """
    prefix = chip.rsplit("_", 1)[0]
    location = EVENT_ALIASES.get(prefix, prefix)
    if location not in events:
        raise UnknownEventError(
            f"chip {chip!r}: event {location!r} is not in the metadata, which has "
            f"{sorted(events)}; pass a metadata file that covers it"
        )
    return events[location]
