"""Weights round-trip through safetensors + JSON; bad files give clear errors, never unpickling."""

import json
import pickle

import pytest
import torch

from bonescreen.checkpoint import load_model, save_checkpoint
from bonescreen.errors import BoneScreenError
from bonescreen.nets import create_model


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


def test_same_weights_same_file(tmp_path):
    from bonescreen.checkpoint import file_sha256

    torch.manual_seed(0)
    model = create_model("bccnet")
    hashes = {file_sha256(save_checkpoint(tmp_path / f"w{i}.safetensors", model)) for i in range(4)}
    assert len(hashes) == 1
