"""``floodxr demo``: map the water of the bundled real Sentinel-1 chip and score it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from floodxr.data import sen1floods11
from floodxr.errors import OutputExistsError, OutputPathError
from floodxr.metrics import confusion, water_area_km2
from floodxr.plot import side_by_side
from floodxr.segment import segment
from floodxr.threshold import otsu
from floodxr.writers import atomic, output_folder

__all__ = ["DemoResult", "run"]


@dataclass(frozen=True)
class DemoResult:
    chip: str
    method: str
    geotiff: Path
    png: Path
    water_km2: float
    label_water_km2: float
    iou: float
    otsu_iou: float


def run(out_dir: str | Path = "floodxr-demo", *, overwrite: bool = False) -> DemoResult:
    """Segment the bundled chip, write ``flood_map.tif`` and ``flood_map.png``, score it.

    The method is floodxr's shipped distilled student (``model="student"``, see
    ``docs/model-card.md``); the IoU of global Otsu on VH is reported beside it. Existing outputs
    are never replaced unless ``overwrite=True``.

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import demo
    >>> result = demo.run(tempfile.mkdtemp())
    >>> result.chip, result.geotiff.name, result.method, 0 < result.iou <= 1
    ('Spain_7370579', 'flood_map.tif', 'student (student.safetensors)', True)
    """
    out = output_folder(out_dir)
    geotiff, png = out / "flood_map.tif", out / "flood_map.png"
    existing = [str(p) for p in (geotiff, png) if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{existing} exist already; pass overwrite=True (floodxr demo --overwrite) or "
            "choose another output folder"
        )
    folders = [str(p) for p in (geotiff, png) if p.is_dir()]
    if folders:
        raise OutputPathError(
            f"{folders} are folders where the demo writes files; move them or "
            "choose another output folder"
        )
    chip = sen1floods11.open_chip(sen1floods11.SAMPLE_DIR, sen1floods11.SAMPLE_CHIP)
    assert chip.label is not None  # the bundled chip ships its label
    mask = segment(chip.s1, model="student", output="mask")
    with atomic(geotiff, overwrite=overwrite) as partial:
        mask.rio.to_raster(partial, compress="deflate", tiled=True)
    method = f"{mask.attrs['floodxr_model']} ({Path(mask.attrs['floodxr_checkpoint']).name})"
    score = confusion(mask, chip.label)
    fig = side_by_side(
        chip.s1,
        mask,
        label=chip.label,
        band="vh",
        title=f"{chip.id}: {method}, water IoU {score.iou:.3f}",
    )
    with atomic(png, overwrite=overwrite) as partial:
        fig.savefig(partial, dpi=90)
    return DemoResult(
        chip=chip.id,
        method=method,
        geotiff=geotiff,
        png=png,
        water_km2=float(water_area_km2(mask)),
        label_water_km2=float(water_area_km2(chip.label)),
        iou=score.iou,
        otsu_iou=confusion(otsu(chip.s1, band="vh"), chip.label).iou,
    )
