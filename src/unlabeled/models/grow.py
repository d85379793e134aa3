"""Model growth: a larger transformer that starts where a smaller pretrained one stopped.

bert2BERT (Chen et al. 2022, "bert2BERT: Towards Reusable Pretrained Language Models", ACL)
widens every layer by *function-preserving initialisation* (FPI, after Net2Net, Chen et al.
2016): each new unit copies an old one, chosen by a map ``g`` from new to old units, and the
weights that read a copied unit are shared among its copies, so every layer computes the same
values, merely repeated. The shares are uneven here (seeded, summing to 1; Net2Net's are
equal): equal shares leave the grown model symmetric under swapping the copies, which then
get equal gradients and never part, and it trains as the small model repeated. Its *advanced
knowledge initialisation* (AKI) takes the new
units' weights from the next layer instead (the upper layer's knowledge; no longer the same
function, and reported to converge faster). Depth grows by stacking the layers again on top.

Here, for the pre-norm :class:`~unlabeled.models.transformer.PatchTransformer`:

- ``g(i) = i mod old``: with a width ratio that is a whole number every unit has the same
  number of copies, so each layer norm sees the same mean and variance and the residual stream
  of the grown model is the old one repeated — exactly, not approximately. Heads keep their
  width and are copied whole (``tiny``'s 4 heads of 32 become ``small``'s 8), so attention
  patterns are unchanged. ``base`` has heads of 64, which no copy of 32-wide heads computes:
  growing into it is refused.
- Depth: the stacked copies of the blocks have their two output projections (attention's and
  the MLP's last layer) zeroed, so each starts as the identity on the residual stream and the
  grown model computes the same function (ReZero's start, Bachlechner et al. 2021); their
  attention and MLP input weights are the copied block's, which training then puts to use.
- Heads tied to the token embedding (the MLM head, a causal model's output layer) read a
  repeated vector against repeated embeddings, which would double every logit: the layer norm
  before them is scaled by its copies' shares, so the logits stay the same.
"""

from __future__ import annotations

import re

import torch

MODES = ("fpi", "aki")
_BLOCK = re.compile(r"^(?P<prefix>.*trunk\.blocks\.)(?P<i>\d+)\.(?P<rest>.+)$")


def _map(old: int, new: int) -> torch.Tensor:
    """Which old unit each of ``new`` units copies: ``i mod old`` (every unit ``new // old`` times)."""
    return torch.arange(new) % old


def _widen(t: torch.Tensor, dim: int, old: int, new: int, split: Shapes | None = None) -> torch.Tensor:
    """``t`` with axis ``dim`` grown from ``old`` to ``new`` units by copying; with ``split``
    each copied input's weight is shared among its copies (the reading side of FPI) in the
    uneven shares :meth:`Shapes.shares` draws."""
    out = t.index_select(dim, _map(old, new))
    if split is None:
        return out
    shape = [1] * t.dim()
    shape[dim] = new
    return out * split.shares(old, new).to(out.dtype).view(shape)


class Shapes:
    """Width, depth and heads of the model grown from (``old``) and into (``new``)."""

    def __init__(self, old: tuple[int, int, int], new: tuple[int, int, int], seed: int = 0) -> None:
        (self.w0, self.d0, self.h0), (self.w1, self.d1, self.h1) = old, new
        fewer = [
            f"{name} {a} -> {b}" for name, a, b in zip(("width", "depth", "heads"), old, new, strict=True) if b < a
        ]
        if fewer:  # named axis by axis: a larger model with fewer, wider heads is refused for its heads
            raise ValueError(
                f"growth keeps or adds to each of width, depth and heads; here {', '.join(fewer)} "
                f"((width, depth, heads) {old} -> {new})"
            )
        if self.w1 % self.w0 or self.d1 % self.d0:
            raise ValueError(
                f"width {self.w0} -> {self.w1} and depth {self.d0} -> {self.d1}: each must grow by a whole factor"
            )
        if self.w0 // self.h0 != self.w1 // self.h1:
            raise ValueError(
                f"heads of width {self.w0 // self.h0} cannot become heads of width {self.w1 // self.h1} "
                "and compute the same function"
            )
        self.copies = self.w1 // self.w0
        self.generator = torch.Generator().manual_seed(seed)
        self._tied: torch.Tensor | None = None

    def shares(self, old: int, new: int) -> torch.Tensor:
        """How much of an old unit's reading weight each of its ``new // old`` copies takes:
        positive, summing to 1 over the copies, drawn (seeded) for each weight. Equal shares
        (Net2Net's 1/copies) left the grown model symmetric under swapping its copies: they
        got equal gradients, stayed equal under AdamW, and the grown model trained as the
        small one repeated. Any shares summing to 1 compute the same function."""
        copies = new // old
        if copies == 1:
            return torch.ones(new)
        w = torch.empty(copies, old).uniform_(0.5, 1.5, generator=self.generator)
        return (w / w.sum(0)).reshape(-1)  # unit i copies old unit i % old: its share is [i // old, i % old]

    def tied_shares(self) -> torch.Tensor:
        """The shares of the layer norm before a head tied to the embedding, one draw for both
        its weight and its bias (each copy's output is that share of the old one's)."""
        if self._tied is None:
            self._tied = self.shares(self.w0, self.w1)
        return self._tied


def _square(t: torch.Tensor, s: Shapes) -> torch.Tensor:
    """A width x width weight (rows written to the residual stream, columns read from it)."""
    return _widen(_widen(t, 0, s.w0, s.w1), 1, s.w0, s.w1, split=s)


