"""Run a floodxr checkpoint through ONNX Runtime: exported once per machine, then cached.

The default engine (``engine="auto"``) whenever onnxruntime is installed and the model exports
(its int8 model first when the checkpoint has one, :func:`quantize`); ``engine="onnx"`` and
``engine="onnx-int8"`` ask for one. On ``device="cuda"`` the CUDA execution provider is used when
this onnxruntime build has it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from floodxr.errors import CheckpointError, FloodxrError, FloodxrWarning, OutputExistsError
from floodxr.models import checkpoint, load
from floodxr.models.architecture import MULTIPLE
from floodxr.writers import atomic

__all__ = ["export", "load_session", "cache_dir", "usable", "quantize", "int8_path"]

_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, int, int, str, bool], OnnxModel] = {}


def cache_dir() -> Path:
    """Where exports are kept: ``$FLOODXR_CACHE`` or ``~/.cache/floodxr``.

    Examples
    --------
    >>> import os
    >>> from floodxr.models.onnx import cache_dir
    >>> os.environ["FLOODXR_CACHE"] = "/tmp/floodxr-cache"
    >>> str(cache_dir())
    '/tmp/floodxr-cache/onnx'
    >>> del os.environ["FLOODXR_CACHE"]
    """
    root = os.environ.get("FLOODXR_CACHE") or Path.home() / ".cache" / "floodxr"
    return Path(root) / "onnx"


def export(weights: str | Path, target: str | Path) -> Path:
    """Export a checkpoint to ONNX with dynamic batch, height and width (opset 17).

    Examples
    --------
    >>> import tempfile
    >>> from floodxr import models
    >>> from floodxr.models.onnx import export
    >>> config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16)
    >>> weights = models.save(config.build(), config, tempfile.mkdtemp() + "/s")
    >>> export(weights, weights.with_suffix(".onnx")).suffix
    '.onnx'
    """
    import torch

    model = load(weights)
    dummy = torch.zeros(1, len(model.config.bands), 64, 64)
    # a killed export never leaves a truncated model behind; the int8 engine re-exports a
    # model that changed, so an existing file is replaced
    with atomic(target, overwrite=True) as partial, warnings.catch_warnings():
        # the padding branch is traced for 64 px inputs; segment only feeds multiples of 16
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # the dynamo exporter needs onnxscript; the TorchScript one is exact here (< 1e-6)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.module,
            (dummy,),
            str(partial),
            dynamo=False,
            opset_version=17,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, "logits": {0: "n", 2: "h", 3: "w"}},
        )
    return Path(target)


def int8_path(weights: str | Path) -> Path:
    """Where a checkpoint's int8 model lives: ``NAME.int8.onnx`` beside ``NAME.safetensors``."""
    return checkpoint.paths(weights)[0].with_suffix(".int8.onnx")


def _sha256(path: Path) -> str:
    """The digest of a checkpoint's tensors (names, shapes, bytes), not of its metadata: the
    temperature and the recorded scores may change without re-quantising."""
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(raw[8 + size :])
    return digest.hexdigest()


