"""Shapes, sizes and input checks of MS-Net and the DenseNet family."""

import pytest
import torch

from bonescreen.errors import BoneScreenError
from bonescreen.nets import BCCNet, DenseNet, MSNet, create_model, model_names


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_msnet_paper_size_and_shape():
    model = create_model("msnet").eval()
    assert 66e6 <= n_params(model) <= 68e6
    assert len(model.encoder) == 9 and len(model.decoder) == 8  # 9 encoder convs, 8 decoder + head
    assert list(model.encoder)[:2] == ["down1", "down2"] and list(model.decoder)[-1] == "up1"
    assert model.channels == (64, 128, 256, 512, 512, 512, 512, 512, 512)
    with torch.inference_mode():
        y = model(torch.randn(1, 1, 512, 512))
    assert y.shape == (1, 1, 512, 512)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_msnet_width_variant_keeps_depth():
    small = create_model("msnet-small")
    assert small.depth == 9 and n_params(small) < n_params(create_model("msnet")) / 10
    half = create_model("msnet", width=0.5)
    assert half.channels[0] == 32 and half.channels[-1] == 256


@pytest.mark.parametrize("shape", [(1, 1, 500, 512), (1, 1, 256, 256), (1, 3, 512, 512), (1, 512, 512)])
def test_msnet_rejects_wrong_input(shape):
    model = MSNet(width=0.125)
    with pytest.raises(BoneScreenError, match="multiples of 512"):
        model(torch.randn(*shape))


def test_bccnet_probabilities():
    model = create_model("bccnet").eval()
    with torch.inference_mode():
        p = model.predict_proba(torch.randn(2, 1, 224, 224))
    assert p.shape == (2, 3)
    assert torch.allclose(p.sum(1), torch.ones(2), atol=1e-6)
    assert isinstance(model, BCCNet)
    assert model.config()["block_config"] == [1, 2, 4, 2] and model.config()["growth_rate"] == 12


def test_bccnet_layout_follows_table1():
    model = create_model("bccnet")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    # stem + 2 convs per bottleneck layer (9 layers) + 3 transitions
    assert len(convs) == 1 + 2 * 9 + 3
    assert len(drops) == len(convs) - 1 and all(d.p == 0.4 for d in drops)
    assert convs[0].kernel_size == (7, 7) and convs[0].stride == (2, 2)


@pytest.mark.parametrize("shape", [(1, 1, 256, 256), (1, 3, 224, 224), (224, 224)])
def test_bccnet_rejects_wrong_input(shape):
    with pytest.raises(BoneScreenError, match=r"\(N, 1, 224, 224\)"):
        create_model("bccnet")(torch.randn(*shape))


@pytest.mark.parametrize(
    ("name", "blocks", "growth"),
    [("densenet121", [6, 12, 24, 16], 32), ("densenet-1", [1, 1, 2, 1], 12), ("densenet-2", [2, 4, 6, 4], 12)],
)
def test_ablation_networks(name, blocks, growth):
    model = create_model(name).eval()
    assert isinstance(model, DenseNet)
    assert model.config()["block_config"] == blocks and model.config()["growth_rate"] == growth
    with torch.inference_mode():
        assert model(torch.randn(1, 1, 224, 224)).shape == (1, 3)


def test_registry():
    assert {"msnet", "msnet-small", "bccnet", "densenet121", "densenet-1", "densenet-2"} <= set(model_names())
    with pytest.raises(BoneScreenError, match="unknown model"):
        create_model("resnet50")


def test_builder_argument_checks():
    with pytest.raises(BoneScreenError, match="width"):
        MSNet(width=0)
    with pytest.raises(BoneScreenError, match="block_config"):
        DenseNet(block_config=())
    with pytest.raises(BoneScreenError, match="drop_rate"):
        DenseNet(drop_rate=1.5)
