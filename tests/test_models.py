"""The model contract, run over every registered architecture/encoder, and checkpoint safety."""

import json
import pickle

import numpy as np
import pytest
import torch

from floodxr import models
from floodxr.errors import (
    CheckpointError,
    ModelNotAvailableError,
    OutputExistsError,
    UnknownModelError,
)
from floodxr.models import STUDENT, TEACHER, checkpoint
from floodxr.models.context import radius

ENCODERS = ["tu-xception65", *models.LIGHT_ENCODERS]


@pytest.mark.parametrize("encoder", ENCODERS)
class TestArchitectureContract:
    """What every network floodxr can build must do."""

    @pytest.fixture
    def config(self, encoder):
        # the paper's decoder width for Xception-65; narrow decoders keep light encoders fast
        return TEACHER.replace(
            encoder=encoder, decoder_channels=256 if "xception" in encoder else 32
        )

    @pytest.mark.parametrize("size", [(64, 64), (37, 53), (50, 130)])
    def test_forward_shape_any_size(self, config, size):
        network = config.build().eval()
        with torch.inference_mode():
            logits = network(torch.rand(2, len(config.bands), *size))
        assert logits.shape == (2, 2, *size)
        assert torch.isfinite(logits).all()

    def test_save_load_gives_identical_output(self, config, tmp_path):
        torch.manual_seed(1)
        network = config.build().eval()
        batch = np.random.default_rng(0).random((1, len(config.bands), 48, 64), dtype="float32")
        with torch.inference_mode():
            expected = torch.softmax(network(torch.from_numpy(batch)), 1)[:, 1].numpy()
        path = models.save(network, config, tmp_path / "net")
        loaded = models.load(path)
        assert loaded.config == config.replace(provenance=loaded.config.provenance)
        assert loaded.config.provenance["floodxr_version"]
        np.testing.assert_array_equal(loaded.water_probability(batch), expected)

    def test_wrong_band_count_is_refused_before_loading(self, config, tmp_path):
        path = models.save(config.build(), config, tmp_path / "net")
        wrong = config.replace(bands=("vv", "vh"))
        (tmp_path / "net.json").write_text(json.dumps(wrong.to_json()))
        with pytest.raises(CheckpointError, match="does not match its configuration.*wrong shapes"):
            models.load(path)


def test_output_stride_8_and_paper_defaults():
    assert STUDENT.encoder == "tu-xception65" and STUDENT.output_stride == 16
    assert STUDENT.bands == ("vv", "vh")
    assert TEACHER.bands == ("vv", "vh", "B02", "B03", "B04", "B08")
    assert STUDENT.normalization == {"vv": (-20.0, 0.0), "vh": (-30.0, 0.0)}
    network = STUDENT.replace(encoder="resnet18", output_stride=8, decoder_channels=32).build()
    with torch.inference_mode():
        assert network.eval()(torch.rand(1, 2, 40, 40)).shape == (1, 2, 40, 40)


def test_second_skip_is_at_stride_2():
    network = STUDENT.replace(encoder="resnet18", decoder_channels=32).build().eval()
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = output.shape

        return hook

    network.skip2.register_forward_hook(record("s2"))
    network.skip4.register_forward_hook(record("s4"))
    with torch.inference_mode():
        network(torch.rand(1, 2, 64, 96))
    assert seen["s2"][-2:] == (32, 48) and seen["s4"][-2:] == (16, 24)


def test_config_validation_names_the_problem():
    with pytest.raises(CheckpointError, match="normalization has no .* for bands \\['B02'\\]"):
        STUDENT.replace(bands=("vv", "vh", "B02"))
    with pytest.raises(CheckpointError, match="output_stride must be 8 or 16"):
        STUDENT.replace(output_stride=32)
    with pytest.raises(CheckpointError, match="architecture 'unet'"):
        STUDENT.replace(architecture="unet")
    with pytest.raises(CheckpointError, match="must include 'water'"):
        STUDENT.replace(classes=("a", "b"))
    with pytest.raises(CheckpointError, match="finite"):
        STUDENT.replace(normalization={"vv": (0.0, 0.0), "vh": (-30.0, 0.0)})


def test_registry_names_and_errors(tmp_path, monkeypatch):
    assert {"student", "teacher"} <= set(models.available())
    with pytest.raises(UnknownModelError, match=r"unknown model 'studnet'.*'student'"):
        models.load("studnet")
    # a registered name whose weights are not on this machine (e.g. deleted from the install)
    monkeypatch.setitem(models._REGISTRY, "ghost", tmp_path / "ghost.safetensors")
    with pytest.raises(ModelNotAvailableError, match="'ghost' has no weights.*train one"):
        models.load("ghost")
    config = STUDENT.replace(encoder="resnet18", decoder_channels=32)
    path = models.save(config.build(), config, tmp_path / "mine")
    models.register("mine-test", path)
    assert models.load("mine-test").config.encoder == "resnet18"
    with pytest.raises(OutputExistsError):
        models.save(config.build(), config, tmp_path / "mine")


