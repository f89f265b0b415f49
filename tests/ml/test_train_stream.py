"""The time-boxed streaming trainer (GPU leases): schedule, augmentation, ring buffer, run end to end on the CPU."""

import json
import math
import os

import numpy as np
import pytest
import torch

from bonescreen.checkpoint import load_model
from bonescreen.data.labelled import find_labelled, only
from bonescreen.errors import BoneScreenError
from bonescreen.preprocess import MARK_IGNORE
from bonescreen.threads import usable_cores
from bonescreen.train.stream import GpuPool, StreamPlan, Variant, augment_batch, default_workers, time_lr, train_stream
from bonescreen.weights import WEIGHTS_DIR

BUNDLED = str(WEIGHTS_DIR / "msnet-small.safetensors")


def test_variant_parse_reads_the_four_fields_and_names_the_bad_one():
    v = Variant.parse("aug:random:1e-3:1")
    assert (v.name, v.init, v.lr, v.intensity) == ("aug", None, 1e-3, True)
    assert Variant.parse(f"plain:{BUNDLED}:0.0001:0").init == BUNDLED
    for bad in ("aug:random:1e-3", "aug:random:fast:1", "aug:random:-1:1", "aug:random:1e-3:yes"):
        with pytest.raises(BoneScreenError, match="variant"):
            Variant.parse(bad)


def test_time_lr_is_the_papers_schedule_over_the_budget():
    assert time_lr(0.0, 1e-3) == 1e-3
    assert time_lr(0.6, 1e-3) == 1e-3
    assert time_lr(5 / 6, 1e-3) == pytest.approx(0.5e-3)
    assert time_lr(1.0, 1e-3) == 0.0
    assert time_lr(1.2, 1e-3) == 0.0


def test_default_workers_leave_one_core_for_the_network(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the run's threads must not decide how many processes draw
    assert default_workers() == max(1, usable_cores() - 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))


def test_pool_is_a_ring_that_keeps_the_newest_slices():
    pool = GpuPool(3, 4, torch.device("cpu"))
    images = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((5, 4, 4), np.uint8)
    pool.add(images[:2], images[:2])
    assert pool.count == 2
    pool.add(images[2:], images[2:])
    assert (pool.count, pool.added) == (3, 5)
    assert sorted(int(v) for v in pool.images[:, 0, 0]) == [2, 3, 4]
    x, y = pool.sample(10, torch.Generator().manual_seed(0))
    assert x.shape == (10, 4, 4) and x.dtype == torch.uint8
    assert torch.equal(x, y)


