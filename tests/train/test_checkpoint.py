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


def test_the_same_weights_and_metadata_make_the_same_bytes_every_time(tmp_path):
    # lineage compares weights files by digest; safetensors orders a metadata map differently
    # from one write to the next, which made equal runs look changed
    sd = {"w": torch.randn(4, 4), "n": torch.tensor(3)}
    meta = {"step": "9", "total_steps": "9", "kind": "encoder", "extra": "x"}
    digests = set()
    for i in range(12):
        ckpt.save_weights(tmp_path / f"{i}.safetensors", sd, meta)
        digests.add(ckpt.file_digest(tmp_path / f"{i}.safetensors"))
    assert len(digests) == 1
    assert ckpt.weights_metadata(tmp_path / "0.safetensors") == meta


def test_weights_metadata_reads_the_flat_metadata_of_older_runs(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "old.safetensors"), metadata={"step": "4"})
    assert ckpt.weights_metadata(tmp_path / "old.safetensors") == {"step": "4"}


def test_a_crash_between_the_pairs_renames_never_leaves_a_state_ahead_of_the_weights(tmp_path, monkeypatch):
    weights = {"w": torch.zeros(2)}
    ckpt.save_checkpoint(tmp_path, {"step": 1}, weights, {"step": "1"})
    real = ckpt.os.replace

    def crash_after_the_first(src, dst):
        real(src, dst)
        raise SystemExit("killed between the renames")

    monkeypatch.setattr(ckpt.os, "replace", crash_after_the_first)
    with pytest.raises(SystemExit):
        ckpt.save_checkpoint(tmp_path, {"step": 2}, weights, {"step": "2"})
    # the weights are renamed first: a state saying step 2 (finished, say) beside step-1 weights
    # would be read as a finished run with the wrong weights; the other way round, a resume
    # trains step 2 again
    assert ckpt.load_state(tmp_path / ckpt.STATE_FILE)["step"] == 1
    assert ckpt.weights_metadata(tmp_path / ckpt.MODEL_FILE)["step"] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == [ckpt.MODEL_FILE, ckpt.STATE_FILE]  # no temporaries left
