"""Network speed against the machine's own matrix-multiply ceiling, measured in the same run.

Prints and writes JSON: MS-Net latency and slices/s at batch 1, 4 (the CPU default), 8 and 32 (bundled
width and full width), GFLOP per slice (counted by torch's FlopCounterMode), achieved GFLOP/s and its
fraction of the matmul ceiling of the same precision, BCC-Net crops/s, and how far the bf16 labels are from fp32.

Host memory is set up as the Screener sets it up (``bonescreen.allocator``: glibc's malloc thresholds,
no huge-page requests from numpy);
``--default-allocator`` leaves them alone, to measure what that gives.

Run: .venv/bin/python benchmarks/inference_speed.py [--device cpu] [--quick] [--default-allocator]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bonescreen.allocator import tune_host_memory
from bonescreen.checkpoint import load_model
from bonescreen.nets import create_model
from bonescreen.pipeline.inference import InferenceSettings
from bonescreen.weights import default_weights


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(fn, flop: float, device: torch.device, seconds: float) -> float:
    """GFLOP/s of ``fn`` (``flop`` per call), timed for about ``seconds`` after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        reps += 1
    sync(device)
    return flop * reps / (time.perf_counter() - t0) / 1e9


def matmul_ceiling(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> dict:
    """The practical peak to compare the networks with: the fastest large matrix product of several tried.

    ``torch.mm`` goes to the BLAS library (MKL on x86 CPUs, cuBLAS on NVIDIA GPUs); on AMD CPUs MKL
    does not use AVX-512 and stays far below the machine's peak, so a 1x1 convolution on a
    channels-last tensor (a plain matrix product run by oneDNN, the library that runs the networks'
    convolutions) is timed too. Returns every rate tried and the best (``ceiling``).
    """
    rates = {}
    sizes = (2048, 4096, 8192) if device.type == "cuda" else (2048, 4096)
    for n in sizes:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        rates[f"mm {n}"] = _rate(lambda a=a, b=b: a @ b, 2 * n**3, device, seconds)
    if device.type == "cpu":
        for c, hw in ((1024, 64), (512, 128)):
            x = torch.randn(1, c, hw, hw, dtype=dtype).contiguous(memory_format=torch.channels_last)
            w = torch.randn(c, c, 1, 1, dtype=dtype).contiguous(memory_format=torch.channels_last)
            rates[f"1x1 conv {c}ch {hw}x{hw}"] = _rate(
                lambda x=x, w=w: torch.nn.functional.conv2d(x, w), 2 * c * c * hw * hw, device, seconds
            )
    rates = {k: round(v, 1) for k, v in rates.items()}
    return {"ceiling": max(rates.values()), "best": max(rates, key=rates.get), "tried": rates}


def flops_per_item(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


def time_model(model, shape, batch, device, settings: InferenceSettings, seconds: float) -> dict:
    x = settings.input(torch.randn(batch, *shape, device=device))
    with torch.inference_mode(), settings.forward_context(device):
        model(x)
        sync(device)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or reps < 2:
            model(x)
            reps += 1
        sync(device)
    dt = (time.perf_counter() - t0) / reps
    return {"batch": batch, "latency_ms": round(1000 * dt, 2), "items_per_s": round(batch / dt, 2)}


def precision_check(device: torch.device) -> dict:
    """How far the fast path's labels and probabilities are from plain fp32 on one phantom (1.5 mm slices)."""

    from bonescreen.io.volume import volume_from_ijk
    from bonescreen.metrics import dice_score
    from bonescreen.phantom import PhantomConfig, make_case
    from bonescreen.pipeline import Screener

    case = make_case(7272, 1, PhantomConfig(thickness=1.5))
    volume = volume_from_ijk(case.hu.transpose(2, 1, 0), case.affine, "phantom", None, "phantom")
    plain = Screener(device=str(device), settings=InferenceSettings(precision="fp32", channels_last=False, batch=1))
    fast = Screener(device=str(device))  # the default: autocast where the hardware has it, channels_last, batch 4
    a, b = plain.segment(volume), fast.segment(volume)
    ra, rb = plain.classify(volume, a.labels), fast.classify(volume, a.labels)
    diffs = [
        abs(la["probabilities"][k] - lb["probabilities"][k])
        for la, lb in zip(ra["levels"], rb["levels"], strict=True)
        for k in la["probabilities"]
    ]
    return {
        "fast_precision": str(fast.settings.dtype(fast.device)),
        "slices": int(volume.shape[0]),
        "mark_dice_vs_fp32": round(float(dice_score(a.mark, b.mark)), 5),
        "voxels_with_other_label": int((a.labels != b.labels).sum()),
        "fraction_of_labelled_voxels": round(float((a.labels != b.labels).sum() / max((a.labels > 0).sum(), 1)), 6),
        "level_names_equal": [v.name for v in a.vertebrae] == [v.name for v in b.vertebrae],
        "max_probability_difference": round(max(diffs), 4),
        "predictions_equal": [lv["prediction"] for lv in ra["levels"]] == [lv["prediction"] for lv in rb["levels"]],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="shorter timings, no full-width batch 32")
    p.add_argument("--out", type=Path, default=Path("bench-out/inference_speed.json"))
    p.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's malloc thresholds and numpy's huge pages as they are (for comparison)",
    )
    args = p.parse_args()
    device = torch.device(args.device)
    tuned = not args.default_allocator and tune_host_memory()  # as the CLI and batch workers do
    seconds = 1.0 if args.quick else 3.0
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "allocator_tuned": tuned,
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    measured = {"fp32": matmul_ceiling(device, torch.float32), "bf16": matmul_ceiling(device, torch.bfloat16)}
    ceilings = {k: v["ceiling"] for k, v in measured.items()}
    report["matmul_ceiling_gflops"] = measured
    for k, v in measured.items():
        print(f"matmul ceiling {k}: {v['ceiling']} GFLOP/s ({v['best']}; tried {v['tried']})")
    rows = []
    bundled, _ = load_model(default_weights("segmentation"))
    for label, model in (("msnet-small (bundled)", bundled), ("msnet (full width)", create_model("msnet").eval())):
        gflop = flops_per_item(model, (1, 512, 512)) / 1e9
        for precision in ("fp32", "bf16"):
            settings = InferenceSettings(precision=precision, channels_last=True)
            prepared = settings.prepare(model.to(device))
            for batch in (1, 4, 8, 32):
                if args.quick and "full" in label and batch == 32:
                    continue
                row = {
                    "model": label,
                    "precision": precision,
                    "gflop_per_slice": round(gflop, 2),
                    **time_model(prepared, (1, 512, 512), batch, device, settings, seconds),
                }
                row["achieved_gflops"] = round(gflop * row["items_per_s"], 1)
                row["fraction_of_matmul_peak"] = round(row["achieved_gflops"] / ceilings[precision], 3)
                rows.append(row)
                print(
                    f"{label:22s} {precision} batch {batch:2d}: {row['latency_ms']:8.1f} ms, "
                    f"{row['items_per_s']:7.1f} slices/s, {row['achieved_gflops']:7.1f} GFLOP/s "
                    f"({100 * row['fraction_of_matmul_peak']:.0f}% of matmul)"
                )
    cls, _ = load_model(default_weights("classification"))
    for precision in ("fp32", "bf16"):
        settings = InferenceSettings(precision=precision)
        r = time_model(settings.prepare(cls.to(device)), (1, 224, 224), 64, device, settings, seconds)
        rows.append({"model": "bccnet (bundled)", "precision": precision, **r})
        print(f"bccnet {precision} batch 64: {r['items_per_s']:.0f} crops/s")
    report["runs"] = rows
    report["fast_path_vs_fp32"] = precision_check(device)
    print(f"fast path vs fp32: {report['fast_path_vs_fp32']}")
    if device.type == "cuda":
        report["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
