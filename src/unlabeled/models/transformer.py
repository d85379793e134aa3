"""A patch-token transformer for every geometry: 1D series, 2D images and spectrograms, 3D
volumes.

A sample of shape ``(C, *spatial)`` is cut into non-overlapping patches by one strided
convolution (``Conv1d``/``Conv2d``/``Conv3d``), each patch becomes a token, a positional
embedding over the patch grid is added, and pre-norm transformer blocks follow (ViT,
Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; fixed 2D sin-cos positions as in
MAE, He et al. 2022, generalised here to any number of axes).

Pooling for ``embed``: the token mean (default), the class token (``cls``), or ``stats``: the
mean, maximum and standard deviation of the tokens side by side (3 x width), the statistics
pooling of speaker embeddings (Snyder et al. 2018, "X-vectors") with the max of TS2Vec (Yue et
al. 2022). On the UCR sets MAE features gain 3-5 points of linear-probe accuracy from it
(benchmarks/HISTORY.md): a token mean washes out where in a series a shape occurs and how strongly.
``layers``: the token mean of every layer side by side ((depth + 1) x width), for frozen
probes on models whose last layer serves the pretraining loss more than the probe (an MLM's).

Padding: a patch whose every input value is NaN is a padding token (a series shorter than
the batch's length, say). Padding tokens are never attended to and are left out of the mean
pool, so variable-length samples batch without a separate mask argument.

Text: with ``vocab`` set, a sample is a sequence of ``L`` token ids (input shape ``(L,)``)
and the front end is a token embedding instead of the patch convolution, with learned
positions (BERT, Devlin et al. 2019); id 0 is padding. ``causal=True`` lets each token attend
only to itself and the tokens before it (a language model, Radford et al. 2018). ``dropout``
(default 0) drops activations on every residual branch and the token embeddings while
training, as BERT does.

The pieces objectives need are public: ``tokenize`` (patches -> tokens with positions, and the
padding mask), ``run`` (blocks + final norm over any subset of tokens), ``patchify`` (the
pixel targets of MAE) and ``grid`` (the patch grid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

POOLS = ("mean", "cls", "stats", "layers")
# name -> (width, depth, heads)
TRANSFORMER_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (128, 4, 4),
    "small": (256, 8, 8),
    "base": (384, 12, 6),
}


def sincos_embedding(grid: Sequence[int], dim: int) -> torch.Tensor:
    """Fixed sin-cos positions for a grid of any number of axes, ``(prod(grid), dim)``: each
    axis gets an equal even share of the channels (the rest stay zero)."""
    axes = [torch.arange(n, dtype=torch.float64) for n in grid]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(grid))
    share = 2 * (dim // (2 * len(grid)))
    out = torch.zeros(coords.shape[0], dim, dtype=torch.float64)
    if share:
        freqs = 1.0 / 10000 ** (torch.arange(share // 2, dtype=torch.float64) / (share // 2))
        for a in range(len(grid)):
            angle = coords[:, a : a + 1] * freqs
            out[:, a * share : (a + 1) * share] = torch.cat([angle.sin(), angle.cos()], 1)
    return out.float()


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).

    ``bias=False`` leaves the biases out of its four linear layers, as PaLM (Chowdhery et al.
    2022) and ViT-22B (Dehghani et al. 2023, for accelerator utilisation) do: in bf16 on a CPU
    each bias costs a pass over the layer's output forward (``addmm`` first copies it into the
    output) and a reduction backward, memory-bound work the matrix units do not speed up; the
    base SimCLR step ran 4-17% faster without them in paired rounds (benchmarks/HISTORY.md, MFU section)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden, bias=bias), nn.GELU(), nn.Linear(hidden, dim, bias=bias))
        self.drop = nn.Dropout(dropout)  # on each residual branch, as BERT (SimCSE's views)

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None = None) -> torch.Tensor:
        """``attend``: optional bool mask (B, 1, 1, N), True where a key may be attended to."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = attention(q, k, v, attend)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.mlp(self.norm2(x)))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
    """Softmax attention. On the CPU in bf16, written out as two matmuls: PyTorch's fused CPU
    kernel is 3-8x slower there (forward+backward, 128 x 4 heads x 12-104 tokens x 32,
    BENCHMARKS.md); elsewhere the fused ``scaled_dot_product_attention``."""
    if q.device.type == "cpu" and q.dtype == torch.bfloat16:
        a = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if attend is None:
            return a.softmax(-1) @ v
        # the lowest finite value, not -inf: a query with no key to attend to (a short series'
        # visible patches all padding under MAE's mask) would softmax to nan; it reads nothing,
        # as the fused kernel gives it
        p = a.masked_fill(~attend, torch.finfo(a.dtype).min).softmax(-1)
        return (p * attend.any(-1, keepdim=True)) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attend)


def attention_mask(pad: torch.Tensor | None) -> torch.Tensor | None:
    """Key mask for :class:`Block` from a padding mask (B, N) (True = padding)."""
    return None if pad is None else (~pad)[:, None, None, :]


