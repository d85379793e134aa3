import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.models import build_encoder
from unlabeled.models.tcn import TCNEncoder


@pytest.mark.parametrize("pool, dim", [("max", 320), ("stats", 960)])
def test_one_token_per_time_step(pool, dim):
    enc = build_encoder("tcn", "tiny", (1, 3, 50), pool=pool)
    x = torch.randn(4, 1, 3, 50)
    assert enc(x).shape == (4, 50, 320) and enc.width == 320
    assert enc.embed(x).shape == (4, dim) and enc.dim == dim
    assert [b.conv1.dilation[0] for b in enc.blocks] == [2**i for i in range(10)]


def test_nan_padding_embeds_as_the_valid_part_alone():
    """A series padded with NaN gives the same step features and embedding as its valid part
    on its own: padding is zeroed before every convolution, as the convolutions' own padding is."""
    torch.manual_seed(0)
    enc = TCNEncoder((1, 2, 64), "tiny").eval()
    x = torch.randn(2, 1, 2, 64)
    x[0, ..., 40:] = float("nan")
    with torch.no_grad():
        h, pad = enc.steps(x)
        alone, _ = enc.steps(x[:1, ..., :40])
        torch.testing.assert_close(h[:1, :, :40], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(enc.embed(x)[:1], alone.amax(2), rtol=1e-4, atol=1e-5)
    assert pad[0].tolist() == [False] * 40 + [True] * 24 and not pad[1].any()


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