def _slices(n: int = 6, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Air around a 'body' of 100 (about 0 HU on MS-Net's window) holding a bright 'vertebra' of 200."""
    images = torch.zeros((n, size, size), dtype=torch.uint8)
    marks = torch.zeros((n, size, size), dtype=torch.uint8)
    images[:, 16:48, 16:48] = 100
    images[:, 26:38, 26:38] = 200
    marks[:, 26:38, 26:38] = 1
    marks[:, 24:26, 26:38] = MARK_IGNORE
    return images, marks


@pytest.mark.parametrize("intensity", [False, True])
def test_augment_batch_moves_image_and_mark_together(intensity):
    images, marks = _slices()
    x, y = augment_batch(images, marks, torch.Generator().manual_seed(1), intensity)
    assert x.shape == (6, 1, 64, 64) and y.shape == (6, 1, 64, 64)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0, float(MARK_IGNORE)}  # nearest: no blended labels
    assert float(x[:, :, :4, :].abs().max()) == 0.0  # air at the border stays air (shift at most 8 %)
    for k in range(6):  # the mark follows the bright square wherever it went
        bright = x[k, 0] > 0.6
        marked = y[k, 0] == 1
        assert (bright & marked).sum() >= 0.8 * marked.sum()


def test_intensity_randomization_changes_tissue_but_not_air():
    images, marks = _slices(32)
    plain, _ = augment_batch(images, marks, torch.Generator().manual_seed(3), False)
    varied, _ = augment_batch(images, marks, torch.Generator().manual_seed(3), True)
    inside = plain > 0
    assert float((varied - plain)[inside].abs().mean()) > 0.002  # about 3 HU or more on average
    assert float(varied[~inside].abs().max()) == 0.0
    body = varied[:, 0, 20:24, 20:24].mean(dim=(1, 2))  # soft tissue: scale, offset and noise per slice
    assert float(body.std()) > 0.003


def test_too_few_cores_for_the_budget_is_a_clear_error(tmp_path):
    plan = StreamPlan(budget_s=2.0, workers=1, batch_size=2, capacity=16, val_scenes=0, val_cases=0)
    with pytest.raises(BoneScreenError, match=r"slices drawn after .* too few cores"):
        train_stream(tmp_path, [Variant("a", BUNDLED, 1e-4)], plan, torch.device("cpu"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budget_s": 0.0}, "budget_s must be"),
        ({"workers": 0}, "workers must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"snapshots": (0.5, 1.5)}, "at most 1"),
        ({"snapshots": ()}, "snapshots"),
        ({"labelled_share": 1.0}, "labelled_share must be"),
        ({"batch_size": 2, "first_share": 0.5, "labelled": ("x",)}, "none is left for the realistic phantom"),
    ],
)
def test_a_plan_that_cannot_run_is_refused_before_any_process_starts(tmp_path, change, message):
    """helper-48: a batch size of 0 or shares that fill the batch crashed mid-run and then hung on the workers."""
    plan = StreamPlan(**change)
    with pytest.raises(BoneScreenError, match=message):
        train_stream(tmp_path / "out", [Variant("a", None, 1e-3)], plan, torch.device("cpu"))
    assert not (tmp_path / "out").exists()


def test_every_share_above_zero_gets_a_slice_in_each_batch():
    """helper-48: at batch 2 a labelled share of 0.25 rounded to no labelled slice at all, silently."""
    assert StreamPlan(batch_size=2, first_share=0.2, labelled=("x",), labelled_share=0.25).batch_counts() == (1, 1)
    assert StreamPlan(batch_size=32, first_share=0.2, labelled_share=0.25).batch_counts() == (6, 0)  # no labelled CT
    assert StreamPlan(batch_size=32, first_share=0.0, labelled=("x",)).batch_counts() == (0, 8)


def test_bad_start_weights_and_names_end_with_a_clear_error(tmp_path):
    """helper-48: missing or BCC-Net start weights printed the error and then hung on the generator processes."""
    for init in (str(tmp_path / "none.safetensors"), str(WEIGHTS_DIR / "bccnet.safetensors")):
        with pytest.raises(BoneScreenError):
            train_stream(tmp_path / "out", [Variant("a", init, 1e-4)], StreamPlan(), torch.device("cpu"))
    with pytest.raises(BoneScreenError, match="letters, digits"):
        Variant.parse("../escape:random:1e-3:1")
    (tmp_path / "file").write_text("")
    with pytest.raises(BoneScreenError, match="is a file"):
        train_stream(tmp_path / "file", [Variant("a", None, 1e-3)], StreamPlan(), torch.device("cpu"))


def test_variants_need_distinct_names(tmp_path):
    with pytest.raises(BoneScreenError, match="distinct names"):
        train_stream(tmp_path, [Variant("a", None, 1e-3), Variant("a", None, 1e-4)], StreamPlan(), torch.device("cpu"))


def test_a_short_cpu_run_writes_weights_the_pipeline_loads(tmp_path, shared_data):
    """One realistic scene per job, batches of 4 with a real labelled CT in each: the run ends on time with
    loadable weights and its log."""
    real = only(find_labelled(shared_data, "shared"), ["dcmqi-ct3slice"])
    plan = StreamPlan(
        labelled=tuple(real),
        labelled_share=0.25,
        budget_s=60.0,
        workers=1,
        batch_size=4,
        capacity=64,
        scenes_per_job=1,
        val_scenes=1,
        val_cases=0,
        snapshots=(1.0,),
    )
    torch.set_num_threads(1)
    log = train_stream(tmp_path, [Variant("aug", BUNDLED, 1e-4, intensity=True)], plan, torch.device("cpu"))
    assert [s["percent"] for s in log["snapshots"]] == [100]
    assert log["snapshots"][0]["step"] >= 1 and log["events"]
    assert json.loads((tmp_path / "stream_log.json").read_text())["total_s"] == log["total_s"]
    assert log["labelled_slices"] == 3 and log["plan"]["labelled"][0]["name"] == "dcmqi-ct3slice"
    model, meta = load_model(tmp_path / "aug_100.safetensors")
    assert model.model_name == "msnet-small" and meta["task"] == "segmentation"
    assert meta["training"]["variant"]["intensity"] is True
    assert meta["preprocessing"]["segmentation"]["window_hu"] == [-250.0, 1250.0]
    x = torch.zeros((1, 1, 512, 512))
    with torch.inference_mode():
        out = model.eval()(x)
    assert out.shape == (1, 1, 512, 512) and not math.isnan(float(out.max()))
