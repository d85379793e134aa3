import pytest
import torch
import torch.nn.functional as F

from unlabeled import UnlabeledError
from unlabeled.models import build_encoder
from unlabeled.models.cnn import CNN_SIZES, PoolReLU, ResidualUnit


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


def _relu_then_pool(enc, x):
    """The encoder as it was written before PoolReLU: every ReLU before its max-pool."""
    for m in [*enc.stem, *enc.stages]:
        if isinstance(m, PoolReLU):
            x = F.max_pool2d(torch.relu(x), 2, ceil_mode=m.ceil_mode)
        elif isinstance(m, ResidualUnit):
            x = torch.relu(m.body(x) + m.skip(x))
        else:
            x = m(x)
    return x.mean(dim=(2, 3))


@pytest.mark.parametrize(
    "size, shape", [("tiny", (1, 28, 28)), ("small", (1, 28, 28)), ("base", (3, 32, 32)), ("tiny", (3, 130, 130))]
)
def test_pooling_before_the_relu_changes_nothing(size, shape):
    """Max-pool then ReLU is ReLU then max-pool: same embedding and same gradients, in
    training mode (batch statistics) too; the stem's odd sizes keep floor pooling."""
    torch.manual_seed(0)
    enc = build_encoder("cnn", size, shape).train()
    assert sum(isinstance(m, PoolReLU) for m in enc.modules()) == len(CNN_SIZES[size].widths)
    x = torch.randn(4, *shape)
    z = enc.embed(x)
    grads = torch.autograd.grad(z.square().sum(), list(enc.parameters()))
    z_ref = _relu_then_pool(enc, x)
    grads_ref = torch.autograd.grad(z_ref.square().sum(), list(enc.parameters()))
    torch.testing.assert_close(z, z_ref)
    for g, r in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (3, 130, 130)])
def test_strided_stem_keeps_every_later_feature_map_size(shape):
    """The stride replaces the first stage's pool: the stem's second convolution already gives
    the first stage's resolution, the final map is the default's, one pool fewer."""
    plain = build_encoder("cnn", "tiny", shape).eval()
    strided = build_encoder("cnn", "tiny", shape, strided_stem=True).eval()
    x = torch.randn(2, *shape)
    assert strided(x).shape == plain(x).shape
    assert strided.stem[3].stride == (2, 2) and plain.stem[3].stride == (1, 1)
    pools = [sum(isinstance(m, (PoolReLU, torch.nn.MaxPool2d)) for m in e.modules()) for e in (plain, strided)]
    assert pools[1] == pools[0] - 1
    assert [p.shape for p in plain.parameters()] == [p.shape for p in strided.parameters()]


def test_strided_stem_is_recorded_and_rebuilt(fmnist_small, tmp_path):
    """A run pretrained with the option records it, and every rebuild (loading, fine-tuning
    from it) makes the strided encoder again: its embeddings are the run's own."""
    import unlabeled as ul

    run = ul.pretrain(
        fmnist_small,
        tmp_path / "run",
        epochs=0.1,
        batch_size=16,
        precision="fp32",
        encoder_options={"strided_stem": True},
    )
    assert run.config["encoder"]["options"]["strided_stem"] is True
    enc = ul.open_run(tmp_path / "run").encoder()
    assert enc.stem[3].stride == (2, 2)
    clf = ul.finetune(run, fmnist_small, tmp_path / "ft", epochs=0.1, fraction=0.5, batch_size=16, precision="fp32")
    assert ul.open_run(clf.path).encoder().stem[3].stride == (2, 2)
