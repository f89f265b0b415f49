"""Weights round-trip through safetensors + JSON; bad files give clear errors, never unpickling."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bonescreen.checkpoint import load_model, save_checkpoint
from bonescreen.errors import BoneScreenError
from bonescreen.nets import create_model
from bonescreen.weights import default_weights


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("bccnet").eval()
    save_checkpoint(tmp_path / "w", model, {"input_size": 224, "metrics": {"val_accuracy": 0.5}})
    return model, tmp_path / "w"


def test_round_trip_same_outputs(saved):
    model, path = saved
    loaded, meta = load_model(path)
    x = torch.randn(3, 1, 224, 224)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert meta["model"] == "bccnet" and meta["input_size"] == 224 and len(meta["sha256"]) == 64
    assert (path / "model.safetensors").is_file() and (path / "model.json").is_file()
    assert not list(path.glob(".*tmp*"))  # temporary files moved into place


def test_file_form(tmp_path):
    model = create_model("msnet", width=0.125).eval()
    save_checkpoint(tmp_path / "seg.safetensors", model)
    loaded, meta = load_model(tmp_path / "seg.safetensors")
    assert meta["config"]["width"] == 0.125
    x = torch.randn(1, 1, 512, 512)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_truncated_file(saved):
    _, path = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BoneScreenError, match=r"model.safetensors.*safetensors"):
        load_model(path)


def test_pickle_is_refused_not_unpickled(tmp_path, saved):
    _, path = saved

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    (path / "model.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(BoneScreenError, match="not a readable safetensors"):
        load_model(path)


def test_foreign_config_and_mismatch(saved):
    _, path = saved
    meta = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(BoneScreenError, match="not a BoneScreen weights config"):
        load_model(path)
    (path / "model.json").write_text(
        json.dumps({**meta, "model": "densenet-2", "config": {"block_config": [2, 4, 6, 4]}})
    )
    with pytest.raises(BoneScreenError, match="do not fit densenet-2"):
        load_model(path)
    (path / "model.json").write_text("{not json")
    with pytest.raises(BoneScreenError, match="not valid JSON"):
        load_model(path)


def test_missing_files(tmp_path):
    with pytest.raises(BoneScreenError, match="not found"):
        load_model(tmp_path / "nothing")


def test_atomic_files_get_normal_permissions(tmp_path):
    import os

    from bonescreen.atomic import write_text_atomic

    write_text_atomic(tmp_path / "a.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_write_that_fails_without_a_file_name_is_named_by_the_file_asked_for(tmp_path):
    """A full disk fails a write with ENOSPC and no file name (the CLI said "no space left on device" and no file);
    the error names the file the user asked for, not the temporary one, and nothing is left behind. The failing write
    is made here as a full disk makes it (no small disk can be mounted in the tests)."""
    import errno

    from bonescreen.atomic import atomic_path

    target = tmp_path / "metrics.json"
    with pytest.raises(OSError) as failed, atomic_path(target) as tmp:
        tmp.write_text("{")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_same_weights_same_file(tmp_path):
    from bonescreen.checkpoint import file_sha256

    torch.manual_seed(0)
    model = create_model("bccnet")
    hashes = {file_sha256(save_checkpoint(tmp_path / f"w{i}.safetensors", model)) for i in range(4)}
    assert len(hashes) == 1


LEGACY_OUTPUTS = Path(__file__).parent / "data" / "legacy_outputs.npz"


def test_format1_bundled_weights_give_the_outputs_they_gave_before_the_rename():
    """The bundled MS-Net is format 1 (layers named by position, ``down.1.1.weight``); the bundled BCC-Net
    was retrained on 2026-12-01 and is format 2 (named layers): format-1 BCC-Net files are covered by
    :func:`test_format1_checkpoint_of_any_configuration_loads_with_identical_outputs`.

    tests/ml/data/legacy_outputs.npz holds their outputs computed with the positional networks
    before the layers were named (made by the same seeded input on an AVX2 CPU, where the renamed
    networks reproduce them bit for bit); other CPUs may differ in the last float32 bits.
    """
    ref = np.load(LEGACY_OUTPUTS)
    rng = np.random.default_rng(17)
    x_seg = torch.from_numpy(rng.standard_normal((1, 1, 512, 512), dtype=np.float32))
    x_cls = torch.from_numpy(rng.standard_normal((2, 1, 224, 224), dtype=np.float32))
    seg, seg_meta = load_model(default_weights("segmentation"))
    cls, cls_meta = load_model(default_weights("classification"))
    assert seg_meta["format_version"] == 1 and cls_meta["format_version"] == 2
    assert "encoder.down2.norm.weight" in seg.state_dict()
    assert "features.denseblock1.denselayer1.layers.conv1.weight" in cls.state_dict()
    with torch.inference_mode():
        np.testing.assert_allclose(seg.forward_logits(x_seg)[0, 0, ::4, ::4], ref["segmentation"], rtol=1e-4, atol=1e-3)
        assert cls(x_cls).shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("msnet", {"width": 0.0625, "norm": "batch"}),
        ("msnet", {"width": 0.0625, "norm": "instance", "in_channels": 3}),
        ("msnet", {"width": 0.0625, "norm": "none", "depth": 5}),
        ("bccnet", {}),
        ("densenet-2", {}),
    ],
)
def test_format1_checkpoint_of_any_configuration_loads_with_identical_outputs(tmp_path, name, kwargs):
    """A format-1 file written for each kind of network (every tensor under its positional name)."""
    torch.manual_seed(1)
    model = create_model(name, **kwargs).eval()
    for m in model.modules():  # running statistics that are not the defaults, so a misplaced buffer shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    old_name = {new: old for old, new in model.legacy_names().items()}
    legacy = {}
    for key, value in model.state_dict().items():
        module, _, leaf = key.rpartition(".")
        legacy[f"{old_name.get(module, module)}.{leaf}"] = value.contiguous()
    assert not any(k.startswith(("encoder.", "decoder.")) or ".denseblock" in k for k in legacy)
    save_file(legacy, str(tmp_path / "model.safetensors"))
    doc = {"format": "bonescreen-weights", "format_version": 1, "model": name, "config": model.config()}
    (tmp_path / "model.json").write_text(json.dumps(doc))
    loaded, _ = load_model(tmp_path)
    size = 224 if name != "msnet" else 512 // 2 ** (9 - model.depth)
    x = torch.randn(2, model.config().get("in_channels", 1), size, size)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_new_checkpoints_are_format2_with_named_layers(saved):
    _, path = saved
    doc = json.loads((path / "model.json").read_text())
    assert doc["format_version"] == 2
    assert "features.transition1.conv.weight" in load_file(str(path / "model.safetensors"))
