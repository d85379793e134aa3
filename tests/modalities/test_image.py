import numpy as np
import pytest
import torch

from unlabeled.modalities.image import (
    ImageAugment,
    ImageModality,
    augment_images,
    gaussian_blur,
    resized_crop_flip,
    shift_flip,
)


@pytest.fixture
def batch(fmnist_small):
    mod = ImageModality.fit(fmnist_small)
    return mod, mod.prepare(fmnist_small.get(np.arange(64)))


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_fit_and_prepare(fmnist_small, batch):
    mod, x = batch
    assert x.shape == (64, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert 0.2 < mod.mean[0] < 0.4 and 0.3 < mod.std[0] < 0.4  # Fashion-MNIST: 0.286, 0.353
    z = mod.normalize(mod.prepare(fmnist_small.get(fmnist_small.indices())))
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05


def test_augment_is_batched_seeded_and_in_range(batch):
    mod, x = batch
    a, b = mod.augment(x, _g(1)), mod.augment(x, _g(1))
    c = mod.augment(x, _g(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    # every image gets its own parameters: two copies of one image get different views
    twin = augment_images(x[:1].repeat(8, 1, 1, 1), mod.aug, _g(0))
    assert len({round(v, 4) for v in twin.sum(dim=(1, 2, 3)).tolist()}) == 8


def test_identity_crop_and_flip(batch):
    _, x = batch
    same = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0)
    torch.testing.assert_close(resized_crop_flip(x, same, _g()), x, atol=1e-5, rtol=0)
    flip = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(resized_crop_flip(x, flip, _g()), x.flip(-1), atol=1e-5, rtol=0)


def test_smaller_views_for_pretraining_and_full_size_light_views(batch, fmnist_small, tmp_path):
    """``view_size`` resizes the full augmentation's crops (pretraining's views): a whole-image
    crop at 14 px is the image averaged down 2x2; the light view keeps the image's size; a CNN
    pretrained on the small views embeds full-size images."""
    import unlabeled as ul

    mod, x = batch
    whole = ImageAugment(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, view_size=14)
    small = resized_crop_flip(x, whole, _g(), whole.view_size)
    torch.testing.assert_close(small, torch.nn.functional.avg_pool2d(x, 2), atol=1e-5, rtol=0)
    aug = mod.augmentation_with({"view_size": 20})
    assert augment_images(x, aug, _g()).shape == (64, 1, 20, 20)
    light = ImageModality(mod.sample_shape, mod.mean, mod.std, augment=aug)
    assert light.augment(x, _g(), light=True).shape == x.shape and light.weak(x, _g()).shape == x.shape
    run = ul.pretrain(fmnist_small, tmp_path / "r", epochs=0.2, batch_size=64, augment={"view_size": 20})
    assert run.config["modality"]["augment"]["view_size"] == 20
    assert run.encode(fmnist_small, np.arange(4)).shape == (4, 256)
    with pytest.raises(ValueError, match="view_size"):
        ImageAugment(view_size=-1)


def test_the_weak_view_only_shifts_and_flips(batch):
    """FixMatch's weak view: no shift and no flip is the identity; whole-pixel shifts move the
    image by that many pixels; shifts never exceed ``weak_shift`` of a side and nothing is
    rescaled (a centred dot stays one bright pixel wide along the axis it did not move on)."""
    mod, x = batch
    torch.testing.assert_close(shift_flip(x, 0.0, 0.0, _g()), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(shift_flip(x, 0.0, 1.0, _g()), x.flip(-1), atol=1e-5, rtol=0)
    dot = torch.zeros(256, 1, 28, 28)
    dot[:, :, 14, 14] = 1.0
    moved = shift_flip(dot, 0.125, 0.0, _g())
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = moved.sum(dim=(1, 2, 3))
    cy, cx = (moved[:, 0] * ys).sum((1, 2)) / mass, (moved[:, 0] * xs).sum((1, 2)) / mass
    assert (cy - 14).abs().max() <= 0.125 * 28 + 1e-4 and (cx - 14).abs().max() <= 0.125 * 28 + 1e-4
    assert (cx - 14).abs().max() > 2.5 and (cy - 14).abs().max() > 2.5  # it does move
    torch.testing.assert_close(mass, torch.ones(256), atol=1e-4, rtol=0)  # bilinear: the mass is kept
    views = mod.weak(x, _g(3))
    assert views.shape == x.shape and not torch.equal(views, x) and torch.equal(views, mod.weak(x, _g(3)))


def test_blur_keeps_mean_and_smooths(batch):
    _, x = batch
    y = gaussian_blur(x, torch.full((x.shape[0],), 1.0))
    assert torch.allclose(y.mean(), x.mean(), atol=1e-2)  # up to the reflected borders
    tv = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert tv(y) < 0.7 * tv(x)
    # per-sample sigma: a tiny sigma leaves its image almost untouched
    z = gaussian_blur(x[:2], torch.tensor([0.1, 2.0]))
    assert (z[0] - x[0]).abs().max() < 1e-3 and (z[1] - x[1]).abs().max() > 0.05


def test_defaults_follow_image_size():
    small, large = ImageModality((1, 28, 28), [0.5], [0.25]), ImageModality((3, 96, 96), [0.5] * 3, [0.25] * 3)
    assert small.aug.blur_p == 0 and small.aug.crop_scale[0] > large.aug.crop_scale[0]
    assert large.aug.blur_p > 0


def test_rgb_and_invalid_settings():
    mod = ImageModality((3, 16, 16), [0.5] * 3, [0.25] * 3)
    x = torch.rand(4, 3, 16, 16)
    assert mod.augment(x, _g()).shape == x.shape
    assert ImageModality(**{k: v for k, v in mod.state().items() if k != "name"}).aug == mod.aug
    with pytest.raises(ValueError, match="crop_scale"):
        ImageAugment(crop_scale=(0.5, 0.2))
