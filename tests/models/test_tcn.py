from types import SimpleNamespace

import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.models import build_encoder, default_options
from unlabeled.models.tcn import TCNEncoder
from unlabeled.models.transformer import token_stats

_MOD = SimpleNamespace(name="series", patch=(1, 8), encoder_options=dict)  # a modality, as default_options reads one


@pytest.mark.parametrize("pool, dim", [("max", 320), ("stats", 960)])
def test_one_token_per_time_step(pool, dim):
    enc = build_encoder("tcn", "tiny", (1, 3, 50), pool=pool)
    x = torch.randn(4, 1, 3, 50)
    assert enc(x).shape == (4, 50, 320) and enc.width == 320
    assert enc.embed(x).shape == (4, dim) and enc.dim == dim
    assert [b.conv1.dilation[0] for b in enc.blocks] == [2**i for i in range(10)]


@pytest.mark.parametrize("diff", [0, 1, 2])
def test_nan_padding_embeds_as_the_valid_part_alone(diff):
    """A series padded with NaN gives the same step features and embedding as its valid part
    on its own: padding is zeroed before every convolution, as the convolutions' own padding is,
    and the differences are scaled by the valid steps' spread alone."""
    torch.manual_seed(0)
    enc = TCNEncoder((1, 2, 64), "tiny", diff=diff).eval()
    x = torch.randn(2, 1, 2, 64)
    x[0, ..., 40:] = float("nan")
    with torch.no_grad():
        h, pad = enc.steps(x)
        alone, _ = enc.steps(x[:1, ..., :40])
        torch.testing.assert_close(h[:1, :, :40], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(enc.embed(x)[:1], alone.amax(2), rtol=1e-4, atol=1e-5)
    assert pad[0].tolist() == [False] * 40 + [True] * 24 and not pad[1].any()


def test_differences_are_read_beside_the_series():
    """diff=1: the convolutions see the series and its first difference, each sample's scaled to
    unit spread (MultiRocket's two representations); diff=2 adds the second difference."""
    torch.manual_seed(0)
    x = torch.randn(3, 1, 2, 40).cumsum(-1)

    def unit(d):
        return d / d.std(2, unbiased=False, keepdim=True)

    seen = []
    for diff in (1, 2):
        enc = TCNEncoder((1, 2, 40), "tiny", diff=diff).eval()
        assert enc.input_fc.in_channels == 2 * (1 + diff)
        seen.clear()
        enc.input_fc.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        with torch.no_grad():
            enc.steps(x)
        d = torch.diff(x[:, 0], dim=2, prepend=x[:, 0, :, :1])
        torch.testing.assert_close(seen[0][:, :2], x[:, 0])
        torch.testing.assert_close(seen[0][:, 2:4], unit(d), rtol=1e-4, atol=1e-5)
        if diff == 2:
            d2 = torch.diff(d, dim=2, prepend=d[:, :, :1])
            torch.testing.assert_close(seen[0][:, 4:], unit(d2), rtol=1e-4, atol=1e-5)
    # the difference channels do not depend on the series' level or scale
    enc = TCNEncoder((1, 2, 40), "tiny", diff=1).eval()
    with torch.no_grad():
        enc.input_fc.weight[:, :2] = 0
        torch.testing.assert_close(enc.steps(x)[0], enc.steps(3 * x + 5)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layers, blocks", [(1, 1), (3, 3), ("all", 10)])
def test_embedding_of_several_blocks(layers, blocks):
    """layers=k: the last k blocks' pooled step features side by side, the last block's first."""
    torch.manual_seed(0)
    enc = TCNEncoder((1, 2, 30), "tiny", pool="stats", layers=layers).eval()
    assert enc.layers == blocks and enc.dim == 3 * (320 + (blocks - 1) * 64)
    x = torch.randn(3, 1, 2, 30)
    x[1, ..., 20:] = float("nan")
    outs = []
    hooks = [b.register_forward_hook(lambda m, a, out: outs.append(out)) for b in enc.blocks]
    with torch.no_grad():
        z = enc.embed(x)
        pad = torch.isnan(x).all(2).squeeze(1)
        want = torch.cat([token_stats(h.transpose(1, 2), pad) for h in outs[10 - blocks :]], 1)
        torch.testing.assert_close(z, want)
        outs.clear()
        torch.testing.assert_close(enc.steps(x)[0], enc(x).transpose(1, 2))  # tokens: the last block only
    for h in hooks:
        h.remove()
    assert z.shape == (3, enc.dim)


def test_new_ts2vec_runs_record_the_tcn_reading_differences():
    assert default_options("tcn", _MOD) == {"diff": 0}  # fine-tuning from scratch
    assert default_options("tcn", _MOD, method="simclr") == {"diff": 0}  # measured worse with it
    assert default_options("tcn", _MOD, {"pool": "max"}, "ts2vec") == {"pool": "max", "diff": 1, "layers": "all"}
    assert default_options("tcn", _MOD, {"diff": 0, "pool": "max"}) == {"diff": 0, "pool": "max"}
    assert default_options("transformer", _MOD) == {"patch": [1, 8], "bias": False}
    assert TCNEncoder((1, 1, 16)).diff == 0  # a run saved before the option rebuilds as it was trained


def test_hidden_steps_lose_their_input():
    """TS2Vec's timestamp mask: a hidden step's input no longer reaches any feature; with every
    step hidden the output does not depend on the series at all."""
    torch.manual_seed(0)
    enc = TCNEncoder((1, 1, 32), "tiny").eval()
    x, y = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)
    y[..., :10] = x[..., :10]
    y[..., 11:] = x[..., 11:]  # x and y differ at step 10 only
    hide = torch.zeros(1, 32, dtype=torch.bool)
    hide[0, 10] = True
    with torch.no_grad():
        assert not torch.allclose(enc.steps(x)[0], enc.steps(y)[0])
        torch.testing.assert_close(enc.steps(x, hide)[0], enc.steps(y, hide)[0])
        every = torch.ones(1, 32, dtype=torch.bool)
        torch.testing.assert_close(enc.steps(x, every)[0], enc.steps(torch.randn(1, 1, 1, 32), every)[0])


def test_wrong_shape_and_options_are_clear_errors():
    with pytest.raises(UnlabeledError, match="series"):
        build_encoder("tcn", "tiny", (3, 28, 28))
    with pytest.raises(UnlabeledError, match="pool"):
        build_encoder("tcn", "tiny", (1, 1, 28), pool="cls")
    with pytest.raises(UnlabeledError, match="diff must be 0, 1 or 2"):
        build_encoder("tcn", "tiny", (1, 1, 28), diff=3)
    for bad in (0, 11, "some", 1.5):
        with pytest.raises(UnlabeledError, match="layers must be 'all' or a number of blocks from 1 to 10"):
            build_encoder("tcn", "tiny", (1, 1, 28), layers=bad)
