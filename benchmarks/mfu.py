"""Model FLOPs utilisation of pretraining on this machine.

1. The machine's GEMM peak, measured: the best rate of a large square matmul and of tall
   products shaped like a transformer's linear layers (``gemm_shapes``), in fp32, and in bf16
   where the CPU (or GPU) supports it.
2. One training step of each encoder (SimCLR: forward and backward of both views; MAE), batch 256,
   28x28 Fashion-MNIST-sized images) with its FLOPs counted by
   ``torch.utils.flop_counter.FlopCounterMode`` and its time measured, in the precision the
   trainer would use.
3. MFU = achieved FLOP/s / peak FLOP/s of that precision.

    python benchmarks/mfu.py                 # the CNN (SimCLR) and the transformer (SimCLR, MAE)
    python benchmarks/mfu.py --device cuda
    python benchmarks/mfu.py --transformer-sizes tiny,small,base --precisions bf16 --steps 4
    python benchmarks/mfu.py --encoders transformer --transformer-sizes base --profile   # the bound
    python benchmarks/mfu.py --encoders cnn --precisions fp32 --rounds 3 --cnn-options '[{}, {"strided_stem": true}]'

At width 128 (``tiny``) a matrix product is small next to the layer norms, GELUs and layout
copies around it, which run at memory speed; ``--transformer-sizes`` shows how MFU grows
with the width.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _provenance import provenance
from torch.utils.flop_counter import FlopCounterMode

from unlabeled.modalities.image import ImageModality
from unlabeled.models import build_encoder, default_options
from unlabeled.objectives import build_objective
from unlabeled.runtime import bf16_available, keep_freed_memory
from unlabeled.train.trainer import compile_encoder

RUNS = [("cnn", "simclr"), ("transformer", "simclr"), ("transformer", "mae")]
# the operators whose FLOPs FlopCounterMode counts, as the CPU profiler names them
PRODUCT_OPS = {
    "aten::mm",
    "aten::bmm",
    "aten::addmm",
    "aten::baddbmm",
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
}


def gemm_flops(dtype: torch.dtype, device: torch.device, m: int, k: int, n: int, repeats: int = 10) -> float:
    """FLOP/s of an (m, k) x (k, n) matmul, best of ``repeats``."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * m * k * n / best


def gemm_shapes(device: torch.device) -> list[tuple[int, int, int]]:
    """The products the peak is the best of: a large square one, and tall ones shaped like a
    transformer's linear layers (rows = tokens, inner dimension = width or MLP width).

    Why not the square product alone: on the AMX Xeon in bf16 a 4096² product ran at
    2,420 GFLOP/s while (25088 x 384) @ (384 x 1152), the qkv projection of ``base`` at batch
    256 x 2 views, ran at 4,000 (BENCHMARKS.md). Dividing by the square product's rate would
    credit the model with more of the machine than it uses."""
    n, rows = (8192, 65536) if device.type == "cuda" else (4096, 25088)
    return [(n, n, n)] + [(rows, k, m) for k, m in ((384, 1152), (384, 1536), (1536, 384), (768, 3072))]


def gemm_peak(dtype: torch.dtype, device: torch.device) -> tuple[float, tuple[int, int, int], list[str]]:
    """The best FLOP/s over :func:`gemm_shapes`, the shape that gave it, and one line per shape."""
    rates = {shape: gemm_flops(dtype, device, *shape) for shape in gemm_shapes(device)}
    best = max(rates, key=rates.__getitem__)
    lines = [f"  ({m} x {k}) @ ({k} x {n}): {r / 1e9:,.0f} GFLOP/s" for (m, k, n), r in rates.items()]
    return rates[best], best, lines


