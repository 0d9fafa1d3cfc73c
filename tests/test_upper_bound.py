"""The synthetic world's upper bound: the student trained with ground-truth masks."""

import torch

from zeroseg.checkpoint import load_student
from zeroseg.config import load_config
from zeroseg.synthetic.upper_bound import pixel_class_log_probs, train_upper_bound
from zeroseg.synthetic.writers import write_validation_tree
from zeroseg.teacher import build_teacher
from zeroseg.text_queries import TextQueries


def test_upper_bound_trains_and_saves_a_student(tmp_path):
    labelled = write_validation_tree(tmp_path / "labelled", n=8, seed=3, size=64)
    config = load_config(
        "tiny", ["optim.batch_size=4", "optim.micro_batch_size=4", "train.steps=3"]
    )
    checkpoint = train_upper_bound(config, labelled, tmp_path / "run", progress=False)
    model, saved, _ = load_student(checkpoint)
    assert saved.train.steps == 3
    teacher = build_teacher(config.teacher)
    text = TextQueries.build(teacher, ["sky", "grass", "star"], "simple1").text
    log_probs = pixel_class_log_probs(model.eval(), torch.rand(2, 3, 64, 64), text, 100.0)
    assert log_probs.shape == (2, 3, 64, 64)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(2, 64, 64), atol=1e-3)
