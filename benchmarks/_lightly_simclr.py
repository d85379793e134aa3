"""LightlySSL's SimCLR on Fashion-MNIST, run inside benchmarks/.lightly-venv by vs_lightly.py.

The way LightlySSL's examples train: a torch Dataset yielding PIL images, LightlySSL's
``SimCLRTransform`` applied per sample in DataLoader workers, fp32, its
``SimCLRProjectionHead`` and ``NTXentLoss``. The encoder is ours (cnn-tiny), and the
optimiser, learning-rate schedule, temperature, batch size and augmentation strengths are set
to ours, so that only the training machinery differs. Weights are kept every
``--snapshot-seconds`` in our safetensors layout (``encoder.*``) for the same evaluation.

The schedule runs over ``--minutes`` of wall time or, with ``--steps``, over that many
optimiser steps (our trainer's step schedule, for runs compared step for step). ``--device
cuda`` trains on a GPU as LightlySSL's examples do there: the loader's workers still augment
on the CPU, into pinned memory, and the model stays in fp32.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import provenance
from PIL import Image
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from unlabeled import open_collection
from unlabeled.models import build_encoder
from unlabeled.train.trainer import lr_at


def _torchvision_without_its_ops() -> None:
    """PyPI's torchvision wheels are CUDA builds; beside the CPU torch this project installs
    their compiled operators do not load, and torchvision 0.28 then fails on import, where it
    registers fake kernels for ``nms`` and ``qnms`` without checking that they exist. Their
    schemas are declared then and the import tried again; SimCLR's transforms never call them
    (a CPU build of torchvision comes only from PyTorch's own index, which this machine cannot
    reach)."""
    import sys

    try:
        import torchvision  # noqa: F401
    except RuntimeError as e:
        if "torchvision::" not in str(e):
            raise
        # the library object must outlive this function, or its definitions go with it
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in ("nms", "qnms"):
            lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _torchvision_without_its_ops.lib = lib
        for module in [m for m in sys.modules if m.partition(".")[0] == "torchvision"]:
            del sys.modules[module]
        import torchvision  # noqa: F401, F811


_torchvision_without_its_ops()

from lightly.loss import NTXentLoss  # noqa: E402
from lightly.models.modules import SimCLRProjectionHead  # noqa: E402
from lightly.transforms import SimCLRTransform  # noqa: E402


def save_encoder(model: nn.Module, folder: Path, step: int, elapsed: float) -> None:
    """The encoder's weights as ``folder/step-NNNNNNN.safetensors``, in our layout."""
    state = {f"encoder.{k}": v.cpu().contiguous() for k, v in model.encoder.state_dict().items()}
    meta = {"step": str(step), "elapsed_s": f"{elapsed:.2f}"}
    save_file(state, folder / f"step-{step:07d}.safetensors", metadata=meta)


class Images(Dataset):
    def __init__(self, arrays: np.ndarray, transform) -> None:
        self.arrays, self.transform = arrays, transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(np.asarray(self.arrays[i, 0]), mode="L"))


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = build_encoder("cnn", "tiny", (1, 28, 28)).to(memory_format=torch.contiguous_format)
        self.head = SimCLRProjectionHead(self.encoder.dim, 512, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.embed(x))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float)
    budget.add_argument("--steps", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--snapshot-seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mean", type=float, required=True)
    ap.add_argument("--std", type=float, required=True)
    ap.add_argument("--view-size", type=int, default=28, help="pixels a side of each crop")
    args = ap.parse_args()
    print(provenance("lightly"), flush=True)
    device = torch.device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "snapshots").mkdir(exist_ok=True)
    col = open_collection(args.data)
    arrays = col.get(col.indices(exclude="test"))  # the same 60k train images, in memory
    transform = SimCLRTransform(
        input_size=args.view_size,
        cj_prob=0.8,
        cj_strength=0.5,
        cj_bright=0.8,
        cj_contrast=0.8,
        cj_sat=0.0,
        cj_hue=0.0,
        min_scale=0.35,
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        vf_prob=0.0,
        hf_prob=0.5,
        rr_prob=0.0,
        normalize={"mean": [args.mean], "std": [args.std]},
    )  # our 28-px defaults: crops from 35%, flip, brightness/contrast 0.4 with p 0.8, no blur
    loader = DataLoader(
        Images(arrays, transform),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(args.seed)  # the model's initialisation and the loader's order
    model = Model().to(device)
    criterion = NTXentLoss(temperature=0.5)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)  # our defaults
    base_lrs = [g["lr"] for g in opt.param_groups]
    budget = None if args.minutes is None else args.minutes * 60
    metrics = (args.out / "metrics.jsonl").open("w")
    t0 = time.perf_counter()
    last_snap, step, seen = t0, 0, 0
    done = False
    while not done:
        for views in loader:
            x0, x1 = views[0].to(device, non_blocking=True), views[1].to(device, non_blocking=True)
            progress = step / args.steps if budget is None else (time.perf_counter() - t0) / budget
            if progress >= 1:
                done = True
                break
            if budget is None:  # our trainer's schedule, step for step
                scale = lr_at(step, args.steps, 1.0, 0.05)
            else:  # the same shape as our trainer's: linear warm-up over 5%, then cosine, in wall time
                scale = progress / 0.05 if progress < 0.05 else 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95))
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * scale
            z = model(torch.cat([x0, x1]))
            loss = criterion(*z.chunk(2))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
            opt.step()
            step += 1
            seen += len(x0)
            now = time.perf_counter()
            if step % 20 == 0:
                metrics.write(
                    json.dumps(
                        {"step": step, "loss": loss.item(), "elapsed_s": now - t0, "samples_per_s": seen / (now - t0)}
                    )
                    + "\n"
                )
                metrics.flush()
            if now - last_snap >= args.snapshot_seconds:
                save_encoder(model, args.out / "snapshots", step, now - t0)
                last_snap = now
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    save_encoder(model, args.out / "snapshots", step, elapsed)
    gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    print(
        json.dumps(
            {
                "steps": step,
                "samples": seen,
                "seconds": elapsed,
                "samples_per_s": seen / elapsed,
                "gpu_peak_bytes": gpu_peak,
            }
        )
    )


if __name__ == "__main__":
    main()