def step_flops_and_time(
    encoder: str,
    method: str,
    size: str,
    bf16: bool,
    device: torch.device,
    batch: int = 256,
    steps: int = 10,
    compiled: bool = False,
    profiled: bool = False,
    given: dict | None = None,
) -> tuple[float, float, tuple[float, float] | None]:
    """FLOPs of one step, seconds per step, and with ``profiled`` (CPU only) the matrix
    products' and convolutions' own seconds per step and their share of the profiled step;
    ``given``: encoder options beyond the defaults (``{"strided_stem": True}``)."""
    torch.manual_seed(0)
    mod = ImageModality((1, 28, 28), [0.286], [0.353])
    options = default_options(encoder, mod, given, method=method)  # what a new run builds
    obj = build_objective(method, build_encoder(encoder, size, (1, 28, 28), **options), mod).to(device)
    opt = torch.optim.AdamW(obj.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)

    def step(i: int) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = obj.loss(x, torch.Generator(device=device).manual_seed(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    flops = float(counter.get_total_flops())
    if compiled:  # as pretrain --compile does; the FLOPs above were counted on the eager model
        compile_encoder(obj.encoder)
        t = time.perf_counter()
        step(0)
        print(f"  torch.compile: first step {time.perf_counter() - t:.1f} s", flush=True)
    for i in range(3):  # warm-up
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t) / steps
    if not profiled:
        return flops, sec, None
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for i in range(2):
            step(i)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS)
    return flops, sec, (products / 1e6 / 2, products / total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per row (after 3 warm-up steps)")
    ap.add_argument("--transformer-sizes", default="tiny", help="comma-separated: tiny,small,base")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma-separated, of fp32,bf16")
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder, as pretrain --compile does")
    ap.add_argument("--encoders", default="cnn,transformer", help="comma-separated: cnn,transformer")
    ap.add_argument(
        "--cnn-options",
        default="[{}]",
        help="JSON list of cnn encoder options, a row each: '[{}, {\"strided_stem\": true}]' compares the stems",
    )
    ap.add_argument("--rounds", type=int, default=1, help="repeat the rows this many times, interleaved")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="(CPU) also profile two steps: the matrix products' share of the step and their own rate, "
        "which bounds MFU if every other operator were free",
    )
    args = ap.parse_args()
    print(provenance(), flush=True)
    dev = torch.device(args.device)
    if args.profile and dev.type != "cpu":
        ap.error("--profile measures operators' CPU time, so it runs on the CPU only")
    keep_freed_memory()  # as the CLI does (UNLABELED_MALLOC=system to measure without)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device: {name}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    peaks = {}
    for precision, dtype in [("fp32", torch.float32), ("bf16", torch.bfloat16)]:
        if dtype == torch.bfloat16 and not bf16_available(dev):
            continue
        peaks[precision], (m, k, n), lines = gemm_peak(dtype, dev)
        print(f"GEMM {precision}:", *lines, sep="\n")
        print(
            f"GEMM peak {precision}: {peaks[precision] / 1e9:,.0f} GFLOP/s, the best of these "
            f"(({m} x {k}) @ ({k} x {n}))",
            flush=True,
        )
    print("| encoder | method | precision | GFLOP per step | ms per step | samples/s | achieved GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    cnn_options = json.loads(args.cnn_options)
    runs = [
        (e, m, size, opts)
        for e, m in RUNS
        if e in args.encoders.split(",")
        for size in (["tiny"] if e == "cnn" else args.transformer_sizes.split(","))
        for opts in (cnn_options if e == "cnn" else [{}])
    ]
    for encoder, method, size, opts in runs * args.rounds:
        label = f"{encoder}-{size}" + "".join(f" {k}={v}" for k, v in opts.items())
        for precision in [p for p in peaks if p in args.precisions.split(",")]:
            flops, sec, products = step_flops_and_time(
                encoder,
                method,
                size,
                precision == "bf16",
                dev,
                args.batch,
                args.steps,
                args.compile,
                args.profile,
                opts,
            )
            achieved = flops / sec
            print(
                f"| {label} | {method} | {precision} | {flops / 1e9:.2f} | {sec * 1000:.0f} "
                f"| {args.batch / sec:,.0f} "
                f"| {achieved / 1e9:,.1f} | {achieved / peaks[precision]:.1%} |",
                flush=True,
            )
            if products:
                own, share = products
                print(
                    f"  profile: matrix products and convolutions {share:.0%} of the step, at "
                    f"{flops / own / 1e9:,.0f} GFLOP/s on their own: MFU {flops / own / peaks[precision]:.1%} "
                    f"if every other operator were free",
                    flush=True,
                )


if __name__ == "__main__":
    main()
