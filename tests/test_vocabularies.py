"""Shipped class-name files: sizes, flavours, and load-time validation."""

from __future__ import annotations

import pytest

from zeroseg.benchmark.datasets import COCO_OBJECT_CLASSES, CONTEXT_CLASSES, VOC_CLASSES
from zeroseg.benchmark.vocabularies import load_vocabulary, parse_vocabulary, read_vocabulary
from zeroseg.errors import ZeroSegError

SIZES = {
    "voc": 21, "voc20": 20, "context": 60, "context59": 59, "coco-object": 81,
    "coco-stuff": 171, "ade": 150, "cityscapes": 19,
}  # fmt: skip


@pytest.mark.parametrize("flavour", ["groupvit", "sclip", "sclip-clean", "clearclip"])
@pytest.mark.parametrize("dataset", list(SIZES))
def test_every_shipped_file_loads_with_the_right_size(dataset, flavour):
    vocab = load_vocabulary(dataset, flavour)
    assert len(vocab.class_names) == SIZES[dataset]
    assert vocab.has_background == (dataset in ("voc", "context", "coco-object"))
    if vocab.has_background:
        assert vocab.class_names[0] == ["background"]
        assert len(vocab.foreground) == SIZES[dataset] - 1
    if flavour == "groupvit" or not vocab.has_background:
        assert vocab.background_words == []


def test_groupvit_names_follow_groupvit():
    voc = load_vocabulary("voc").display_names
    assert voc[11] == "table" and voc[16] == "plant" and voc[20] == "monitor"
    assert [n for n in voc if n not in VOC_CLASSES] == ["table", "plant", "monitor"]
    context = load_vocabulary("context").display_names
    assert context[1] == "airplane" and context[40] == "plant" and context[55] == "monitor"
    assert load_vocabulary("coco-object").display_names == list(COCO_OBJECT_CLASSES)
    assert load_vocabulary("context59").display_names == context[1:]


def test_sclip_flavour_synonyms_and_background_words():
    voc = load_vocabulary("voc", "sclip")
    assert len(voc.background_words) == 26 and voc.background_words[0] == "sky"
    assert voc.class_names[15][:2] == ["person", "person in shirt"]
    assert voc.class_names[20] == [
        "television monitor",
        "tv monitor",
        "monitor",
        "television",
        "screen",
    ]
    assert load_vocabulary("context", "sclip").background_words == ["background"]
    assert load_vocabulary("context59", "sclip").display_names == list(CONTEXT_CLASSES[1:])
    coco = load_vocabulary("coco-object", "sclip")  # the authors' file: bed in both places
    assert "bed" in coco.background_words and "bed" in coco.display_names
    assert coco.class_names[1][-1] == "body"
    clean = load_vocabulary("coco-object", "sclip-clean")
    assert "bed" not in clean.background_words and clean.class_names == coco.class_names
    assert load_vocabulary("voc20", "sclip-clean").class_names == voc.class_names[1:]


def test_clearclip_flavour_single_names_and_background_query():
    voc = load_vocabulary("voc", "clearclip")
    assert voc.background_words == ["background"]
    assert voc.class_names[15] == ["person"] and voc.class_names[20] == ["tvmonitor"]
    assert voc.class_names[4] == ["ship"]
    assert load_vocabulary("voc20", "clearclip").class_names == voc.class_names[1:]
    coco = load_vocabulary("coco-object", "clearclip")
    assert coco.background_words == ["background"]
    assert coco.display_names[1:] == list(COCO_OBJECT_CLASSES[1:])
    context = load_vocabulary("context", "clearclip")
    assert context.class_names == load_vocabulary("context", "sclip").class_names


@pytest.mark.parametrize(
    "text, message",
    [
        ("background\ncat\n\ndog\n", "empty name on line 3"),
        ("background\ncat; \n", "empty name on line 2"),
        ("background\ncat\nkitty; Cat\n", "duplicate class name 'Cat'"),
        ("background\ncat, kitty\n", "'cat, kitty' on line 2 contains a comma"),
        ("grass; cat\ncat\ndog\n", "background word 'cat' is also a class name"),
        ("grass; grass\ncat\n", "duplicate background word 'grass'"),
    ],
)
def test_invalid_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "mine.txt"
    path.write_text(text)
    with pytest.raises(ZeroSegError, match=message) as info:
        read_vocabulary(path, has_background=True)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_groupvit_background_line_must_be_background():
    with pytest.raises(ZeroSegError, match="first class must be 'background'"):
        parse_vocabulary("sky; wall\ncat\n", "x.txt", has_background=True, background_is_text=False)


def test_comments_and_custom_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("# my classes\ncat; kitty\ndog\n")
    vocab = read_vocabulary(path, has_background=False)
    assert vocab.class_names == [["cat", "kitty"], ["dog"]] and vocab.display_names == [
        "cat",
        "dog",
    ]


def test_unknown_names_are_errors():
    with pytest.raises(ZeroSegError, match="unknown dataset"):
        load_vocabulary("ade20k")
    with pytest.raises(ZeroSegError, match="unknown vocabulary flavour"):
        load_vocabulary("voc", "naclip")


def test_apply_to_sets_background_convention():
    calls = []

    class Recorder:
        def set_vocabulary(self, class_names, background=False, background_words=()):
            calls.append((class_names, background, background_words))

    load_vocabulary("voc", "sclip").apply_to(Recorder())
    load_vocabulary("voc20").apply_to(Recorder())
    (names, background, words), (names20, background20, words20) = calls
    assert len(names) == 20 and background and len(words) == 26
    assert len(names20) == 20 and not background20 and words20 == []
