import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.models import build_encoder


@pytest.mark.parametrize("size,dim,tokens", [("tiny", 256, 49), ("small", 512, 16), ("base", 512, 16)])
def test_sizes(size, dim, tokens):
    enc = build_encoder("cnn", size, (1, 28, 28)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert enc.embed(x).shape == (2, dim) and enc.dim == dim
    assert enc(x).shape == (2, tokens, dim)  # the final feature map (7x7 or 4x4) as tokens
    torch.testing.assert_close(enc(x).mean(1), enc.embed(x))


def test_larger_rgb_images_are_downsampled_early():
    enc = build_encoder("cnn", "tiny", (3, 128, 128)).eval()
    assert enc(torch.randn(1, 3, 128, 128)).shape == (1, 64, 256)  # 128 -> 64 -> 32 -> 16 -> 8


def test_sizes_grow():
    def count(size):
        return sum(p.numel() for p in build_encoder("cnn", size, (1, 28, 28)).parameters())

    n = {s: count(s) for s in ("tiny", "small", "base")}
    assert n["tiny"] < n["small"] < n["base"]


def test_unknown_size():
    with pytest.raises(UnlabeledError, match="tiny"):
        build_encoder("cnn", "huge", (1, 28, 28))
