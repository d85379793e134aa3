"""Every modality x every objective pretrains end to end with the transformer (and series and
spectrograms with the tcn), on tiny real data, and leaves a run whose encoder embeds the
collection."""

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled.train.pretrain import TCN_LR


@pytest.mark.parametrize("method", ["simclr", "mae", "jepa"])
@pytest.mark.parametrize("data", ["fmnist_small", "gunpoint", "keywords", "volumes"])
def test_every_modality_with_every_objective(request, tmp_path, data, method):
    col = request.getfixturevalue(data)
    n_train = len(col.indices(exclude="test"))
    run = ul.pretrain(
        col, tmp_path / "run", method=method, encoder="transformer", epochs=3 / (n_train // 16), batch_size=16, seed=0
    )
    assert run.config["encoder"]["name"] == "transformer" and run.step == 3
    assert all(np.isfinite(m["loss"]) for m in run.metrics())
    some = col.indices()[:8]
    trained, untrained = run.encode(col, some, device="cpu"), run.encode(col, some, trained=False, device="cpu")
    assert trained.shape == (8, 128) and np.isfinite(trained).all()
    assert not np.allclose(trained, untrained)  # the saved weights are the trained ones


@pytest.mark.parametrize("method", ["simclr", "ts2vec"])
@pytest.mark.parametrize("data", ["gunpoint", "keywords"])
def test_series_and_spectrograms_with_the_tcn(request, tmp_path, data, method):
    """The dilated-convolution encoder under the contrastive objectives: series as they are,
    spectrograms with their mel bands as channels; for series it is the default encoder."""
    col = request.getfixturevalue(data)
    n_train = len(col.indices(exclude="test"))
    run = ul.pretrain(
        col,
        tmp_path / "run",
        method=method,
        encoder="tcn" if data == "keywords" else None,
        epochs=3 / (n_train // 16),
        batch_size=16,
        seed=0,
    )
    assert run.config["encoder"]["name"] == "tcn" and run.step == 3
    options = run.config["encoder"]["options"]  # recorded, so a later default cannot change them
    # under ts2vec, whose loss never reads the embedding, the probe reads every block
    want = (1, "all", "stats") if method == "ts2vec" else (0, None, None)
    assert (options["diff"], options.get("layers"), options.get("pool")) == want
    assert run.config["train"]["lr"] == TCN_LR
    assert all(np.isfinite(m["loss"]) for m in run.metrics())
    some = col.indices()[:8]
    trained, untrained = run.encode(col, some, device="cpu"), run.encode(col, some, trained=False, device="cpu")
    assert trained.shape == (8, 3 * (320 + 9 * 64) if method == "ts2vec" else 320) and np.isfinite(trained).all()
    assert not np.allclose(trained, untrained)


def test_default_encoder_follows_the_modality(tmp_path, gunpoint):
    run = ul.pretrain(gunpoint, tmp_path / "run", method="mae", epochs=1, batch_size=16)
    assert run.config["encoder"]["name"] == "transformer"
    assert run.config["encoder"]["options"]["patch"] == [1, run.config["modality"]["patch_len"]]
    enc = run.encoder()
    x = run.modality().prepare(gunpoint.get(gunpoint.indices()[:4]))
    with torch.no_grad():
        assert enc.embed(run.modality().normalize(x)).shape == (4, 128)


def test_jepa_exports_the_target_encoder(tmp_path, gunpoint):
    from unlabeled.train import checkpoint as ckpt

    run = ul.pretrain(gunpoint, tmp_path / "run", method="jepa", epochs=1, batch_size=16)
    weights = ckpt.load_weights(run.path / ckpt.MODEL_FILE)
    enc = run.encoder()
    torch.testing.assert_close(enc.patch_embed.weight, weights["target.patch_embed.weight"])


def test_new_transformer_runs_have_no_block_biases_and_old_runs_rebuild_with_them(tmp_path, gunpoint):
    import json

    run = ul.pretrain(gunpoint, tmp_path / "new", method="mae", epochs=1, batch_size=16)
    assert run.config["encoder"]["options"]["bias"] is False
    names = list(run.weights())
    assert not [n for n in names if ".blocks." in n and n.endswith("bias") and "norm" not in n]  # encoder and decoder
    assert "decoder.blocks.0.qkv.weight" in names
    assert "encoder.trunk.blocks.0.qkv.weight" in names

    # a run saved before the default changed has no "bias" option recorded: it rebuilds with biases
    old = ul.pretrain(gunpoint, tmp_path / "old", method="mae", epochs=1, batch_size=16, encoder_options={"bias": True})
    config = json.loads((old.path / "config.json").read_text())
    del config["encoder"]["options"]["bias"]
    (old.path / "config.json").write_text(json.dumps(config))
    enc = ul.open_run(old.path).encoder()
    assert enc.trunk.blocks[0].qkv.bias is not None
    cont = ul.pretrain(gunpoint, tmp_path / "cont", method="mae", epochs=1, batch_size=16, init=old.path)
    assert cont.config["encoder"]["options"]["bias"] is True and cont.encoder().trunk.blocks[0].qkv.bias is not None
    with pytest.raises(ul.UnlabeledError, match="bias takes true or false"):
        ul.pretrain(
            gunpoint, tmp_path / "bad", method="mae", epochs=1, batch_size=16, encoder_options={"bias": "False"}
        )


def test_a_small_training_set_gets_a_smaller_default_batch(tmp_path, gunpoint):
    from unlabeled import UnlabeledError
    from unlabeled.train.pretrain import default_batch

    assert [default_batch(50), default_batch(1000), default_batch(300, world=4), default_batch(1)] == [32, 128, 64, 128]
    run = ul.pretrain(gunpoint, tmp_path / "g", method="simclr", epochs=1)  # 50 training series
    assert run.config["train"]["batch_size"] == 32 and run.step == 1
    with pytest.raises(UnlabeledError, match="fewer than one batch of 128"):
        ul.pretrain(gunpoint, tmp_path / "big", epochs=1, batch_size=128)
    assert not (tmp_path / "big").exists()  # refused before anything was written
    assert ul.pretrain(gunpoint, tmp_path / "big", epochs=1, batch_size=16).step == 3  # no --overwrite needed
    with pytest.raises(UnlabeledError, match="fewer than one batch of 128"):
        ul.pretrain(gunpoint, tmp_path / "big", epochs=1, batch_size=128, overwrite=True)
    assert ul.open_run(tmp_path / "big").step == 3  # a refused --overwrite keeps the old run
    one = ul.open_collection(gunpoint.path)
    from unlabeled.data.collection import derive_collection

    single = derive_collection(one, [0], tmp_path / "one", {"name": "one"})
    with pytest.raises(
        UnlabeledError, match="1 training samples are fewer than one batch of 128; train on more samples"
    ):
        ul.pretrain(single, tmp_path / "single", epochs=1)
    # forgetting retrains on what is kept, too few for the fitted batch of 32: it is fitted again
    first = gunpoint.classes[0]
    again = ul.forget(run, class_=first, method="retrain", out=tmp_path / "g-forgot")
    assert again.config["train"]["batch_size"] == 16
    # shards share one batch, fitted to the smallest, so retraining any of them fits too
    # (63 series: the 50 of the train split and 13 of the test split, which must be asked for)
    sixty_three = np.arange(63)
    sharded = ul.pretrain(
        gunpoint, tmp_path / "s", method="simclr", epochs=1, shards=2, positions=sixty_three, exclude_split=None
    )
    batches = {s.config["train"]["batch_size"] for s in sharded.shards()}
    assert batches == {16} and sharded.config["train"]["batch_size"] == 16  # shards of 32 and 31 series
    ul.forget(sharded, class_=first, method="sisa", out=tmp_path / "s-forgot")


def test_a_device_this_pytorch_cannot_use_is_a_clear_error(tmp_path, gunpoint):
    from unlabeled import UnlabeledError

    bad = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, or any GPU on a CPU-only build
    with pytest.raises(UnlabeledError, match="--device cuda"):
        ul.pretrain(gunpoint, tmp_path / "r", epochs=1, device=bad)
    assert not (tmp_path / "r").exists()
    with pytest.raises(UnlabeledError, match="not a device name"):
        ul.pretrain(gunpoint, tmp_path / "r", epochs=1, device="gpu0")
