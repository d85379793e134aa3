import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unlabeled import UnlabeledError
from unlabeled.modalities.series import SeriesModality
from unlabeled.models import build_encoder
from unlabeled.models.transformer import PatchTransformer, attention, default_patch, sincos_embedding
from unlabeled.objectives import build_objective


@pytest.mark.parametrize(
    ("shape", "patch", "grid"),
    [
        ((3, 64), (16,), (4,)),
        ((1, 28, 28), (4, 4), (7, 7)),
        ((1, 3, 40), (1, 8), (3, 5)),
        ((2, 16, 16, 16), (8, 8, 8), (2, 2, 2)),
    ],
)
def test_one_encoder_for_every_geometry(shape, patch, grid):
    enc = PatchTransformer(shape, "tiny", patch)
    x = torch.randn(2, *shape)
    assert enc.grid == grid
    assert enc(x).shape == (2, enc.num_patches, enc.dim)
    assert enc.embed(x).shape == (2, enc.dim)
    assert enc.patchify(x).shape == (2, enc.num_patches, enc.patch_dim)


def test_patchify_follows_the_token_order():
    """Token i of the patch embedding is the linear map of patchify's row i."""
    enc = PatchTransformer((2, 12, 8), "tiny", (4, 4))
    x = torch.randn(3, 2, 12, 8)
    conv = enc.patch_embed(x).flatten(2).transpose(1, 2)
    linear = enc.patchify(x) @ enc.patch_embed.weight.reshape(enc.dim, -1).T + enc.patch_embed.bias
    torch.testing.assert_close(conv, linear, rtol=1e-4, atol=1e-4)


def test_nan_padding_is_masked_out():
    """A series padded with NaN embeds exactly as its valid patches alone would."""
    torch.manual_seed(0)
    enc = PatchTransformer((1, 1, 64), "tiny", (1, 8)).eval()
    x = torch.randn(2, 1, 1, 64)
    x[0, ..., 40:] = float("nan")  # sample 0: 5 valid patches of 8
    tokens, pad = enc.tokenize(x)
    assert pad.tolist()[0] == [False] * 5 + [True] * 3 and not pad[1].any()
    alone = enc.run(tokens[:1, :5]).mean(1)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x)[:1], alone, rtol=1e-4, atol=1e-5)
        assert torch.isfinite(enc(x)).all()


def test_stats_pool_of_padded_series():
    """``pool="stats"``: mean, max and std of the valid tokens only (3 x width), with finite
    gradients; the objectives' token width stays ``width``."""
    torch.manual_seed(0)
    enc = PatchTransformer((1, 1, 64), "tiny", (1, 8), pool="stats").eval()
    assert enc.dim == 3 * enc.width
    x = torch.randn(2, 1, 1, 64)
    x[0, ..., 40:] = float("nan")
    tokens, _ = enc.tokenize(x)
    with torch.no_grad():
        alone = enc.run(tokens[:1, :5])[0]
        want = torch.cat([alone.mean(0), alone.amax(0), alone.std(0, unbiased=False)])
        torch.testing.assert_close(enc.embed(x)[0], want, rtol=1e-4, atol=1e-4)
    y = torch.randn(3, 1, 1, 64, requires_grad=True)
    enc.train().embed(y).sum().backward()
    assert torch.isfinite(y.grad).all()
    series = SeriesModality((1, 64), [0.0], [1.0], patch_len=8)
    for method in ("mae", "jepa", "simclr"):  # token width for MAE/JEPA, the pooled dim for SimCLR
        obj = build_objective(method, enc, series)
        x = series.prepare(np.random.default_rng(0).normal(size=(4, 1, 64)).astype(np.float32), "cpu")
        loss, _ = obj.loss(x, torch.Generator().manual_seed(0))
        assert torch.isfinite(loss)


def test_layers_pool_is_every_layers_token_mean_of_the_real_tokens():
    """``pool="layers"``: the token mean of the input and of each block's output (layer-normed)
    and the final output, side by side; padding tokens are left out and the last slice is the
    default mean pool of the same weights."""
    torch.manual_seed(0)
    enc = PatchTransformer((16,), "tiny", pool="layers", vocab=50).eval()
    depth = len(enc.trunk.blocks)
    assert enc.dim == (depth + 1) * enc.width
    ids = torch.randint(1, 50, (2, 16))
    ids[0, 9:] = 0  # sample 0: 9 real tokens
    with torch.no_grad():
        got = enc.embed(ids)
        x, _ = enc.tokenize(ids[:1, :9])
        want = []
        for blk in enc.trunk.blocks:
            want.append(F.layer_norm(x, x.shape[-1:]).mean(1))
            x = blk(x)
        want.append(enc.trunk.norm(x).mean(1))
        torch.testing.assert_close(got[:1], torch.cat(want, 1), rtol=1e-4, atol=1e-5)
        enc.pool = "mean"
        torch.testing.assert_close(got[:, -enc.width :], enc.embed(ids), rtol=1e-5, atol=1e-6)


def test_class_token_and_learned_positions():
    enc = PatchTransformer((1, 16, 16), "tiny", 4, pool="cls", positions="learned")
    assert enc.n_prefix == 1 and isinstance(enc.pos, torch.nn.Parameter)
    x = torch.randn(2, 1, 16, 16)
    assert enc(x).shape == (2, 16, enc.dim) and enc.embed(x).shape == (2, enc.dim)


def test_positions_and_defaults():
    pos = sincos_embedding((3, 5), 32)
    assert pos.shape == (15, 32) and torch.unique(pos, dim=0).shape[0] == 15
    assert default_patch((28, 28)) == (4, 4) and default_patch((224, 224)) == (16, 16)
    with pytest.raises(UnlabeledError, match="patch"):
        build_encoder("transformer", "tiny", (1, 28, 28), patch=(4, 4, 4))
    with pytest.raises(UnlabeledError, match="transformer"):
        build_encoder("cnn", "tiny", (1, 100))


def test_bf16_attention_matches_the_fused_kernel_and_a_query_with_no_key_reads_nothing():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 5, 8, generator=g) for _ in range(3))
    attend = torch.ones(3, 1, 1, 5, dtype=torch.bool)
    attend[1, ..., 3:] = False  # padding
    attend[2] = False  # every key padding: a short series' visible patches under MAE's mask
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attend)
    mine = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attend).float()
    assert torch.isfinite(mine).all()
    torch.testing.assert_close(mine[:2], fused[:2], atol=0.05, rtol=0.05)
    assert (mine[2] == 0).all()
    q.requires_grad_(True)
    attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attend).float().sum().backward()
    assert torch.isfinite(q.grad).all()


@pytest.mark.parametrize("patch", [(0, 0), (-1, 8), (100, 100)])
def test_a_patch_of_no_size_or_larger_than_the_sample_is_refused_in_words(patch):
    """patch=0,0 divided by zero, -1,8 made a negative dimension, and 100 a side on a 12-voxel
    volume built a 129M-parameter 'tiny' transformer."""
    with pytest.raises(UnlabeledError, match="each side must be from 1 to the sample's"):
        build_encoder("transformer", "tiny", (1, 12, 40), patch=list(patch))