class Blocks(nn.Module):
    """A stack of blocks with a final norm (the trunk of encoders, decoders and predictors)."""

    def __init__(self, dim: int, depth: int, heads: int, bias: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, bias=bias, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        pad: torch.Tensor | None = None,
        causal: bool = False,
        states: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The blocks and the final norm; ``states``, where given, receives the input and each
        block's output but the last (the residual stream before the final norm)."""
        attend = attention_mask(pad)
        if causal:
            n = x.shape[1]
            past = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()[None, None]
            attend = past if attend is None else attend & past
        for blk in self.blocks:
            if states is not None:
                states.append(x)
            x = blk(x, attend)
        return self.norm(x)


def init_weights(module: nn.Module) -> None:
    """Xavier-uniform linear layers and unit layer norms, as ViT/MAE initialise."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PatchTransformer(nn.Module):
    """Transformer encoder over the patches of ``(C, *spatial)`` samples (1 to 3 spatial axes).

    ``forward(x) -> (B, N, width)`` patch tokens; ``embed(x) -> (B, dim)``: the mean of the
    non-padding tokens, the class token with ``pool="cls"`` (``dim == width`` for both), or
    their mean, max and standard deviation with ``pool="stats"`` (``dim == 3 * width``), or
    the token mean of every layer with ``pool="layers"`` (``dim == (depth + 1) * width``)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        size: str = "tiny",
        patch: Sequence[int] | int | None = None,
        pool: str = "mean",
        positions: str = "sincos",
        bias: bool = True,
        vocab: int = 0,
        causal: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if size not in TRANSFORMER_SIZES:
            raise ValueError(f"unknown transformer size {size!r}; choose from {', '.join(TRANSFORMER_SIZES)}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
        if positions not in ("sincos", "learned"):
            raise ValueError(f"positions must be 'sincos' or 'learned', got {positions!r}")
        if bias not in (True, False):  # 1 and 0 compare equal; "False" from a command line must not
            raise ValueError(f"bias must be true or false, got {bias!r}")
        self.vocab, self.causal = int(vocab), bool(causal)
        if self.causal and pool == "cls":  # the class token comes first: causal attention shows it only itself
            raise ValueError("pool 'cls' needs a bidirectional encoder: a causal one's class token sees no other token")
        if self.vocab:  # token ids (L,): one "channel", one axis of length L, patches of one token
            if len(input_shape) != 1:
                raise ValueError(f"a token transformer takes sequences of ids, shape (L,), not {tuple(input_shape)}")
            input_shape, patch, positions = (1, int(input_shape[0])), (1,), "learned"
        channels, *spatial = (int(s) for s in input_shape)
        if not 1 <= len(spatial) <= 3:
            raise ValueError(f"samples must have 1 to 3 axes after the channels, got shape {tuple(input_shape)}")
        if isinstance(patch, int | float):
            patch = (patch,) * len(spatial)
        patch = tuple(int(p) for p in (patch or default_patch(spatial)))
        if len(patch) != len(spatial):
            raise ValueError(f"patch {patch} does not match the {len(spatial)} axes of shape {tuple(input_shape)}")
        if any(not 1 <= p <= s for p, s in zip(patch, spatial, strict=True)):
            raise ValueError(f"patch {patch}: each side must be from 1 to the sample's ({'x'.join(map(str, spatial))})")
        dim, depth, heads = TRANSFORMER_SIZES[size]
        self.input_shape, self.patch, self.pool, self.width = (channels, *spatial), patch, pool, dim
        self.dim = dim * {"stats": 3, "layers": depth + 1}.get(pool, 1)
        self.grid = tuple(math.ceil(s / p) for s, p in zip(spatial, patch, strict=True))
        self.num_patches = math.prod(self.grid)
        self.patch_dim = channels * math.prod(patch)
        if self.vocab:
            self.input_shape = (int(spatial[0]),)
            self.token_embed = nn.Embedding(self.vocab, dim)
        else:
            conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[len(spatial)]
            self.patch_embed = conv(channels, dim, kernel_size=patch, stride=patch)
        pos = sincos_embedding(self.grid, dim)[None]
        if positions == "learned":
            self.pos = nn.Parameter(pos.clone())
        else:
            self.register_buffer("pos", pos, persistent=False)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if pool == "cls" else None
        self.bias = bool(bias)  # decoders and predictors built on this encoder follow it
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.trunk = Blocks(dim, depth, heads, bias=self.bias, dropout=self.dropout)
        init_weights(self)
        if self.vocab:
            nn.init.normal_(self.token_embed.weight, std=0.02)
            nn.init.normal_(self.pos, std=0.02)
        else:
            w = self.patch_embed.weight
            nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if self.cls is not None:
            nn.init.normal_(self.cls, std=0.02)

    @property
    def n_prefix(self) -> int:
        """Tokens ``run`` puts before the patch tokens (the class token)."""
        return 0 if self.cls is None else 1

    def _pad_to_grid(self, x: torch.Tensor, value: float) -> torch.Tensor:
        extra = [g * p - s for g, p, s in zip(self.grid, self.patch, x.shape[2:], strict=True)]
        if not any(extra):
            return x
        pads = [v for e in reversed(extra) for v in (0, e)]
        return F.pad(x, pads, value=value)

    def padding(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, N) True for patches whose every value is NaN; None when there is no NaN."""
        nan = torch.isnan(x)
        if not bool(nan.any()):
            return None
        nan = self._pad_to_grid(nan.all(1, keepdim=True).float(), 1.0)
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[len(self.patch)]
        return (pool(nan, self.patch, self.patch) > 0.999).flatten(1)

    def tokenize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patch tokens with positions (B, N, dim) and the padding mask (B, N) or None."""
        if self.vocab:
            pad = x == 0
            tokens = F.dropout(self.token_embed(x), self.dropout, self.training)
            return tokens + self.pos[:, : x.shape[1]].to(tokens.dtype), pad if bool(pad.any()) else None
        pad = self.padding(x)
        if pad is not None:
            x = torch.nan_to_num(x, nan=0.0)
        x = self._pad_to_grid(x, 0.0)
        # (B, N, dim) made row-major once: the residual stream inherits the layout of the first
        # tokens, and the transposed view of the convolution's output made every layer norm,
        # residual add and head reshape copy or stride through it (benchmarks/HISTORY.md, MFU section)
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2).contiguous()
        return tokens + self.pos.to(tokens.dtype), pad

    def run(
        self, tokens: torch.Tensor, pad: torch.Tensor | None = None, states: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """The blocks and final norm over ``tokens`` (any subset of a sample's patch tokens),
        with the class token first when ``pool="cls"``; ``states`` as :class:`Blocks` fills it."""
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], 1)
            if pad is not None:
                pad = F.pad(pad, (1, 0), value=False)
        return self.trunk(tokens, pad, self.causal, states)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, pad = self.tokenize(x)
        return self.run(tokens, pad)[:, self.n_prefix :]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(*self.tokenize(x))

    def pooled(self, tokens: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """The embedding of tokenised inputs, pooled as ``pool`` says (ECO's guard pools its
        corrupted tokens here: its own token mean ignored the pool and the width it declares)."""
        states: list[torch.Tensor] | None = [] if self.pool == "layers" else None
        out = self.run(tokens, pad, states)
        if self.cls is not None:
            return out[:, 0]
        if states is not None:
            return layer_means(states, out, pad)
        return token_stats(out, pad) if self.pool == "stats" else pool_tokens(out, pad)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, N, C * prod(patch)): each patch's values, in token order."""
        if self.vocab:
            raise ValueError("a token transformer has no pixel patches to reconstruct; use --method mlm for text")
        x = self._pad_to_grid(x, float("nan") if torch.isnan(x).any() else 0.0)
        b, c = x.shape[:2]
        nd = len(self.patch)
        shape = [b, c]
        for g, p in zip(self.grid, self.patch, strict=True):
            shape += [g, p]
        x = x.reshape(shape)
        order = [0, *range(2, 2 + 2 * nd, 2), 1, *range(3, 3 + 2 * nd, 2)]
        return x.permute(order).reshape(b, self.num_patches, self.patch_dim)


