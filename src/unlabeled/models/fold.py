"""Batch norm folded into the convolution before it, for inference.

In eval mode a batch norm is an affine map per channel, so it can be folded into the weights
and bias of the convolution that feeds it (PyTorch's ``fuse_conv_bn_eval``): one pass over
the activation fewer per pair. On cnn-tiny at 28x28 the batch norms were 17% of an fp32
embedding pass (torch's profiler, one thread, BENCHMARKS.md "Bench speed"), and embedding
the random-init baseline is a large part of the demo's bench."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _pairs(module: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, conv name, batch-norm name) for each convolution that a batch norm with
    running statistics follows directly inside an ``nn.Sequential``."""
    found = []
    for seq in module.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in zip(names, names[1:], strict=False):
            conv, bn = seq._modules[a], seq._modules[b]
            if (
                isinstance(conv, _ConvNd)
                and not conv.transposed
                and isinstance(bn, _BatchNorm)
                and bn.track_running_stats
                and bn.running_mean is not None
                and bn.num_features == conv.out_channels
            ):
                found.append((seq, a, b))
    return found


def fold_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` in eval mode, as a copy with every convolution–batch-norm pair folded into
    one convolution (the batch norm replaced by an identity), or ``module`` itself where it
    has no such pair. The copy computes the same function up to float rounding; ``module``
    is left as it was apart from being put in eval mode."""
    module.eval()
    if not _pairs(module):
        return module
    folded = copy.deepcopy(module)
    for seq, a, b in _pairs(folded):
        conv = seq._modules[a]
        fused = fuse_conv_bn_eval(conv, seq._modules[b])
        if conv.weight.dim() == 4 and conv.weight.is_contiguous(memory_format=torch.channels_last):
            fused = fused.to(memory_format=torch.channels_last)  # keep oneDNN's fast layout
        seq._modules[a], seq._modules[b] = fused, nn.Identity()
    return folded
