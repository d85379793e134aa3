import pytest
import torch

from unlabeled.train import checkpoint as ckpt


def test_atomic_write_replaces_or_keeps(tmp_path):
    path = tmp_path / "f.txt"
    ckpt.atomic_write_text(path, "old")

    def failing(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        ckpt.atomic_write(path, failing)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_weights_and_state_roundtrip(tmp_path):
    sd = {"a": torch.randn(3, 4).t(), "b": torch.arange(5)}  # a non-contiguous tensor too
    ckpt.save_weights(tmp_path / "m.safetensors", sd, {"step": "7"})
    back = ckpt.load_weights(tmp_path / "m.safetensors")
    assert torch.equal(back["a"], sd["a"]) and torch.equal(back["b"], sd["b"])
    ckpt.save_state(tmp_path / "s.pt", {"step": 3, "model": sd, "rng": torch.get_rng_state()})
    assert ckpt.load_state(tmp_path / "s.pt")["step"] == 3
