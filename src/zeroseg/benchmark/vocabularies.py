"""Class-name files of the benchmarks, in two flavours, validated when loaded.

Flavours:

- ``groupvit``: GroupViT's names (VOC "table", "plant", "monitor"; Context "airplane"; the 80 COCO
  names). Background is GroupViT's probability threshold, never a text query, so
  ``background_words`` is empty. Use it for parity with the ZeroSeg paper.
- ``sclip``: SCLIP's names with synonyms ("person; person in shirt; ..."), as SCLIP and NACLIP
  ship them. For VOC and COCO-Object the background line is a list of stuff words, for Context
  the literal word "background"; these are text queries whose best score feeds the background
  channel. COCO-Object's background words include "bed", also a class, as in the authors' file
  (bed is then never predicted).
  (SCLIP's ``cls_context60.txt`` writes "wood " with a trailing space; stripped here, the CLIP
  tokenizer gives the same tokens for every template.)
- ``sclip-clean``: the same, without "bed" among COCO-Object's background words.
- ``clearclip``: ClearCLIP's files: single names (VOC's "person", "tvmonitor", "ship"; COCO's 80
  names) and the literal word "background" as the background query; Context is SCLIP's.

File format (``src/zeroseg/vocabularies/<dataset>_<flavour>.txt``): one class per line in label-index
order. **Synonyms on a line are separated by a semicolon and a space, "; "** (spaces around the
semicolon are stripped); the first is the display name. Lines starting with ``#`` are comments. For datasets with background, the first class line is
index 0 (background). A name containing a comma is rejected, because the SCLIP family's files use
commas as separators and a copied file would otherwise silently become one long class name.
Empty names, duplicate names (case-insensitive) and background words equal to a class name are
errors.

Datasets: ``voc`` (21, with background), ``voc20``, ``context`` (60, with background),
``context59``, ``coco-object`` (81, with background), ``coco-stuff`` (171), ``ade`` (150),
``cityscapes`` (19). ``voc20`` and ``context59`` are the files of ``voc`` and ``context`` without
their background line; the files of the last three have no background line. For those three the
authors' ``cls_coco_stuff.txt``, ``cls_ade20k.txt`` and ``cls_city_scapes.txt`` are one file each,
byte for byte the same in SCLIP, ClearCLIP and NACLIP (mmseg's names without spaces, no
synonyms), shipped as the ``sclip`` flavour that ``clearclip`` and ``sclip-clean`` fall back to;
their ``groupvit`` flavour is mmseg's names as written (TCL's, GroupViT has none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from zeroseg.errors import ZeroSegError

logger = logging.getLogger(__name__)

SEPARATOR = "; "
FLAVOURS = ("groupvit", "sclip", "sclip-clean", "clearclip")
# flavour -> the flavour whose file a dataset falls back to when it has none of its own
_FALLBACK = {"sclip-clean": "sclip", "clearclip": "sclip"}
# flavours reproducing authors' files, where a background word may also be a class name
_SHARED_BACKGROUND = ("sclip", "clearclip")
# dataset -> (file stem, background kept, number of classes including background)
DATASETS: dict[str, tuple[str, bool, int]] = {
    "voc": ("voc", True, 21),
    "voc20": ("voc", False, 20),
    "context": ("context", True, 60),
    "context59": ("context", False, 59),
    "coco-object": ("coco-object", True, 81),
    "coco-stuff": ("coco-stuff", False, 171),
    "ade": ("ade", False, 150),
    "cityscapes": ("cityscapes", False, 19),
}
# file stems whose files have no background line (every line is a class)
_NO_BACKGROUND_LINE = ("coco-stuff", "ade", "cityscapes")


@dataclass(frozen=True)
class Vocabulary:
    """The text side of one benchmark.

    Attributes:
        class_names: one entry per label index; each a list of synonyms, the first the display
            name. With background, entry 0 is ``["background"]``.
        has_background: whether label index 0 is background.
        background_words: text queries for the background (empty for the GroupViT flavour, whose
            background is a threshold only).
        dataset, flavour, source: where it came from (recorded in results).
    """

    class_names: list[list[str]]
    has_background: bool
    background_words: list[str] = field(default_factory=list)
    dataset: str = ""
    flavour: str = ""
    source: str = ""

    @property
    def display_names(self) -> list[str]:
        """One name per label index."""
        return [names[0] for names in self.class_names]

    @property
    def foreground(self) -> list[list[str]]:
        """The classes that are text queries (all but background)."""
        return self.class_names[1:] if self.has_background else self.class_names

    def apply_to(self, segmenter) -> None:
        """Set this vocabulary on a segmenter so its label indices match the dataset's."""
        segmenter.set_vocabulary(
            self.foreground,
            background=self.has_background,
            background_words=list(self.background_words),
        )


