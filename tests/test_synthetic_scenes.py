"""The synthetic world: scenes and their ground truth, the writers, and the caption-trained CLIP."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from zeroseg.errors import ZeroSegError
from zeroseg.synthetic.scenes import (
    CAPTION_MIN_AREA,
    CLASS_NAMES,
    NUM_STUFF,
    OBJECT_CLASSES,
    STUFF_CLASSES,
    generate_scene,
    generate_single_object_scene,
    scene_bank,
    single_object_set,
)
from zeroseg.synthetic.writers import (
    write_caption_set,
    write_training_images,
    write_validation_tree,
)

SCENES = [(seed, index) for seed in (0, 5) for index in range(40)]


def _named(caption: str) -> set[int]:
    return {k for k, name in enumerate(CLASS_NAMES) if re.search(rf"\b{name}\b", caption)}


def test_class_lists():
    assert len(OBJECT_CLASSES) >= 8 and len(STUFF_CLASSES) >= 4
    assert CLASS_NAMES == STUFF_CLASSES + OBJECT_CLASSES
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES) and len(STUFF_CLASSES) == NUM_STUFF


@pytest.mark.parametrize("seed,index", SCENES[::8])
def test_labels_are_what_is_visible(seed, index):
    scene = generate_scene(seed, index)
    assert scene.image.shape == (64, 64, 3) and scene.image.dtype == np.uint8
    assert scene.labels.shape == (64, 64) and scene.labels.max() < len(CLASS_NAMES)
    assert 1 <= len(scene.objects) <= 4 and 1 <= len(scene.stuff) <= 2
    covered = np.zeros((64, 64), dtype=bool)
    for obj in reversed(scene.objects):  # later objects occlude earlier ones
        visible = obj.mask & ~covered
        assert (scene.labels[visible] == obj.class_index).all()
        covered |= obj.mask
    background = scene.labels[~covered]
    assert np.isin(background, scene.stuff).all()
    assert (scene.labels[covered] >= NUM_STUFF).all()


def test_caption_names_the_classes_with_area():
    stuff_named = 0
    for seed, index in SCENES:
        scene = generate_scene(seed, index)
        counts = np.bincount(scene.labels.ravel(), minlength=len(CLASS_NAMES))
        named = _named(scene.caption)
        assert all(counts[k] > 0 for k in named), scene.caption
        large = {
            k for k in range(NUM_STUFF, len(CLASS_NAMES)) if counts[k] >= CAPTION_MIN_AREA * 64 * 64
        }
        assert large <= named, (scene.caption, large)  # every visible object class is named
        assert not re.search(r"\b(red|green|blue|yellow)\b", scene.caption)
        assert "  " not in scene.caption and not scene.caption.startswith(" ")
        stuff_named += any(k < NUM_STUFF for k in named)
    assert stuff_named > len(SCENES) // 2  # most captions name the stuff too


def test_scenes_are_deterministic_per_seed_and_index():
    a, b = generate_scene(3, 7), generate_scene(3, 7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.caption == b.caption
    assert not np.array_equal(a.image, generate_scene(4, 7).image)
    images, captions = scene_bank(3, seed=3)
    assert (
        np.array_equal(images[2], generate_scene(3, 2).image)
        and captions[2] == generate_scene(3, 2).caption
    )


def test_crop_captions_follow_the_documented_rule():
    from zeroseg.synthetic import crops

    rng = np.random.default_rng(0)
    checked = objects_named = 0
    for seed, index in SCENES[::2]:
        scene = generate_scene(seed, index)
        in_scene = np.bincount(scene.labels.ravel(), minlength=len(CLASS_NAMES))
        for _ in range(6):
            y0, y1, x0, x1 = box = crops.sample_box(rng, 64)
            assert 0 <= y0 < y1 <= 64 and 0 <= x0 < x1 <= 64 and y1 - y0 >= 16
            counts = np.bincount(scene.labels[y0:y1, x0:x1].ravel(), minlength=len(CLASS_NAMES))
            share = counts / counts.sum()
            inside = counts / np.maximum(in_scene, 1)
            expected = {k for k in range(NUM_STUFF) if share[k] >= crops.STUFF_SHARE} | {
                k
                for k in range(NUM_STUFF, len(CLASS_NAMES))
                if share[k] >= crops.OBJECT_SHARE
                or (inside[k] >= crops.OBJECT_INSIDE and share[k] >= crops.OBJECT_MIN_SHARE)
            }
            expected = expected or {int(share.argmax())}
            caption = crops.crop_caption(rng, scene.labels, box)
            named = _named(caption)
            objects = {k for k in expected if k >= NUM_STUFF}
            stuff = expected - objects
            assert {k for k in named if k >= NUM_STUFF} == objects, (caption, expected)
            stuff_leads = share[sorted(stuff)].sum() > share[sorted(objects)].sum()
            # stuff is always named where it covers more than the objects, else sometimes omitted
            assert named - objects == stuff or (not stuff_leads and not named - objects), caption
            objects_named += any(k >= NUM_STUFF for k in expected)
            checked += 1
    assert objects_named > checked // 4  # crops often show (parts of) objects


def test_grid_cells_tile_the_scene():
    from zeroseg.synthetic.crops import grid_cells

    for grid in (2, 3, 4):
        cover = np.zeros((64, 64), int)
        for y0, y1, x0, x1 in grid_cells(64, grid):
            cover[y0:y1, x0:x1] += 1
        assert (cover == 1).all() and len(grid_cells(64, grid)) == grid * grid


def test_object_classes_have_their_own_overlapping_surface_families():
    from zeroseg.synthetic.painting import SURFACE_FAMILIES

    families = [SURFACE_FAMILIES[name] for name in OBJECT_CLASSES]
    assert len({f.pattern for f in families}) == len(OBJECT_CLASSES)  # one pattern per class
    for a, b in zip(families, families[1:] + families[:1]):  # neighbours' hue ranges overlap
        low, high = b.hue if b.hue[0] >= a.hue[0] else (b.hue[0] + 1, b.hue[1] + 1)
        assert low < a.hue[1] and a.hue[0] < high
    # the same class looks alike, other classes differ: mean colour alone does not decide it
    hues = {k: [] for k in range(len(OBJECT_CLASSES))}
    for index in range(80):
        scene = generate_single_object_scene(0, index)
        pixels = scene.image[scene.labels == scene.objects[0].class_index].astype(float) / 255
        hues[scene.objects[0].class_index - NUM_STUFF].append(pixels.mean(0))
    means = {k: np.mean(v, 0) for k, v in hues.items()}
    closest = min(
        (np.linalg.norm(means[a] - means[b]), a, b) for a in means for b in means if a < b
    )
    assert closest[0] < 0.25  # some classes share colours


def test_other_sizes():
    scene = generate_scene(0, 1, size=40)
    assert scene.image.shape == (40, 40, 3) and scene.labels.shape == (40, 40)


def test_single_object_scenes():
    images, objects, backgrounds = single_object_set(
        len(OBJECT_CLASSES) * len(STUFF_CLASSES), seed=0
    )
    assert images.shape[0] == 40 and set(objects) == set(range(len(OBJECT_CLASSES)))
    assert set(backgrounds) == set(range(len(STUFF_CLASSES)))
    for index in range(0, 40, 7):
        scene = generate_single_object_scene(0, index)
        present = set(np.unique(scene.labels).tolist())
        assert present == {scene.stuff[0], scene.objects[0].class_index}
        assert scene.objects[0].mask.sum() >= 0.03 * 64 * 64  # in view, not a sliver


def test_validation_tree_round_trip(tmp_path):
    root = write_validation_tree(tmp_path / "val", n=5, seed=2)
    stems = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert stems == [f"synth_{i:06d}" for i in range(5)]
    assert (root / "class_names.txt").read_text().splitlines() == list(CLASS_NAMES)
    for i, stem in enumerate(stems):
        scene = generate_scene(2, i)
        label = Image.open(root / "SegmentationClass" / f"{stem}.png")
        assert label.mode == "P"
        assert np.array_equal(np.asarray(label), scene.labels)
        image = np.asarray(Image.open(root / "JPEGImages" / f"{stem}.jpg").convert("RGB"))
        assert np.abs(image.astype(int) - scene.image).mean() < 6  # JPEG q95, no subsampling


def test_validation_tree_reads_with_the_library_reader(tmp_path):
    segmentation = pytest.importorskip("zeroseg.benchmark.datasets")
    root = write_validation_tree(tmp_path / "val", n=3, seed=2)
    dataset = segmentation.VOCSegmentation(root, split="val")
    assert len(dataset) == 3 and list(dataset.class_names) == list(CLASS_NAMES)
    image, label, name = dataset[1]
    assert name == "synth_000001" and image.shape == (3, 64, 64)
    assert torch.equal(label, torch.from_numpy(generate_scene(2, 1).labels).long())


def test_training_folder_and_caption_set(tmp_path):
    from zeroseg.data.images import ImageFolder

    folder = write_training_images(tmp_path / "train", n=4, seed=0)
    dataset = ImageFolder(folder, image_size=64, resize_short=64)
    assert len(dataset) == 4
    expected = torch.from_numpy(generate_scene(0, 0).image).permute(2, 0, 1).float() / 255
    assert torch.allclose(dataset[0], expected, atol=1e-6)  # PNG is lossless
    root = write_caption_set(tmp_path / "captions", n=3, seed=1)
    lines = (root / "captions.tsv").read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == [
        generate_scene(1, i).caption for i in range(3)
    ]
    assert all((root / "images" / line.split("\t")[0]).is_file() for line in lines)


def test_caption_clip_smoke_and_core_teacher_loads_it(tmp_path, monkeypatch):
    from zeroseg.config import TeacherConfig
    from zeroseg.models.teacher import build_teacher
    from zeroseg.synthetic import caption_clip, scenes

    config = caption_clip.CaptionCLIPConfig(
        scene_size=32,
        image_size=32,
        embed_dim=16,
        vision_width=8,
        vision_head_width=32,
        text_width=32,
        text_heads=2,
        text_layers=1,
        bank_size=6,
        views_per_scene=2,
        steps=2,
        text_lock_steps=1,
        context_length=24,
        batch_size=12,
        warmup_steps=1,
        eval_images=10,
    )
    weights = caption_clip.train_caption_clip(config, tmp_path, progress=False)
    assert weights.name == "teacher.safetensors"
    meta = json.loads((tmp_path / "teacher.json").read_text())
    assert set(meta["zero_shot"]) == {"objects", "backgrounds"}
    assert set(meta["view_accuracy"]) == {"2x2", "3x3", "4x4"}
    assert (
        meta["view_accuracy"]["4x4"]["object_cells"] + meta["view_accuracy"]["4x4"]["stuff_cells"]
        == 16 * 200
    )
    assert meta["world_version"] == scenes.WORLD_VERSION
    assert meta["image_size"] == 32 and meta["context_length"] == config.context_length
    teacher = build_teacher(
        TeacherConfig(
            model="caption-clip",
            pretrained=str(weights),
            model_config=meta["model_config"],
            context_length=meta["context_length"],
            grids=(1, 2),
        )
    )
    views = teacher.encode_views(torch.rand(2, 3, 32, 32))
    assert views.shape == (2, 5, 16) and torch.isfinite(views).all()
    assert teacher.build_classifier([["circle"], ["sky"]], ["a photo of a {}."]).shape == (2, 16)

    with pytest.raises(ZeroSegError, match="views_per_scene"):
        dataclasses.replace(config, views_per_scene=0)

    def fail(*args, **kwargs):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(caption_clip, "train_caption_clip", fail)
    assert caption_clip.load_or_train_caption_clip(config, tmp_path) == weights
    with pytest.raises(AssertionError):
        caption_clip.load_or_train_caption_clip(config.__class__(steps=3), tmp_path)
    with pytest.raises(AssertionError):  # asked to retrain
        caption_clip.load_or_train_caption_clip(config, tmp_path, retrain=True)
    meta["world_version"] = scenes.WORLD_VERSION - 1
    (tmp_path / "teacher.json").write_text(json.dumps(meta))  # a teacher of an older world
    with pytest.raises(AssertionError):
        caption_clip.load_or_train_caption_clip(config, tmp_path)


def test_multi_positive_contrastive_loss():
    from zeroseg.synthetic.caption_clip import contrastive_loss

    torch.manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    ids = torch.tensor([0, 1, 2, 3])
    distinct = contrastive_loss(features, features, torch.tensor(10.0), ids)
    logits = 10.0 * features @ features.T
    clip = torch.nn.functional.cross_entropy(logits, torch.arange(4))  # CLIP's loss, symmetric
    assert torch.allclose(distinct, clip, atol=1e-5)
    twins = torch.tensor([0, 0, 1, 1])  # equal captions: each other's positives, not negatives
    targets = torch.tensor([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]])
    image_side = -(targets * logits.log_softmax(1)).sum(1).mean()
    text_side = -(targets * logits.T.log_softmax(1)).sum(1).mean()
    loss = contrastive_loss(features, features, torch.tensor(10.0), twins)
    assert torch.allclose(loss, (image_side + text_side) / 2, atol=1e-6)
    assert not torch.allclose(loss, distinct)
