"""MAE and JEPA: masking, block sampling on grids of any dimension, losses, EMA."""

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.modalities import ImageModality, SeriesModality, VolumeModality
from unlabeled.models import build_encoder
from unlabeled.objectives import build_objective
from unlabeled.objectives.jepa import block_masks, block_shape
from unlabeled.objectives.mae import masked_mse, random_masking


def test_random_masking_hides_the_ratio():
    g = torch.Generator().manual_seed(0)
    keep, mask = random_masking(4, 49, 0.75, g, torch.device("cpu"))
    assert keep.shape == (4, 12) and (mask.sum(1) == 37).all()
    assert not mask.gather(1, keep).any()  # kept patches are the visible ones


def test_masked_mse_only_counts_hidden_patches():
    pred, target = torch.zeros(1, 4, 3), torch.ones(1, 4, 3)
    target[0, 0] = 5.0
    mask = torch.tensor([[False, True, True, False]])
    assert masked_mse(pred, target, mask, norm_pix=False).item() == pytest.approx(1.0)


@pytest.mark.parametrize("grid", [(25,), (1, 25), (7, 7), (4, 4, 4)])
def test_blocks_on_any_grid(grid):
    g = torch.Generator().manual_seed(1)
    shape = block_shape(grid, (0.15, 0.2), (0.75, 1.5), g)
    coords = torch.stack(torch.meshgrid(*[torch.arange(n) for n in grid], indexing="ij"), -1).reshape(-1, len(grid))
    masks = block_masks(coords, grid, shape, 3, 4, g)
    n = torch.tensor(shape).prod().item()
    assert masks.shape == (3, 4, coords.shape[0]) and (masks.sum(-1) == n).all()  # every block fits whole
    assert all(1 <= s <= gr for s, gr in zip(shape, grid, strict=True))


def _step(name, mod, enc, x, **kw):
    obj = build_objective(name, enc, mod, **kw)
    loss, logs = obj.loss(x, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and "loss" in logs
    return obj


def test_mae_and_jepa_on_images_series_and_volumes():
    cases = [
        (ImageModality((1, 16, 16), [0.5], [0.25]), torch.rand(4, 1, 16, 16)),
        (SeriesModality((2, 40), [0.0, 0.0], [1.0, 1.0]), None),
        (VolumeModality((1, 16, 16, 16), [0.0], [1.0]), torch.randn(4, 1, 16, 16, 16)),
    ]
    for mod, x in cases:
        if x is None:
            raw = torch.randn(4, 2, 40).numpy()
            raw[1, :, 25:] = float("nan")  # a shorter series
            x = mod.prepare(raw)
        enc = build_encoder("transformer", "tiny", mod.input_shape, patch=mod.patch)
        mae = _step("mae", mod, enc, x, mask_ratio=0.6)
        assert all(p.grad is not None for n, p in mae.named_parameters() if p.requires_grad), type(mod)
        enc = build_encoder("transformer", "tiny", mod.input_shape, patch=mod.patch)
        jepa = _step("jepa", mod, enc, x)
        assert all(p.grad is None for p in jepa.target.parameters())


def test_jepa_target_is_an_ema_of_the_encoder():
    mod = ImageModality((1, 16, 16), [0.5], [0.25])
    enc = build_encoder("transformer", "tiny", mod.input_shape, patch=mod.patch)
    obj = build_objective("jepa", enc, mod, ema=0.5)
    before = obj.target.patch_embed.weight.clone()
    with torch.no_grad():
        enc.patch_embed.weight.add_(1.0)
    obj.after_step(0.0)  # momentum 0.5: halfway to the online weights
    torch.testing.assert_close(obj.target.patch_embed.weight, before + 0.5)
    obj.after_step(1.0)  # momentum 1: frozen
    torch.testing.assert_close(obj.target.patch_embed.weight, before + 0.5)
    assert obj.export == "target"


def test_jepa_logs_the_momentum_its_step_applies_even_on_a_resumed_objectives_first_step():
    """A fresh objective (as after a resume) logged its starting momentum, not the step's."""
    mod = ImageModality((1, 16, 16), [0.5], [0.25])
    enc = build_encoder("transformer", "tiny", mod.input_shape, patch=mod.patch)
    obj = build_objective("jepa", enc, mod, ema=0.9)
    _, logs = obj.loss(torch.rand(4, 1, 16, 16), torch.Generator().manual_seed(0))
    obj.after_step(0.5)  # a step halfway through the run: momentum 0.9 + 0.1 * 0.5
    assert float(logs["momentum"]) == pytest.approx(0.95)


def test_masked_objectives_need_a_token_encoder():
    mod = ImageModality((1, 16, 16), [0.5], [0.25])
    for name in ("mae", "jepa"):
        with pytest.raises(UnlabeledError, match="transformer"):
            build_objective(name, build_encoder("cnn", "tiny", (1, 16, 16)), mod)
    with pytest.raises(UnlabeledError, match="mask_ratio"):
        build_objective("mae", build_encoder("transformer", "tiny", (1, 16, 16)), mod, mask_ratio=1.5)


@pytest.mark.parametrize("method", ["mae", "jepa"])
def test_masked_objectives_train_on_short_padded_series_in_bf16(tmp_path, method):
    """Half the series end after 6 of 64 steps (NaN padding): under the mask a short series'
    visible patches can all be padding, and the bf16 attention's softmax over no key was nan
    ("loss became nan at step 0")."""
    a = np.random.default_rng(0).random((32, 64)).astype(np.float32)
    a[::2, 6:] = np.nan
    np.save(tmp_path / "short.npy", a)
    col = ul.import_source(tmp_path / "short.npy", tmp_path / "c", modality="series").collection
    run = ul.pretrain(col, tmp_path / method, method=method, epochs=3, size="tiny", precision="bf16")
    losses = [m["loss"] for m in run.metrics() if "loss" in m]
    assert losses and np.isfinite(losses).all()


def test_jepas_context_never_holds_a_target_patch_on_a_small_grid():
    """On a series of 8 steps (a grid of 4 patches) the targets covered some sample's whole
    context block in half the steps, and that sample's context then held target patches: the
    answer given to the predictor. The masks are drawn again until none does."""
    mod = SeriesModality((1, 8), [0.0], [1.0], patch_len=2)
    enc = build_encoder("transformer", "tiny", mod.input_shape, patch=mod.patch)
    obj = build_objective("jepa", enc, mod)
    for step in range(50):
        ctx, tgt = obj.masks(8, torch.Generator().manual_seed(step))
        for i in range(8):
            assert not set(ctx[i].tolist()) & set(tgt[i].flatten().tolist())


def test_cutout_keeps_a_short_series_padding():
    from unlabeled.objectives.fixmatch import cutout

    x = torch.randn(4, 1, 1, 20)
    x[..., 8:] = float("nan")
    out = cutout(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(torch.isnan(out), torch.isnan(x))
