"""Parameter-efficient adapters: how an encoder is adapted to a labelled task while its
pretrained weights stay frozen.

- LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): a trainable
  low-rank update ``W + (alpha / r) B A`` beside each targeted layer, ``B`` initialised to
  zero. Injected with the ``peft`` library (``inject_adapter_in_model``), which supports
  ``Linear`` and ``Conv1d/2d/3d`` layers of any torch module.
- SVFit (Sun et al. 2024, "SVFit: Parameter-Efficient Fine-Tuning of Large Pre-Trained
  Models Using Singular Values"): each targeted weight is split by its SVD into the best
  rank-r part ``U_r diag(s_r) V_rᵀ`` and the rest; only the top-r singular values train, the
  singular vectors and the rest stay frozen. Written here (peft has no SVFit).

Both adapt the same layers (``adaptable_layers``): the ``Linear`` layers when the encoder
has any (the patch transformer: attention qkv/proj and the MLP; not its patch-embedding
convolution), else its convolutions (the CNN).

    trainable = apply_svfit(encoder, rank=8)     # or apply_lora(encoder, rank=8)
    opt = torch.optim.AdamW(trainable, lr=1e-2)  # every other encoder weight is frozen
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled._console import UnlabeledError

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def adaptable_layers(encoder: nn.Module) -> list[str]:
    """Names of the layers an adapter goes into, chosen by module type: every ``nn.Linear``
    when the encoder has one, otherwise every convolution."""
    linear = [name for name, m in encoder.named_modules() if isinstance(m, nn.Linear)]
    if linear:
        return linear
    convs = [name for name, m in encoder.named_modules() if isinstance(m, CONVS)]
    if not convs:
        raise UnlabeledError(f"{type(encoder).__name__} has no Linear or convolution layer to adapt")
    return convs


def _check_rank(rank: int) -> None:
    if int(rank) < 1:
        raise UnlabeledError(f"adapter rank must be at least 1, got {rank}")


def freeze(module: nn.Module) -> None:
    """Stop every parameter of ``module`` from training."""
    for p in module.parameters():
        p.requires_grad_(False)


def apply_lora(encoder: nn.Module, rank: int = 8, alpha: float | None = None) -> list[nn.Parameter]:
    """Inject LoRA adapters of rank ``rank`` into ``encoder``'s adaptable layers (in place,
    through ``peft.inject_adapter_in_model``); freeze everything else. ``alpha`` defaults to
    ``rank`` (scaling 1: Hu et al. set alpha to the first r they tried and did not tune it).
    A targeted layer ``name`` keeps its frozen weights as ``name.base_layer``. Returns the
    adapters' parameters, the only trainable ones."""
    _check_rank(rank)
    from peft import LoraConfig, inject_adapter_in_model  # imports transformers: seconds, so only when used

    targets = adaptable_layers(encoder)
    config = LoraConfig(
        r=int(rank),
        lora_alpha=float(alpha if alpha is not None else rank),
        lora_dropout=0.0,
        bias="none",
        target_modules=targets,
    )
    freeze(encoder)
    inject_adapter_in_model(config, encoder)
    trainable = [p for name, p in encoder.named_parameters() if "lora_" in name]
    for p in trainable:
        p.requires_grad_(True)
    return trainable


def singular_value_delta(u: torch.Tensor, delta: torch.Tensor, vh: torch.Tensor) -> torch.Tensor:
    """``U_r diag(delta) V_rᵀ``: the change of ``W = U diag(s) Vᵀ`` when its top-r singular
    values move by ``delta`` (SVFit's update, Sun et al. 2024, eq. for ``W_r``)."""
    return (u * delta) @ vh


class SVFitLayer(nn.Module):
    """A ``Linear`` or convolution whose weight is ``W + U_r diag(delta) V_rᵀ`` (a convolution's
    weight taken as a matrix of shape (out, in * kernel)). That is SVFit's
    ``W_e + U_r diag(s_r + delta) V_rᵀ`` written around the frozen ``W``, so that with
    ``delta = 0`` the layer is exactly the original one. Only ``delta`` trains."""

    def __init__(self, base: nn.Module, rank: int) -> None:
        super().__init__()
        if not isinstance(base, (nn.Linear, *CONVS)):
            raise UnlabeledError(f"SVFit adapts Linear and convolution layers, not {type(base).__name__}")
        self.base_layer = base
        w = base.weight.detach()
        u, s, vh = torch.linalg.svd(w.reshape(w.shape[0], -1).float(), full_matrices=False)
        r = min(int(rank), s.numel())
        self.register_buffer("u", u[:, :r].contiguous())
        self.register_buffer("vh", vh[:r].contiguous())
        self.register_buffer("singular_values", s[:r].clone())  # the values delta moves, for inspection
        self.delta = nn.Parameter(torch.zeros(r, device=w.device))

    def weight(self) -> torch.Tensor:
        w = self.base_layer.weight
        # the sum laid out with w's strides: a 1-channel convolution's weight has two valid
        # layouts, oneDNN's result depends (in the last bit) on which one it is given, and
        # `w + d` would pick the other one
        d = singular_value_delta(self.u, self.delta, self.vh).reshape(w.shape)
        return torch.empty_like(w).copy_(d).add_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if isinstance(base, nn.Linear):
            return F.linear(x, self.weight(), base.bias)
        return base._conv_forward(x, self.weight(), base.bias)


def apply_svfit(encoder: nn.Module, rank: int = 8) -> list[nn.Parameter]:
    """Replace ``encoder``'s adaptable layers (in place) by :class:`SVFitLayer`s training the
    top-``rank`` singular values of each weight (Sun et al. 2024, SVFit); freeze everything
    else. A targeted layer ``name`` keeps its frozen weights as ``name.base_layer``. Returns
    the singular-value deltas, the only trainable parameters."""
    _check_rank(rank)
    freeze(encoder)
    trainable = []
    for name in adaptable_layers(encoder):
        parent, _, child = name.rpartition(".")
        holder = encoder.get_submodule(parent) if parent else encoder
        layer = SVFitLayer(getattr(holder, child), rank)
        setattr(holder, child, layer)
        trainable.append(layer.delta)
    return trainable


ADAPTERS = {"lora": apply_lora, "svfit": apply_svfit}
