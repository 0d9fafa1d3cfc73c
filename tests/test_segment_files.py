"""Segmenting folders, globs and files: outputs per image, bad files skipped, COCO RLE masks."""

import json

import numpy as np
import pytest
from PIL import Image

from zeroseg import Segmenter
from zeroseg.apps.coco_masks import COCODocument, encode_mask
from zeroseg.apps.segment_files import collect_inputs
from zeroseg.apps.visualize import label_image
from zeroseg.cli import main
from zeroseg.inference.text_queries import parse_class_list


def _write(path, seed, size=(30, 41)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def photo_tree(tmp_path):
    root = tmp_path / "photos"
    for i in range(5):
        _write(root / f"sub{i % 2}" / f"img {i}.png", i)
    _write(root / "sub0" / "same.png", 10)
    _write(root / "sub1" / "same.png", 11)
    (root / "sub1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "notes.txt").write_text("not an image")
    return root


def test_collect_inputs_folders_globs_files(photo_tree, tmp_path):
    inputs, missing = collect_inputs([photo_tree])
    keys = [i.key for i in inputs]
    assert "sub0/same" in keys and "sub1/same" in keys and "sub1/broken" in keys
    assert len(inputs) == 8 and not missing
    inputs, missing = collect_inputs([str(photo_tree / "**" / "same.png"), tmp_path / "nope.png"])
    assert [i.key for i in inputs] == ["same", "same_2"]
    assert [m.path for m in missing] == [str(tmp_path / "nope.png")]


def test_folder_cli_skips_a_corrupt_file_and_does_the_rest(photo_tree, tmp_path, tiny_run, capsys):
    out = tmp_path / "seg"
    code = main(["segment", str(photo_tree), "--checkpoint", str(tiny_run), "--classes",
                 "cat | kitten, dog", "--out", str(out), "--coco", "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "1 of 8 inputs skipped" in captured.err and "Traceback" not in captured.err
    assert "7 images segmented" in captured.out and "images/s" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["images"]) == 7 and summary["images_per_second"] > 0
    assert summary["skipped"][0]["path"].endswith("broken.jpg")
    assert "broken.jpg" in summary["skipped"][0]["reason"]
    for record in summary["images"]:
        labels = np.asarray(Image.open(out / record["output"]))
        assert labels.shape == (30, 41)
        assert sum(c["pixels"] for c in record["classes"].values()) == labels.size
    assert not (out / "sub1" / "broken.png").exists()
    _check_coco(json.loads((out / "coco.json").read_text()), out, summary)


def _check_coco(coco, out, summary):
    from pycocotools import mask as mask_api

    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    assert len(coco["images"]) == len(summary["images"])
    for image, record in zip(coco["images"], summary["images"]):
        labels = np.asarray(Image.open(out / record["output"]))
        decoded = np.zeros_like(labels, dtype=np.int64) - 1
        for ann in (a for a in coco["annotations"] if a["image_id"] == image["id"]):
            mask = mask_api.decode(ann["segmentation"]).astype(bool)
            assert ann["area"] == mask.sum() == mask_api.area(ann["segmentation"])
            assert ann["bbox"] == mask_api.toBbox(ann["segmentation"]).astype(int).tolist()
            decoded[mask] = ann["category_id"] - 1
        assert np.array_equal(decoded, labels)


def test_rle_matches_pycocotools_on_random_masks():
    from pycocotools import mask as mask_api

    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 7), (9, 1), (13, 17), (64, 48), (200, 3)]
    for shape in shapes:
        for density in (0.0, 0.03, 0.5, 0.97, 1.0):
            mask = rng.random(shape) < density
            ours = encode_mask(mask)
            theirs = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
            assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(shape)
    big = np.zeros((300, 400), bool)
    big[20:280, 100:399] = True  # long runs exercise the multi-group encoding
    assert (
        encode_mask(big)["counts"]
        == mask_api.encode(np.asfortranarray(big.astype(np.uint8)))["counts"].decode()
    )


def test_coco_document_covers_every_pixel_once():
    labels = np.random.default_rng(1).integers(0, 3, (11, 13))
    doc = COCODocument(["a", "b", "c"])
    doc.add("x.png", labels)
    assert sum(a["area"] for a in doc.to_dict()["annotations"]) == labels.size


def test_class_lists_with_synonyms():
    assert parse_class_list("cat | kitten, dog,grass|lawn | turf") == [
        ["cat", "kitten"],
        "dog",
        ["grass", "lawn", "turf"],
    ]
    assert parse_class_list("cat\ndog") == ["cat", "dog"]
    for bad in ("cat |, dog", "cat | kitten, Cat"):
        with pytest.raises(Exception, match="empty synonym|twice"):
            parse_class_list(bad)


def test_more_than_255_classes_never_wrap(tmp_path, tiny_run):
    labels = np.array([[0, 255], [256, 499]])
    img = label_image(labels)
    assert img.mode == "I;16" and np.array_equal(np.asarray(img), labels)
    segmenter = Segmenter.from_checkpoint(tiny_run)
    segmenter.set_vocabulary([f"thing {i}" for i in range(300)])
    from zeroseg.apps.segment_files import segment_files

    image = _write(tmp_path / "in.png", 3)
    summary = segment_files(segmenter, [image], tmp_path / "out", progress=False)
    saved = np.asarray(Image.open(tmp_path / "out" / "in.png")).astype(np.int64)
    record = summary["images"][0]
    assert {c["index"] for c in record["classes"].values()} == set(np.unique(saved).tolist())
