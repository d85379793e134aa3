import pytest
import torch

from unlabeled import UnlabeledError
from unlabeled.models import build_encoder


@pytest.mark.parametrize("size,dim", [("tiny", 256), ("small", 512), ("base", 512)])
def test_sizes(size, dim):
    enc = build_encoder("cnn", size, (1, 28, 28)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert enc.embed(x).shape == (2, dim) and enc.dim == dim
    assert enc(x).shape == (2, 16, dim)  # the 4x4 final feature map as tokens


def test_larger_rgb_images_are_downsampled_early():
    enc = build_encoder("cnn", "tiny", (3, 128, 128)).eval()
    assert enc(torch.randn(1, 3, 128, 128)).shape == (1, 16, 256)


def test_sizes_grow():
    def count(size):
        return sum(p.numel() for p in build_encoder("cnn", size, (1, 28, 28)).parameters())

    n = {s: count(s) for s in ("tiny", "small", "base")}
    assert n["tiny"] < n["small"] < n["base"]


def test_unknown_size():
    with pytest.raises(UnlabeledError, match="tiny"):
        build_encoder("cnn", "huge", (1, 28, 28))
