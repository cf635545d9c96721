"""DeepLab v3+ with decoder skips at stride 4 *and* stride 2, as in the paper (appendix B).

smp's ``DeepLabV3Plus`` fuses one skip (stride 4) and upsamples x4 to the input. The paper's model
(the TensorFlow DeepLab reference with ``decoder_output_stride = [4, 2]``) fuses a second skip at
stride 2 before the final x2 upsampling, which sharpens water edges. This module reuses smp's
encoders and its ASPP block and adds that second fusion stage:

    encoder (output stride 16 or 8) -> ASPP -> x4 up -> concat(1x1 conv of stride-4 features)
    -> separable 3x3 -> x2 up -> concat(1x1 conv of stride-2 features) -> separable 3x3
    -> 1x1 classifier -> x2 up to the input size

``pooling`` picks ASPP's image-level branch. ``"global"`` is the paper's: an average over the whole
input, so every output pixel depends on the window the network is run in, however far away.
``"local"`` replaces it with a fixed average over ``LOCAL_POOL`` x ``LOCAL_POOL`` encoder cells
(stride-1, edges averaged over the cells that exist): the output then depends only on a bounded
neighbourhood (the receptive field), and a scene can be cut into any windows that overlap by
more than that. The paper configuration keeps ``"global"``.

:data:`COMPACT` is the same design cut down for fast, window-free inference (issue 15): the
encoder stops at stride 8 (``encoder_depth=3``), ASPP's atrous rates are 1, 2 and 3 with a 5 x 5
local pooling, there is no refining convolution after ASPP and the decoder is narrow (64 ASPP
channels, skips of 32 and 16). An output pixel then depends on the input within about 70 px
instead of about 460, so chunks need only a thin halo. :data:`COMPACT_CONTEXT` widens its ASPP
(rates 1, 4 and 8, a 9 x 9 pooling): about 110 px of context for the same weights (issue 23).

Inputs of any height and width are padded (reflect) to a multiple of 16 and cropped back.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPP, SeparableConv2d
from segmentation_models_pytorch.encoders import get_encoder
from torch import nn

from floodxr.errors import UnknownEncoderError

__all__ = [
    "DeepLabV3PlusS2",
    "MULTIPLE",
    "LOCAL_POOL",
    "POOLINGS",
    "COMPACT",
    "COMPACT_CONTEXT",
    "check_encoder",
]

#: Height and width the encoder needs to be a multiple of (its deepest stride at OS16).
MULTIPLE = 16
#: Side, in encoder cells, of the ``"local"`` image-pooling average (112 px at output stride 16).
LOCAL_POOL = 7
#: ASPP image-pooling branches: the paper's global average, or a fixed local one.
POOLINGS = ("global", "local")
#: The compact variant's settings (see the module docstring); its output stride is 8.
COMPACT: dict[str, Any] = {
    "pooling": "local",
    "encoder_depth": 3,
    "rates": (1, 2, 3),
    "pool_size": 5,
    "aspp_channels": 64,
    "skip_channels": (32, 16),
    "refine": False,
}
#: The compact variant with about twice its context (issue 23): ASPP's atrous rates 1, 4 and 8
#: and a 9 x 9 local pooling at output stride 8, so an output pixel sees its surroundings' water
#: and land when it judges how dark is dark; the same weights and nearly the same cost.
COMPACT_CONTEXT: dict[str, Any] = {**COMPACT, "rates": (1, 4, 8), "pool_size": 9}


@functools.lru_cache(maxsize=64)
def check_encoder(name: str) -> str:
    """``name`` if smp (or timm, with the ``tu-`` prefix) has that encoder, else a named error.

    Examples
    --------
    >>> from floodxr.models.architecture import check_encoder
    >>> check_encoder("resnet18")
    'resnet18'
    >>> check_encoder("resnet19")
    Traceback (most recent call last):
    ...
    floodxr.errors.UnknownEncoderError: unknown encoder 'resnet19'; did you mean ...
    """
    from segmentation_models_pytorch.encoders import get_encoder_names

    if not isinstance(name, str):
        raise UnknownEncoderError(f"the encoder must be a name (str), got {name!r}")
    smp_names = sorted(get_encoder_names())
    if name in smp_names:
        return name
    if name.startswith("tu-"):
        import timm

        if timm.is_model(name[3:]):
            return name
        close = difflib.get_close_matches(name[3:], timm.list_models(), n=5)
        hint = [f"tu-{c}" for c in close]
    else:
        hint = difflib.get_close_matches(name, smp_names, n=5)
    raise UnknownEncoderError(
        f"unknown encoder {name!r}; did you mean {hint or 'one of the light ones'}? Light "
        f"encoders that work here: {list(LIGHT)}; the paper's: 'tu-xception65'; smp knows "
        f"{smp_names}, and any timm model as 'tu-<name>' (timm.list_models())"
    )


#: Encoders measured to work with DeepLab v3+ at output stride 16 and 8 on a CPU.
LIGHT = ("tu-mobilenetv3_large_100", "tu-mobilenetv3_large_075", "resnet18", "efficientnet-b0")


class _LocalPooling(nn.Sequential):
    """ASPP's image pooling with a fixed ``size`` x ``size`` average instead of a global one."""

    def __init__(self, in_channels: int, out_channels: int, size: int = LOCAL_POOL) -> None:
        super().__init__(
            nn.AvgPool2d(size, stride=1, padding=size // 2, count_include_pad=False),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


def _conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


def _drop_unused_blocks(encoder: nn.Module) -> None:
    """Drop the blocks a shallow timm EfficientNet-family encoder would run for nothing.

    timm's ``EfficientNetFeatures`` (MobileNet v2/v3, EfficientNet) runs every block whatever
    features are asked for: with ``encoder_depth=3`` a MobileNetV2 would compute its four deepest
    stages (93 % of its weights, dilated at stride 8) and throw them away. Their output is never
    used, so dropping them changes no result."""
    model: Any = getattr(encoder, "model", None)
    stages = getattr(model, "_stage_out_idx", None)
    blocks = getattr(model, "blocks", None)
    if stages and getattr(model, "feature_hooks", 0) is None and isinstance(blocks, nn.Sequential):
        model.blocks = blocks[: max(stages)]  # block i ends stage i + 1


class DeepLabV3PlusS2(nn.Module):
    """DeepLab v3+ with skips at strides 4 and 2; returns class logits ``(N, classes, H, W)``.

    Parameters
    ----------
    encoder : an smp / timm encoder name that supports dilation (``tu-xception65``,
        ``tu-mobilenetv3_large_100``, ``resnet18``, ``efficientnet-b0`` ...)
    in_channels : input bands
    classes : output classes (2: not water, water)
    output_stride : 16 or 8
    pooling : ``"global"`` (the paper's ASPP image pooling) or ``"local"`` (bounded context)
    encoder_depth : encoder stages used (5: to stride 32, dilated to ``output_stride``; 3: to
        stride 8)
    rates : ASPP's three atrous rates (default: the paper's for the output stride)
    pool_size : side of the ``"local"`` pooling, in encoder cells
    skip_channels : widths of the stride-4 and stride-2 skip projections
    refine : the separable 3 x 3 convolution after ASPP (the paper's)
    """

    def __init__(
        self,
        encoder: str = "tu-xception65",
        *,
        in_channels: int = 2,
        classes: int = 2,
        output_stride: int = 16,
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        pooling: str = "global",
        encoder_depth: int = 5,
        rates: tuple[int, int, int] | None = None,
        pool_size: int = LOCAL_POOL,
        skip_channels: tuple[int, int] = (48, 32),
        refine: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if rates is None:
            rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        self.encoder = get_encoder(
            encoder,
            in_channels=in_channels,
            depth=encoder_depth,
            weights=None,
            output_stride=output_stride,
        )
        _drop_unused_blocks(self.encoder)
        channels = self.encoder.out_channels
        aspp = ASPP(channels[-1], aspp_channels, rates, separable=True, dropout=0.5)
        if pooling == "local":
            aspp.convs[-1] = _LocalPooling(channels[-1], aspp_channels, size=pool_size)
        self.aspp = (
            nn.Sequential(
                aspp,
                _conv_bn_relu(
                    SeparableConv2d(aspp_channels, aspp_channels, 3, padding=1, bias=False),
                    aspp_channels,
                ),
            )
            if refine
            else nn.Sequential(aspp)
        )
        skip4, skip2 = skip_channels
        self.skip4 = _conv_bn_relu(nn.Conv2d(channels[2], skip4, 1, bias=False), skip4)
        self.fuse4 = _conv_bn_relu(
            SeparableConv2d(aspp_channels + skip4, decoder_channels, 3, padding=1, bias=False),
            decoder_channels,
        )
        self.skip2 = _conv_bn_relu(nn.Conv2d(channels[1], skip2, 1, bias=False), skip2)
        self.fuse2 = _conv_bn_relu(
            SeparableConv2d(decoder_channels + skip2, decoder_channels, 3, padding=1, bias=False),
            decoder_channels,
        )
        self.classifier = nn.Conv2d(decoder_channels, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        features = self.encoder(x)
        y = self.aspp(features[-1])
        y = F.interpolate(y, size=features[2].shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse4(torch.cat([y, self.skip4(features[2])], dim=1))
        y = F.interpolate(y, size=features[1].shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse2(torch.cat([y, self.skip2(features[1])], dim=1))
        y = F.interpolate(
            self.classifier(y), size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        return y[..., :height, :width]