def test_corrupt_and_incomplete_checkpoints(tmp_path):
    config = STUDENT.replace(encoder="resnet18", decoder_channels=32)
    path = models.save(config.build(), config, tmp_path / "net")
    (tmp_path / "net.json").unlink()
    with pytest.raises(CheckpointError, match="net.json' is missing"):
        models.load(path)
    (tmp_path / "net.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        models.load(path)
    (tmp_path / "net.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(CheckpointError, match="is not 'floodxr-checkpoint/1'"):
        models.load(path)
    (tmp_path / "net.json").write_text(json.dumps({"format": checkpoint.FORMAT, "bands": ["vv"]}))
    with pytest.raises(CheckpointError, match="incomplete or malformed"):
        models.load(path)
    (tmp_path / "net.json").write_text(json.dumps(config.to_json()))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        models.load(path)


class _Exploit:
    def __reduce__(self):
        return (open, ("/tmp/floodxr-unpickled-marker", "w"))


def test_loading_never_unpickles(tmp_path):
    marker = "/tmp/floodxr-unpickled-marker"
    import os

    if os.path.exists(marker):
        os.remove(marker)
    config = STUDENT.replace(encoder="resnet18", decoder_channels=32)
    checkpoint.paths(tmp_path / "evil")[1].write_text(json.dumps(config.to_json()))
    (tmp_path / "evil.safetensors").write_bytes(pickle.dumps({"w": _Exploit()}))
    with pytest.raises(CheckpointError):
        models.load(tmp_path / "evil.safetensors")
    assert not os.path.exists(marker)


def test_load_cache_is_per_thread(tiny_student):
    import threading

    first = models.load(tiny_student)
    assert models.load(tiny_student) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(models.load(tiny_student)))
    thread.start()
    thread.join()
    assert other[0] is not first and other[0].config == first.config


@pytest.mark.parametrize(
    "architecture, reach",
    # ASPP at stride 8 with rates up to 3 and a 5-cell pooling; rates up to 8 and a 9-cell one
    [("deeplabv3plus-s2-compact", (48, 72)), ("deeplabv3plus-s2-compact-context", (96, 112))],
)
def test_the_compact_architectures_see_a_thin_neighbourhood(architecture, reach):
    config = STUDENT.replace(
        encoder="tu-mobilenetv2_075",
        architecture=architecture,
        output_stride=8,
        decoder_channels=16,
    )
    first, last = _reach(config, 320)
    # against ~460 px for the "local" head, and it does use its context
    assert reach[0] <= max(160 - first, last - 160) <= reach[1]
    assert reach[0] <= radius(config) <= reach[1]  # what the checkpoint's "context" records
    with pytest.raises(CheckpointError, match="output stride 8"):
        config.replace(output_stride=16)


def test_a_shallow_encoder_keeps_only_the_blocks_it_uses():
    from segmentation_models_pytorch.encoders import get_encoder

    config = STUDENT.replace(
        encoder="tu-mobilenetv2_075",
        architecture="deeplabv3plus-s2-compact",
        output_stride=8,
        decoder_channels=16,
    )
    network = config.build().eval()
    # timm builds all seven blocks and runs them; three make the stride-8 features
    full = get_encoder(
        "tu-mobilenetv2_075", in_channels=2, depth=3, weights=None, output_stride=8
    ).eval()
    assert len(network.encoder.model.blocks) == 3 < len(full.model.blocks) == 7
    ours = sum(p.numel() for p in network.encoder.parameters())
    assert ours < 0.1 * sum(p.numel() for p in full.parameters())
    missing, _ = full.load_state_dict(network.encoder.state_dict(), strict=False)
    assert all(".blocks." in key and int(key.split(".blocks.")[1][0]) >= 3 for key in missing)
    image = torch.rand(1, 2, 96, 96)
    with torch.no_grad():  # the same features: nothing used was dropped
        for a, b in zip(network.encoder(image), full(image), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _reach(config, size):
    """Rows of the input that the centre output pixel depends on (nonzero gradient)."""
    torch.manual_seed(0)
    network = config.build().eval()
    image = torch.rand(1, len(config.bands), size, size, requires_grad=True)
    network(image)[0, 1, size // 2, size // 2].backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero()
    return int(rows.min()), int(rows.max())


def test_local_pooling_bounds_what_an_output_pixel_sees():
    # exact zeros of a gradient are structure, not float noise: the verdict is machine-free
    shipped = models.read_config(models.resolve("teacher"))
    assert shipped.architecture == "deeplabv3plus-s2-local"
    config = STUDENT.replace(
        encoder=shipped.encoder, architecture=shipped.architecture, decoder_channels=16
    )
    first, last = _reach(config, 1280)
    assert first > 0 and last < 1279  # bounded: far pixels never reach the centre
    paper = config.replace(architecture="deeplabv3plus-s2")  # ASPP's global image pooling
    assert _reach(paper, 1280) == (0, 1279)
    # an encoder with squeeze-and-excitation (a global average in every block) is unbounded
    # even with local ASPP pooling: the shipped encoder must have none
    assert _reach(config.replace(encoder="tu-mobilenetv3_large_075"), 1280) == (0, 1279)