def _block_param(rest: str, t: torch.Tensor, s: Shapes) -> torch.Tensor:
    """One parameter of a transformer block, widened. Residual-stream axes and the heads'
    concatenation both map by ``i mod width`` (heads are contiguous slices of it)."""
    w0, w1 = s.w0, s.w1
    if rest.startswith(("norm1.", "norm2.")) or rest in ("proj.bias", "mlp.2.bias"):
        return _widen(t, 0, w0, w1)
    if rest == "qkv.weight":  # rows (q|k|v, heads, head width): each third widened alike
        rows = torch.cat([_widen(part, 0, w0, w1) for part in t.chunk(3, 0)])
        return _widen(rows, 1, w0, w1, split=s)
    if rest == "qkv.bias":
        return torch.cat([_widen(part, 0, w0, w1) for part in t.chunk(3, 0)])
    if rest == "proj.weight":
        return _square(t, s)
    if rest == "mlp.0.weight":
        return _widen(_widen(t, 0, t.shape[0], t.shape[0] * s.copies), 1, w0, w1, split=s)
    if rest == "mlp.0.bias":
        return _widen(t, 0, len(t), len(t) * s.copies)
    if rest == "mlp.2.weight":
        return _widen(_widen(t, 0, w0, w1), 1, t.shape[1], t.shape[1] * s.copies, split=s)
    raise KeyError(rest)


# the parts of an objective's state outside the blocks: how each is widened
_WIDEN_LAST = ("encoder.token_embed.weight", "encoder.pos", "encoder.cls")


def _other_param(key: str, t: torch.Tensor, s: Shapes, tied_norm: str | None) -> torch.Tensor:
    w0, w1 = s.w0, s.w1
    if key in _WIDEN_LAST:
        return _widen(t, t.dim() - 1, w0, w1)
    if key.rsplit(".", 1)[0] == tied_norm:  # the norm before a head tied to the embedding: logits stay the same
        return _widen(t, 0, w0, w1) * s.tied_shares().to(t.dtype)
    if key.endswith("trunk.norm.weight") or key.endswith("trunk.norm.bias"):
        return _widen(t, 0, w0, w1)
    if key == "transform.0.weight":  # the MLM head's dense layer
        return _square(t, s)
    if key == "transform.0.bias":
        return _widen(t, 0, w0, w1)
    if key == "out_bias":  # one per vocabulary entry
        return t
    raise KeyError(key)


# objective -> the layer norm whose output a head tied to the token embedding reads
TIED_NORMS: dict[str, str | None] = {
    "mlm": "transform.2",
    "clm": "encoder.trunk.norm",
    "simcse": None,
}


def grow_state(
    state: dict[str, torch.Tensor],
    old: tuple[int, int, int],
    new: tuple[int, int, int],
    objective: str,
    mode: str = "fpi",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """The state dict of ``objective`` (``mlm``, ``clm`` or ``simcse``) over a transformer of
    (width, depth, heads) ``old``, grown to ``new`` by bert2BERT's ``fpi`` (the same function)
    or ``aki`` (new units from the next layer). Stacked blocks start as the identity."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if objective not in TIED_NORMS:
        raise ValueError(f"growing a {objective} run is not supported; grow runs of {', '.join(TIED_NORMS)}")
    s = Shapes(old, new, seed)
    tied = TIED_NORMS[objective]
    out: dict[str, torch.Tensor] = {}
    for key, t in state.items():
        m = _BLOCK.match(key)
        if m is None:
            out[key] = _other_param(key, t, s, tied)
            continue
        if mode == "aki":  # the same parameter of the next block (the last block's own)
            upper = state[f"{m['prefix']}{min(int(m['i']) + 1, s.d0 - 1)}.{m['rest']}"]
            out[key] = _aki_block_param(m["rest"], t, upper, s)
        else:
            out[key] = _block_param(m["rest"], t, s)
    return _stack(out, s)


def _aki_block_param(rest: str, t: torch.Tensor, upper: torch.Tensor, s: Shapes) -> torch.Tensor:
    """AKI for one block parameter: FPI's widening, then the new output units (the rows past
    the old ones) replaced by those FPI gives the next block's same parameter."""
    grown = _block_param(rest, t, s)
    if rest.startswith(("norm1.", "norm2.")):
        return grown
    from_upper = _block_param(rest, upper, s)
    if rest.startswith("qkv."):  # each third (q, k, v) has its own new rows
        thirds = zip(grown.chunk(3, 0), from_upper.chunk(3, 0), strict=True)
        return torch.cat([torch.cat([g[: len(g) // s.copies], u[len(u) // s.copies :]]) for g, u in thirds])
    return torch.cat([grown[: t.shape[0]], from_upper[t.shape[0] :]])


_OUTPUTS = ("proj.weight", "proj.bias", "mlp.2.weight", "mlp.2.bias")  # a block's writes to the residual stream


def _stack(state: dict[str, torch.Tensor], s: Shapes) -> dict[str, torch.Tensor]:
    """Depth: the blocks repeated on top (block ``i`` copies block ``i mod depth``), each
    copy's attention and MLP output projections zeroed so it starts as the identity."""
    out = dict(state)
    for key, t in state.items():
        m = _BLOCK.match(key)
        if m is None:
            continue
        for i in range(int(m["i"]) + s.d0, s.d1, s.d0):
            out[f"{m['prefix']}{i}.{m['rest']}"] = torch.zeros_like(t) if m["rest"] in _OUTPUTS else t.clone()
    return out
