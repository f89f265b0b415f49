"""Short CPU training runs on tiny synthetic tasks lower the loss and beat chance; runs repeat and resume."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from bonescreen.checkpoint import load_model
from bonescreen.train import TrainConfig, evaluate_model, train


class Discs(Dataset):
    """64x64 noisy images with one bright disc; the mark image is the disc."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:64, :64]
        self.x, self.y = [], []
        for _ in range(n):
            cy, cx, r = rng.uniform(18, 46), rng.uniform(18, 46), rng.uniform(6, 14)
            m = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.float32)
            img = 0.3 + 0.4 * m + rng.normal(0, 0.1, m.shape)
            self.x.append(torch.from_numpy(img[None].astype(np.float32)))
            self.y.append(torch.from_numpy(m[None]))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Textures(Dataset):
    """224x224 crops of three textures: horizontal stripes, vertical stripes, blobs."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng_seed = seed
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(self.rng_seed * 100003 + i)
        label = i % 3
        yy, xx = np.mgrid[:224, :224].astype(np.float32)
        period = rng.uniform(10, 16)
        phase = rng.uniform(0, 2 * np.pi)
        if label == 0:
            img = np.sin(2 * np.pi * yy / period + phase)
        elif label == 1:
            img = np.sin(2 * np.pi * xx / period + phase)
        else:
            img = np.sin(2 * np.pi * yy / period + phase) * np.sin(2 * np.pi * xx / period)
        img = img + rng.normal(0, 0.3, img.shape)
        return torch.from_numpy(img[None].astype(np.float32)), label


def run(config, data, out, val=None, **kw):
    events = list(train(config, data, out, val_set=val, **kw))
    return events


def test_msnet_learns_discs(tmp_path):
    cfg = TrainConfig("msnet", {"width": 0.125, "depth": 5}, epochs=6, batch_size=8, seed=1, device="cpu")
    events = run(cfg, Discs(96, 0), tmp_path / "seg", Discs(16, 99))
    epochs = [e for e in events if e.kind == "epoch"]
    assert epochs[-1].metrics["train_loss"] < 0.5 * epochs[0].metrics["train_loss"]
    # chance: marking everything foreground gives Dice ~ 2p/(1+p) with p ~ 0.1
    assert epochs[-1].metrics["val_dice"] > 0.8
    assert events[-1].kind == "done"
    model, meta = load_model(tmp_path / "seg")
    assert meta["task"] == "segmentation" and meta["epoch"] == 5
    assert meta["training"]["optimizer"] == "Adam"
    assert evaluate_model("segmentation", model, Discs(16, 99), torch.device("cpu"))["val_dice"] > 0.8


def test_bccnet_learns_textures(tmp_path):
    cfg = TrainConfig("bccnet", epochs=8, batch_size=16, seed=0, device="cpu")
    events = run(cfg, Textures(144, 0), tmp_path / "cls", Textures(60, 7))
    steps = [e for e in events if e.kind == "step"]
    assert np.mean([e.loss for e in steps[-6:]]) < np.mean([e.loss for e in steps[:6]])
    assert [e for e in events if e.kind == "epoch"][-1].metrics["val_accuracy"] > 0.8  # chance is 1/3
    assert steps[0].lr == 0.01 and abs(steps[10].lr - 0.01 * (1 + 0.006 * 10) ** -0.98) < 1e-12


def test_seed_repeats_and_resume_continues(tmp_path):
    cfg = TrainConfig(
        "bccnet", {"block_config": (1, 1), "input_size": 224}, epochs=2, batch_size=8, seed=3, device="cpu"
    )
    data = Textures(24, 1)
    a = [e.loss for e in run(cfg, data, tmp_path / "a") if e.kind == "step"]
    b = [e.loss for e in run(cfg, data, tmp_path / "b") if e.kind == "step"]
    assert a == b
    # stop after the first epoch, then resume: same losses as the uninterrupted run
    gen = train(cfg, data, tmp_path / "c")
    first = []
    for e in gen:
        if e.kind == "step":
            first.append(e.loss)
        if e.kind == "epoch":
            break
    gen.close()
    rest = [e.loss for e in train(cfg, data, tmp_path / "c", resume=True) if e.kind == "step"]
    np.testing.assert_allclose(first + rest, a, rtol=1e-5)


def test_batchnorm_recalibration_removes_dropout_variance_shift():
    from bonescreen.nets import create_model
    from bonescreen.train.loop import recalibrate_batchnorm

    torch.manual_seed(0)
    model = create_model("bccnet")
    x = torch.randn(8, 1, 224, 224)
    model.train()
    with torch.no_grad():
        for _ in range(30):  # running statistics gathered with dropout on, as in training
            model(x)

    def reference() -> torch.Tensor:  # batch statistics, dropout off: what the statistics should describe
        model.eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train()
        with torch.no_grad():
            out = model(x)
        model.eval()
        return out

    model.eval()
    with torch.no_grad():
        before = model(x)
    ref = reference()
    assert (before - ref).abs().max() > 0.05
    recalibrate_batchnorm(model, [(x, None)] * 3, torch.device("cpu"))
    with torch.no_grad():
        after = model(x)
    # running variance is unbiased, batch normalization uses the biased one: equal up to that factor
    torch.testing.assert_close(after, reference(), atol=1e-2, rtol=1e-2)


def test_segmentation_loss_and_dice_leave_out_the_ignored_pixels():
    """Pixels marked MARK_IGNORE count neither in MS-Net's L1 loss nor in its validation Dice: a mark wrong
    only there scores a loss of 0 and a Dice of 1, and one wrong elsewhere does not."""
    from bonescreen.preprocess import MARK_IGNORE
    from bonescreen.train.loop import _loss

    y = torch.zeros(1, 1, 8, 8)
    y[..., 2:6, 2:6] = 1.0
    y[..., 0, :] = MARK_IGNORE
    out = (y == 1).float()
    out[..., 0, :4] = 1.0  # "vertebra" on ignored pixels
    identity = torch.nn.Identity()
    assert float(_loss("segmentation", identity, out, y)) == 0.0
    wrong = out.clone()
    wrong[..., 7, 7] = 1.0
    assert float(_loss("segmentation", identity, wrong, y)) == pytest.approx(1.0 / 56)  # 64 pixels less 8 ignored

    class Pairs(Dataset):
        def __init__(self, pred):
            self.pred = pred

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return self.pred[0], y[0]

    assert evaluate_model("segmentation", identity, Pairs(out), torch.device("cpu"))["val_dice"] == 1.0
    assert evaluate_model("segmentation", identity, Pairs(wrong), torch.device("cpu"))["val_dice"] < 1.0
