import pytest
import torch
from torch import nn

from unlabeled.models import build_encoder
from unlabeled.models.fold import fold_batch_norms


def _with_running_statistics(enc: nn.Module) -> nn.Module:
    """Batch norms with statistics and affine parameters far from their defaults, so that a
    wrong fold shows."""
    g = torch.Generator().manual_seed(0)
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return enc


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_a_folded_cnn_embeds_as_the_unfolded_one_without_touching_it(size):
    enc = _with_running_statistics(build_encoder("cnn", size, (1, 28, 28))).eval()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    x = torch.randn(8, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    folded = fold_batch_norms(enc)
    assert folded is not enc
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    convs = [m for m in folded.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None and c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():
        torch.testing.assert_close(folded.embed(x), enc.embed(x), rtol=1e-4, atol=1e-4)
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())  # the run's encoder unchanged
    assert any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())


def test_an_encoder_without_batch_norm_after_a_convolution_is_returned_as_it_is():
    enc = build_encoder("transformer", "tiny", (1, 28, 28)).train()
    assert fold_batch_norms(enc) is enc
    assert not enc.training