def pool_tokens(tokens: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Mean over the non-padding tokens of each sample."""
    if pad is None:
        return tokens.mean(1)
    keep = (~pad).unsqueeze(-1).to(tokens.dtype)
    return (tokens * keep).sum(1) / keep.sum(1).clamp(min=1)


def layer_means(states: Sequence[torch.Tensor], out: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Token means of every layer side by side, (B, (depth + 1) * width): the input tokens and
    each inner residual stream, layer-normed without weights so that no layer's scale drowns
    the others, then the final output. The lower layers keep what the last one, trained to
    predict single tokens, drops (SimCSE, Gao et al. 2021, found first-and-last-layer averages
    better than the last layer alone for BERT's sentence embeddings)."""
    normed = [F.layer_norm(s, s.shape[-1:]) for s in states]
    return torch.cat([pool_tokens(t, pad) for t in (*normed, out)], 1)


def max_tokens(tokens: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Maximum over the non-padding tokens of each sample."""
    if pad is not None:
        tokens = tokens.masked_fill(pad.unsqueeze(-1), torch.finfo(tokens.dtype).min)
    return tokens.amax(1)


def token_stats(tokens: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
    """Mean, max and standard deviation over the non-padding tokens, side by side: (B, 3 * width)."""
    mean = pool_tokens(tokens, pad)
    std = (pool_tokens((tokens - mean.unsqueeze(1)).square(), pad) + 1e-8).sqrt()
    return torch.cat([mean, max_tokens(tokens, pad), std], 1)


def default_patch(spatial: Sequence[int]) -> tuple[int, ...]:
    """A power-of-two patch giving about 7-14 patches along the shortest axis (at most 16):
    28x28 -> 4, 224x224 -> 16, 32^3 -> 4."""
    side = min(spatial)
    p = 2 ** max(0, math.floor(math.log2(max(side, 1) / 7)))
    return (min(p, 16),) * len(spatial)