def quantize(
    weights: str | Path, calibration: Iterable[np.ndarray], *, overwrite: bool = False
) -> Path:
    """Write an int8 copy of a checkpoint beside it (:func:`int8_path`); ``engine="onnx-int8"``.

    ONNX Runtime's static quantisation (QDQ, int8 weights per output channel, uint8
    activations), calibrated on ``calibration``: normalised float32 batches ``(N, bands, H, W)``
    like those the network sees (e.g. scenes of the data it will map). Weights use 7 of their 8
    bits (``reduce_range``): x86 CPUs without VNNI multiply uint8 x int8 pairs into int16, which
    saturates at full range; at 7 bits every CPU computes the same integers. The file records the
    SHA-256 of the tensors it was made from; changed weights make it refuse to load (a new
    temperature or new recorded scores do not).
    Measure the IoU it costs before using it (``examples/ship_models.py`` does for the shipped
    student).
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    path = checkpoint.paths(weights)[0].resolve()
    target = int8_path(path)
    if target.exists() and not overwrite:
        raise OutputExistsError(f"{str(target)!r} exists already; pass overwrite=True")
    batches = iter([{"image": np.ascontiguousarray(b, "float32")} for b in calibration])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    with tempfile.TemporaryDirectory() as folder:
        fp32, prepared, int8 = (Path(folder) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        export(path, fp32)
        quant_pre_process(str(fp32), str(prepared))
        quantize_static(
            str(prepared),
            str(int8),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        model = onnx.load(str(int8))
        onnx.helper.set_model_props(model, {"floodxr_weights_sha256": _sha256(path)})
        with atomic(target, overwrite=overwrite) as partial:
            onnx.save(model, str(partial))
    return target


def _int8_target(path: Path) -> Path:
    target = int8_path(path)
    if not target.is_file():
        raise CheckpointError(
            f"{str(path)!r} has no int8 model ({str(target)!r}); make one with "
            "floodxr.models.onnx.quantize(weights, calibration), or use engine='onnx'"
        )
    import onnx

    try:
        model = onnx.load(str(target), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and others: the file is not a model
        raise CheckpointError(
            f"{str(target)!r} is not a readable ONNX model ({type(err).__name__}); quantize the "
            "checkpoint again (floodxr.models.onnx.quantize(..., overwrite=True)) or use "
            "engine='onnx'"
        ) from err
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("floodxr_weights_sha256") != _sha256(path):
        raise CheckpointError(
            f"{str(target)!r} was made from other weights than {str(path)!r}; quantize the "
            "checkpoint again (floodxr.models.onnx.quantize(..., overwrite=True)) or use "
            "engine='onnx'"
        )
    return target


def _providers(ort: Any, device: str) -> list[str]:
    cuda = device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]


def _session(ort: Any, target: Path, options: Any, device: str = "cpu") -> Any:
    return ort.InferenceSession(str(target), options, providers=_providers(ort, device))


_USABLE: dict[tuple[str, int, str, bool], bool] = {}


def usable(weights: str | Path, *, device: str = "cpu", int8: bool = False) -> bool:
    """Whether ONNX Runtime can run ``weights`` here: installed, exported (once, cached), loaded;
    with ``int8``, whether its int8 model exists and loads (made from these weights).

    ``engine="auto"`` asks this; a model that does not export falls back to torch, an int8 model
    that does not load to float32, each with a :class:`~floodxr.errors.FloodxrWarning` saying why.
    """
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    path = checkpoint.paths(weights)[0].resolve()
    if int8 and not int8_path(path).is_file():
        return False
    key = (str(path), path.stat().st_mtime_ns, device, int8)
    if key not in _USABLE:
        try:
            load_session(path, threads=1, device=device, int8=int8)
            _USABLE[key] = True
        except FloodxrError as err:
            fallback = "without its int8 model" if int8 else "with torch"
            warnings.warn(
                f"engine='auto' runs {str(path)!r} {fallback}: {err}", FloodxrWarning, stacklevel=3
            )
            _USABLE[key] = False
    return _USABLE[key]


@dataclass(frozen=True, eq=False)
class OnnxModel:
    session: Any
    water_index: int
    temperature: float = 1.0

    def water_probability(self, batch: np.ndarray) -> np.ndarray:
        # the network pads its input to a multiple of 16 and crops back (DeepLabV3PlusS2.
        # forward); the exported graph was traced without that branch, so it happens here: a
        # window of another size would otherwise run unpadded, its features misaligned
        height, width = int(batch.shape[-2]), int(batch.shape[-1])
        pad_h, pad_w = -height % MULTIPLE, -width % MULTIPLE
        if pad_h or pad_w:
            widths = ((0, 0), (0, 0), (0, pad_h), (0, pad_w))
            if pad_h < height and pad_w < width:
                batch = np.pad(batch, widths, mode="reflect")
            else:
                batch = np.pad(batch, widths, mode="edge")
        logits = self.session.run(None, {"image": np.ascontiguousarray(batch, "float32")})[0]
        logits = logits[..., :height, :width] / np.float32(self.temperature)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp[:, self.water_index] / exp.sum(axis=1)).astype("float32")


def load_session(
    weights: str | Path, *, threads: int, device: str = "cpu", int8: bool = False
) -> OnnxModel:
    """An ONNX Runtime session for ``weights`` (exporting it on first use), cached per process.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from floodxr import models
    >>> from floodxr.models.onnx import load_session
    >>> os.environ["FLOODXR_CACHE"] = tempfile.mkdtemp()
    >>> config = models.STUDENT.replace(encoder="resnet18", decoder_channels=16)
    >>> weights = models.save(config.build(), config, tempfile.mkdtemp() + "/s")
    >>> session = load_session(weights, threads=1)
    >>> session.water_probability(np.zeros((1, 2, 64, 64), "float32")).shape
    (1, 64, 64)
    >>> del os.environ["FLOODXR_CACHE"]
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise FloodxrError(
            "engine='onnx' needs onnxruntime and onnx: pip install onnx onnxruntime, or use "
            "floodxr.set_options(engine='torch')"
        ) from err
    from floodxr.models import check_device

    check_device(device)
    path = checkpoint.paths(weights)[0].resolve()
    key = (str(path), path.stat().st_mtime_ns, threads, device, int8)
    with _LOCK:
        if key not in _SESSIONS:
            digest = hashlib.sha256(f"{key[0]}:{key[1]}".encode()).hexdigest()[:16]
            target = _int8_target(path) if int8 else cache_dir() / f"{path.stem}-{digest}.onnx"
            if not target.exists():
                try:
                    export(path, target)
                except Exception as err:  # the exporter raises many kinds
                    raise CheckpointError(
                        f"{str(path)!r} does not export to ONNX ({type(err).__name__}: {err}); "
                        "use floodxr.set_options(engine='torch')"
                    ) from err
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.enable_cpu_mem_arena = False  # the arena alone grows RSS by GiBs
            try:
                session = _session(ort, target, options, device)
            except Exception as err:  # onnxruntime raises its own unexported classes
                if int8:  # the user's own int8 model: never replaced by an export
                    raise CheckpointError(
                        f"ONNX Runtime cannot load the int8 model {str(target)!r} ({err}); "
                        "quantize the checkpoint again (floodxr.models.onnx.quantize(..., "
                        "overwrite=True)) or use engine='onnx'"
                    ) from err
                # a truncated or corrupted cache file (a full disk, a killed copy): export again
                warnings.warn(
                    f"the cached ONNX export {str(target)!r} cannot be loaded ({err}); "
                    "exporting it again",
                    FloodxrWarning,
                    stacklevel=2,
                )
                export(path, target)
                try:
                    session = _session(ort, target, options, device)
                except Exception as again:
                    raise CheckpointError(
                        f"ONNX Runtime cannot load the export of {str(path)!r} ({again}); use "
                        "floodxr.set_options(engine='torch'), or delete the cache "
                        f"{str(cache_dir())!r}"
                    ) from again
            config = checkpoint.read_config(path)
            _SESSIONS[key] = OnnxModel(session, config.water_index, config.temperature)
    return _SESSIONS[key]