def load_vocabulary(dataset: str, flavour: str = "groupvit") -> Vocabulary:
    """The shipped class names of a benchmark.

    Args:
        dataset: a name of ``DATASETS`` (voc, voc20, context, context59, coco-object,
            coco-stuff, ade, cityscapes).
        flavour: groupvit, sclip, sclip-clean or clearclip.

    Raises:
        ZeroSegError: unknown dataset or flavour, or an invalid file.
    """
    if dataset not in DATASETS:
        raise ZeroSegError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    if flavour not in FLAVOURS:
        raise ZeroSegError(
            f"unknown vocabulary flavour {flavour!r}: use one of {', '.join(FLAVOURS)}"
        )
    stem, keep_background, count = DATASETS[dataset]
    folder = resources.files("zeroseg.benchmark") / "vocabularies"
    file = f"{stem}_{flavour}.txt"
    if not (folder / file).is_file():
        file = f"{stem}_{_FALLBACK[flavour]}.txt"
    with_background = stem not in _NO_BACKGROUND_LINE
    full = parse_vocabulary(
        (folder / file).read_text(encoding="utf-8"),
        source=f"vocabularies/{file}",
        has_background=with_background,
        background_is_text=flavour != "groupvit",
        shared_background=flavour in _SHARED_BACKGROUND,
    )
    vocab = full if keep_background or not with_background else _drop_background(full)
    if len(vocab.class_names) != count:
        raise ZeroSegError(f"{vocab.source}: {len(vocab.class_names)} classes, expected {count}")
    return Vocabulary(
        vocab.class_names,
        vocab.has_background,
        vocab.background_words,
        dataset,
        flavour,
        vocab.source,
    )


def read_vocabulary(
    path: str | Path, *, has_background: bool, background_is_text: bool = True
) -> Vocabulary:
    """A user's class-name file in the same format (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ZeroSegError(f"class-name file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    vocab = parse_vocabulary(text, str(path), has_background, background_is_text)
    return Vocabulary(
        vocab.class_names,
        vocab.has_background,
        vocab.background_words,
        flavour="custom",
        source=str(path),
    )


def parse_vocabulary(
    text: str,
    source: str,
    has_background: bool,
    background_is_text: bool,
    shared_background: bool = False,
) -> Vocabulary:
    """Parse and validate a class-name file's text.

    Args:
        text: the file's content.
        source: the file's name, used in error messages.
        has_background: whether the first class line is background.
        background_is_text: the background line's words are text queries (SCLIP flavour);
            otherwise the line must be the single word "background" (GroupViT flavour).
        shared_background: a background word may also be a class name (the authors' files).
    """
    entries = []
    for number, line in enumerate(text.rstrip().splitlines(), start=1):
        if line.strip().startswith("#"):
            continue
        entries.append(_parse_line(line, source, number))
    if not entries:
        raise ZeroSegError(f"{source}: no classes")
    background_words: list[str] = []
    if has_background:
        first = entries.pop(0)
        if background_is_text:
            background_words = first
        elif first != ["background"]:
            raise ZeroSegError(f"{source}: the first class must be 'background', got {first[0]!r}")
    _check_unique(entries, background_words, source, shared_background)
    classes = ([["background"]] if has_background else []) + entries
    return Vocabulary(classes, has_background, background_words, source=source)


def _parse_line(line: str, source: str, number: int) -> list[str]:
    names = [name.strip() for name in line.split(SEPARATOR.strip())]
    for name in names:
        if not name:
            raise ZeroSegError(f"{source}: empty name on line {number}")
        if "," in name:
            raise ZeroSegError(
                f"{source}: name {name!r} on line {number} contains a comma; "
                f"synonyms are separated by {SEPARATOR!r}"
            )
    return names


def _check_unique(
    classes: list[list[str]], background_words: list[str], source: str, shared: bool = False
) -> None:
    seen: set[str] = set()
    for name in (n for names in classes for n in names):
        if name.lower() in seen:
            raise ZeroSegError(f"{source}: duplicate class name {name!r}")
        seen.add(name.lower())
    words: set[str] = set()
    for word in background_words:
        if word.lower() in seen and not shared:
            raise ZeroSegError(f"{source}: background word {word!r} is also a class name")
        if word.lower() in words:
            raise ZeroSegError(f"{source}: duplicate background word {word!r}")
        words.add(word.lower())


def _drop_background(vocab: Vocabulary) -> Vocabulary:
    return Vocabulary(vocab.class_names[1:], False, [], source=vocab.source)
