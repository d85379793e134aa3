"""Self-distillation for further pretraining (Lee et al. 2023): the penalty pulls the model
toward its teacher, is recorded with the run, and refuses what it cannot do."""

from __future__ import annotations

import pytest
import torch

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.models.transformer import PatchTransformer
from unlabeled.objectives.self_distil import Teacher


def test_the_penalty_is_zero_at_the_teacher_and_trains_the_student_alone():
    torch.manual_seed(0)
    student = PatchTransformer((16,), "tiny", vocab=100, dropout=0.1)
    teacher_enc = PatchTransformer((16,), "tiny", vocab=100)
    teacher_enc.load_state_dict(student.state_dict())
    teacher = Teacher(teacher_enc, 1.0)
    x = torch.randint(4, 100, (3, 16))
    x[0, 10:] = 0
    assert float(teacher.penalty(student.train(), x).detach()) == pytest.approx(0.0, abs=1e-10)  # no dropout
    with torch.no_grad():
        student.token_embed.weight.add_(0.1)
    p = teacher.penalty(student, x)
    p.backward()
    assert float(p) > 0 and student.token_embed.weight.grad is not None
    assert all(q.grad is None for q in teacher_enc.parameters())
    with pytest.raises(ValueError, match="positive"):
        Teacher(teacher_enc, 0.0)


def _drift(run, base, col):
    """Mean squared difference of ``run``'s token outputs from ``base``'s on test glosses."""
    x = base.modality().prepare(col.get(col.indices("test")[:64]))
    with torch.no_grad():
        return float(((run.encoder()(x) - base.encoder()(x)) ** 2).mean())


@pytest.mark.slow
def test_self_distillation_keeps_continued_pretraining_near_its_start(wordnet_small, tmp_path):
    common = {"method": "mlm", "batch_size": 64, "precision": "fp32", "lr": 3e-3}
    base = ul.pretrain(wordnet_small, tmp_path / "base", epochs=1, **common)
    free = ul.pretrain(wordnet_small, tmp_path / "free", init=base, epochs=1, **common)
    held = ul.pretrain(
        wordnet_small, tmp_path / "held", init=base, epochs=1, method_options={"self_distil": 50.0}, **common
    )
    assert _drift(held, base, wordnet_small) < 0.5 * _drift(free, base, wordnet_small)
    recorded = held.config["method"]
    assert recorded["self_distil"] == 50.0 and recorded["teacher"] == str(base.path.resolve())
    assert all("self_distil" in r for r in held.metrics() if "loss" in r)
    with pytest.raises(UnlabeledError, match="give --init"):
        ul.pretrain(wordnet_small, tmp_path / "x", epochs=0.1, method_options={"self_distil": 1.0}, **common)
    # a teacher named without --init, under a tokenizer fitted anew: its token ids are other tokens
    with pytest.raises(UnlabeledError, match="another tokenizer"):
        options = {"self_distil": 1.0, "teacher": str(base.path)}
        ul.pretrain(wordnet_small, tmp_path / "y", epochs=0.1, method_options=options, encoder_options={"vocab": 500})
    # grown, the self-distilled run keeps its objective and leaves its small teacher behind
    from unlabeled.train.grow import grow

    grown = grow(held, "small", tmp_path / "grown")
    assert grown.config["method"]["name"] == "mlm"
    assert not {"self_distil", "teacher", "teacher_weights"} & set(grown.config["method"])


def test_the_penalty_reads_images_normalised_as_the_encoders_do():
    """It compared the two encoders on the raw [0, 1] batch, which neither trains on."""
    from unlabeled.modalities import ImageModality
    from unlabeled.models import build_encoder
    from unlabeled.objectives import build_objective

    mod = ImageModality((1, 8, 8), [0.5], [0.25])
    enc = build_encoder("cnn", "tiny", mod.input_shape)
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, x):
            seen.append(x.clone())
            return x.flatten(1)

    obj = build_objective("simclr", enc, mod)
    obj.encoder = Recording()  # the student the penalty calls
    obj.self_distil = Teacher(Recording(), 1.0)
    x = torch.rand(4, 1, 8, 8)
    obj.loss = lambda x, g: (x.sum() * 0, {})  # the objective's own loss is beside the point here
    obj(x, torch.Generator())
    assert len(seen) == 2 and all(torch.allclose(s, mod.normalize(x)) for s in seen)
