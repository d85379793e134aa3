"""bert2BERT growth: FPI computes the same function (tokens, MLM and next-token logits), AKI
does not, stacked blocks start as the identity, and sizes it cannot reach are refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.models.grow import grow_state
from unlabeled.models.transformer import TRANSFORMER_SIZES, PatchTransformer
from unlabeled.objectives import build_objective
from unlabeled.objectives.clm import next_token_logits
from unlabeled.train.grow import grow

VOCAB, LENGTH = 300, 24


def _objective(method: str, size: str, seed: int = 0):
    torch.manual_seed(seed)
    enc = PatchTransformer((LENGTH,), size, vocab=VOCAB, causal=method == "clm", bias=True)
    obj = build_objective(method, enc, None)
    with torch.no_grad():  # every weight random, biases and norms too: nothing holds by accident
        for p in obj.parameters():
            p.normal_(0, 0.2 if p.dim() > 1 else 0.5)
    return obj.eval()


def _ids(seed: int = 1) -> torch.Tensor:
    x = torch.randint(4, VOCAB, (3, LENGTH), generator=torch.Generator().manual_seed(seed))
    x[0, 15:] = 0  # padding that attention and pooling must skip
    return x


def _mlm_logits(obj, x):
    return obj.transform(obj.encoder(x)) @ obj.encoder.token_embed.weight.t() + obj.out_bias


def _grown(method: str, mode: str = "fpi"):
    small = _objective(method, "tiny")
    big = _objective(method, "small", seed=1)
    big.load_state_dict(
        grow_state(small.state_dict(), TRANSFORMER_SIZES["tiny"], TRANSFORMER_SIZES["small"], method, mode)
    )
    return small, big


@torch.no_grad()
def test_fpi_growth_of_an_mlm_model_computes_the_same_tokens_and_logits():
    small, big = _grown("mlm")
    x = _ids()
    tokens, grown = small.encoder(x), big.encoder(x)
    assert grown.shape[-1] == 2 * tokens.shape[-1]
    torch.testing.assert_close(grown[..., :128], tokens, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(grown[..., 128:], tokens, atol=1e-4, rtol=1e-4)  # the copies
    torch.testing.assert_close(_mlm_logits(big, x), _mlm_logits(small, x), atol=1e-3, rtol=1e-4)
    # pooled embeddings: the same vector repeated, so cosine similarities are unchanged
    torch.testing.assert_close(big.encoder.embed(x)[:, :128], small.encoder.embed(x), atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_fpi_growth_of_a_causal_model_keeps_its_next_token_logits():
    small, big = _grown("clm")
    x = _ids()
    torch.testing.assert_close(
        next_token_logits(big.encoder, x), next_token_logits(small.encoder, x), atol=1e-3, rtol=1e-4
    )


@torch.no_grad()
def test_stacked_blocks_start_as_the_identity_and_copy_the_lower_blocks_inputs():
    small, big = _grown("mlm")
    blocks = big.encoder.trunk.blocks
    assert len(blocks) == 8
    assert torch.equal(blocks[5].qkv.weight, blocks[1].qkv.weight)
    assert not blocks[5].proj.weight.any() and not blocks[5].mlp[2].weight.any()
    h = torch.randn(2, LENGTH, 256)
    torch.testing.assert_close(blocks[6](h), h)


@torch.no_grad()
def test_aki_takes_new_units_from_the_next_layer_and_is_not_the_same_function():
    small, fpi = _grown("mlm", "fpi")
    _, aki = _grown("mlm", "aki")
    s, a = small.encoder.trunk.blocks, aki.encoder.trunk.blocks
    # block 0's new MLP units are block 1's (FPI's would repeat block 0's own)
    assert torch.equal(a[0].mlp[0].bias[512:], s[1].mlp[0].bias)
    assert torch.equal(a[0].mlp[0].bias[:512], s[0].mlp[0].bias)
    x = _ids()
    assert not torch.allclose(aki.encoder(x), fpi.encoder(x), atol=1e-3)


def test_growing_into_wider_heads_or_smaller_models_is_refused():
    small = _objective("mlm", "tiny").state_dict()
    with pytest.raises(ValueError, match="heads of width 32"):
        grow_state(small, TRANSFORMER_SIZES["tiny"], TRANSFORMER_SIZES["base"], "mlm")
    with pytest.raises(ValueError, match="growth keeps or adds to each of width, depth and heads; here width"):
        grow_state(small, TRANSFORMER_SIZES["small"], TRANSFORMER_SIZES["tiny"], "mlm")
    with pytest.raises(ValueError, match="not supported"):
        grow_state(small, TRANSFORMER_SIZES["tiny"], TRANSFORMER_SIZES["small"], "mae")


@pytest.mark.slow
def test_a_grown_run_continues_pretraining_from_every_weight(wordnet_small, tmp_path):
    tiny = ul.pretrain(wordnet_small, tmp_path / "tiny", method="mlm", epochs=1, batch_size=64, precision="fp32")
    big = grow(tiny, "small", tmp_path / "small")
    assert big.config["encoder"]["size"] == "small" and big.config["init"]["run"] == str(tiny.path.resolve())
    x = tiny.modality().prepare(wordnet_small.get(wordnet_small.indices("test")[:8]))
    with torch.no_grad():
        torch.testing.assert_close(big.encoder()(x)[..., :128], tiny.encoder()(x), atol=1e-4, rtol=1e-4)
    more = ul.pretrain(wordnet_small, tmp_path / "more", init=big, epochs=0.5, batch_size=64, precision="fp32")
    assert more.config["init"]["loaded"] == "every weight" and more.config["encoder"]["size"] == "small"
    with pytest.raises(UnlabeledError, match="heads of width"):
        grow(tiny, "base", tmp_path / "base")
    with pytest.raises(UnlabeledError, match="already holds a run"):
        grow(tiny, "small", tmp_path / "small")
    with pytest.raises(UnlabeledError, match="is already tiny; grow makes a larger model"):
        grow(tiny, "tiny", tmp_path / "same")
    forgot = tmp_path / "forgot"  # a forget output's config (the method it forgot with beside the objective's)
    shutil.copytree(tiny.path, forgot)
    config = json.loads((forgot / "config.json").read_text())
    config["method"]["unlearning"] = "ga"
    (forgot / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnlabeledError, match="is the output of forget: grow the run it came from"):
        grow(forgot, "small", tmp_path / "grown-forgot")


def test_the_copies_of_a_grown_model_part_when_it_trains():
    """With equal shares (1 / copies) the copies got equal gradients and stayed equal under
    AdamW: the grown model trained as the small one repeated."""
    small, big = _grown("clm")
    big.train()
    opt = torch.optim.AdamW(big.parameters(), lr=1e-3, weight_decay=0.05)
    for step in range(3):
        x = _ids(seed=10 + step)
        logits = next_token_logits(big.encoder, x)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    emb = big.encoder.token_embed.weight
    assert (emb[:, :128] - emb[:, 128:]).abs().max() > 1e-4  # exactly 0.0 before


@torch.no_grad()
def test_ecos_guard_pools_as_its_model_does():
    """Its embed took the token mean whatever the pool, at another width than the dim it declared."""
    from unlabeled.models.eco import CorruptedPrompts

    for pool in ("mean", "stats", "layers"):
        inner = PatchTransformer((LENGTH,), "tiny", vocab=VOCAB, causal=True, pool=pool).eval()
        weights = {"weight": torch.full((VOCAB,), -1.0), "bias": torch.tensor(-1.0), "marker": torch.tensor([5])}
        guard = CorruptedPrompts(inner, weights, 1.0)  # flags no prompt: the model itself
        x = _ids()
        assert guard.embed(x).shape[-1] == guard.dim
        torch.testing.assert_close(guard.embed(x), inner.embed(x))
