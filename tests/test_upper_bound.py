"""The synthetic world's upper bound: the student trained with ground-truth masks."""

import torch
import torch.nn.functional as F

from zeroseg.benchmark.datasets import VOCSegmentation
from zeroseg.config import load_config
from zeroseg.inference.text_queries import TextQueries
from zeroseg.models.build import build_zeroseg
from zeroseg.models.teacher import build_teacher
from zeroseg.synthetic.upper_bound import pixel_class_log_probs, train_upper_bound
from zeroseg.synthetic.writers import write_validation_tree
from zeroseg.training.checkpoint import load_student


def _labelled_nll(model, dataset, text) -> float:
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.stack([dataset[i][1] for i in range(len(dataset))])
    with torch.no_grad():
        log_probs = pixel_class_log_probs(model.eval(), images, text, 100.0)
    return float(F.nll_loss(log_probs, labels, ignore_index=dataset.ignore_index))


def test_upper_bound_learns_the_labels_and_saves_a_student(tmp_path):
    labelled = write_validation_tree(tmp_path / "labelled", n=8, seed=3, size=64)
    config = load_config(
        "tiny",
        ["optim.batch_size=8", "optim.micro_batch_size=8", "train.steps=12", "optim.base_lr=1e-3"],
    )
    checkpoint = train_upper_bound(config, labelled, tmp_path / "run", progress=False)
    model, saved, _ = load_student(checkpoint)
    assert saved.train.steps == 12
    dataset = VOCSegmentation(labelled, split="val")
    teacher = build_teacher(config.teacher)
    text = TextQueries.build(teacher, list(dataset.class_names), "simple1").text
    torch.manual_seed(config.train.seed)  # the initialisation train_upper_bound started from
    untrained = build_zeroseg(config.encoder, config.seg_head, None)
    before, after = _labelled_nll(untrained, dataset, text), _labelled_nll(model, dataset, text)
    assert after < 0.9 * before, (before, after)
