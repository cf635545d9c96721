"""How far a network looks: the input neighbourhood an output pixel depends on, and its grid.

A network whose output at a pixel depends only on the input within ``radius`` px can be run over
a scene in any windows that carry ``radius`` px of context and start on its grid (multiples of
:func:`alignment` px from the scene's top-left pixel): every output pixel is then computed from
exactly the same input values, whatever the windows. :func:`radius` measures it once per
architecture, from the exact zeros of the gradient of a centre output pixel with respect to the
input (structure, not float noise), on a freshly initialised copy of the network.
"""

from __future__ import annotations

import functools

import torch

from floodxr.models.checkpoint import ModelConfig

__all__ = ["radius", "alignment"]

#: The largest probe, in px: a network that still reaches its border is treated as unbounded
#: (window-free inference pays off only for a context far smaller than a window anyway).
_LARGEST = 512


def alignment(config: ModelConfig) -> int:
    """Px between the start positions that give the same features: the deepest stride used.

    Examples
    --------
    >>> from floodxr import models
    >>> from floodxr.models.context import alignment
    >>> alignment(models.STUDENT.replace(architecture="deeplabv3plus-s2-compact", output_stride=8))
    8
    >>> alignment(models.STUDENT)
    16
    """
    return config.output_stride


def radius(config: ModelConfig) -> int | None:
    """Px of input on each side that an output pixel depends on; ``None`` if unbounded.

    Global pooling (the paper's ASPP image pooling, squeeze-and-excitation blocks) makes every
    output pixel depend on the whole window: ``None``; so does a context wider than 255 px (the
    ``"local"`` head's ~460 px: not worth a halo). Measured once per architecture and cached;
    :func:`floodxr.models.save` records it in the checkpoint as ``context``.

    Examples
    --------
    >>> from floodxr import models
    >>> from floodxr.models.context import radius
    >>> compact = models.STUDENT.replace(encoder="tu-mobilenetv2_050", output_stride=8,
    ...                                  architecture="deeplabv3plus-s2-compact")
    >>> radius(compact)
    69
    >>> radius(models.STUDENT.replace(encoder="resnet18")) is None  # the paper's head
    True
    """
    return _measured(
        config.architecture,
        config.encoder,
        config.output_stride,
        config.decoder_channels,
        len(config.bands),
        len(config.classes),
    )


@functools.lru_cache(maxsize=32)
def _measured(
    architecture: str,
    encoder: str,
    output_stride: int,
    decoder_channels: int,
    bands: int,
    classes: int,
) -> int | None:
    from floodxr.models.checkpoint import ARCHITECTURES

    if architecture == "deeplabv3plus-s2":
        return None  # global image pooling, by construction
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = ARCHITECTURES[architecture](
            encoder,
            in_channels=bands,
            classes=classes,
            output_stride=output_stride,
            decoder_channels=decoder_channels,
        ).eval()
        size = 256
        while size <= _LARGEST:
            reach = _reach(network, bands, size)
            if reach is not None:
                return reach
            size *= 2
    return None


def _reach(network: torch.nn.Module, bands: int, size: int) -> int | None:
    """Largest distance from the centre pixel of a ``size`` px input that its output depends on,
    or None when that reaches the input's border (the probe was too small, or it is global)."""
    image = torch.rand(1, bands, size, size, requires_grad=True)
    centre = size // 2
    network(image)[0, :, centre, centre].sum().backward()
    assert image.grad is not None
    used = image.grad.abs().sum(dim=(0, 1)) > 0
    rows = used.any(dim=1).nonzero().flatten()
    cols = used.any(dim=0).nonzero().flatten()
    first, last = int(min(rows.min(), cols.min())), int(max(rows.max(), cols.max()))
    if first == 0 or last == size - 1:
        return None
    return max(centre - first, last - centre)
