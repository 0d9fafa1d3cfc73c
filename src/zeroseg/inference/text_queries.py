"""Class names as text queries of a CLIP teacher, shared by the student and the teacher baselines.

Each class may have synonyms (each one its own query); the teacher's text encoder embeds every query
with a template set (prompt ensembling). Scores are a softmax over all queries at a logit scale, then
a class takes the max over its synonyms. Optional background words are queries of their own whose best
score feeds the background channel (SCLIP convention); GroupViT's background is a threshold only.

Shapes: Q queries, K classes, K' = K (+1 when background words are used), D embedding size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zeroseg.errors import ZeroSegError
from zeroseg.inference.prompts import get_templates
from zeroseg.models.teacher import CLIPTeacher


def validate_class_names(names: Sequence[str]) -> list[str]:
    """Empty lists, empty names and (case-insensitive) duplicates are one-line errors."""
    names = list(names)
    if not names or any(not n for n in names):
        raise ZeroSegError("the class list is empty or has an empty name")
    seen = set()
    for name in names:
        if name.lower() in seen:
            raise ZeroSegError(f"class {name!r} appears twice in the class list")
        seen.add(name.lower())
    return names


def class_entries(class_names: object, what: str = "class names") -> list[list[str]]:
    """``class_names`` as a list of synonym lists, or a one-line error for a wrong type: a string
    (pass a list, or ``parse_class_list`` for "cat, dog"), a number, a list holding anything but
    strings and lists of strings, or an empty list or entry."""
    if isinstance(class_names, str | bytes):
        raise ZeroSegError(
            f"{what} must be a list of strings, e.g. ['cat', 'dog'], not the string "
            f"{_short(class_names)} (parse_class_list splits 'cat, dog' into a list)"
        )
    if not isinstance(class_names, Sequence | set | frozenset) or isinstance(class_names, dict):
        raise ZeroSegError(
            f"{what} must be a list of strings, e.g. ['cat', 'dog'], got {type(class_names).__name__}"
        )
    entries = []
    for entry in class_names:
        names = [entry] if isinstance(entry, str) else entry
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ZeroSegError(
                f"{what}: each entry must be a string or a list of synonym strings, got "
                f"{_short(entry)} ({type(entry).__name__})"
            )
        if not names or any(not n.strip() for n in names):
            raise ZeroSegError(f"{what}: an entry is empty or has an empty name")
        entries.append(list(names))
    return entries


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_class_list(text: str) -> list[str | list[str]]:
    """Split "cat | kitten, dog, grass" into classes (validated).

    Commas separate classes; ``|`` separates synonyms of one class (the first is the display
    name), as a list in the result. Newlines separate classes too (a pasted list's leading and
    trailing blank lines are ignored; an empty name between separators is an error).
    """
    classes: list[str | list[str]] = []
    for item in text.strip().replace("\n", ",").split(","):
        names = [name.strip() for name in item.split("|")]
        if any(not name for name in names) and len(names) > 1:
            raise ZeroSegError(f"class {item.strip()!r} has an empty synonym")
        classes.append(names[0] if len(names) == 1 else names)
    validate_class_names([c if isinstance(c, str) else c[0] for c in classes])
    return classes


@dataclass
class TextQueries:
    """Embedded queries of a class list.

    Attributes:
        names: display names aligned with output indices ("background" first when used).
        text: (Q, D) L2-normalised query embeddings.
        query_class: (Q,) class index of each query, -1 for background words.
        background: whether output index 0 is background.
    """

    names: list[str]
    text: Tensor
    query_class: Tensor
    background: bool

    @property
    def num_classes(self) -> int:
        """K: classes excluding background."""
        return len(self.names) - int(self.background)

    @classmethod
    def build(
        cls,
        teacher: CLIPTeacher,
        class_names: Sequence[str | Sequence[str]],
        templates: str = "imagenet80",
        background: bool = False,
        background_words: Sequence[str] = (),
        cache: dict | None = None,
    ) -> TextQueries:
        """Embed each class's names (a sequence entry = synonyms; the first is the display name)."""
        classes = class_entries(class_names)
        validate_class_names([c[0] for c in classes])
        if background_words:
            background_words = [w for entry in class_entries(background_words, "background words")
                                for w in entry]  # fmt: skip
        if background_words and not background:
            raise ZeroSegError("background words need background=True")
        queries, owners = [], []
        for index, names in enumerate(classes):
            queries += names
            owners += [index] * len(names)
        queries += list(background_words)
        owners += [-1] * len(background_words)
        cache = {} if cache is None else cache
        prompts = get_templates(templates)
        for query in queries:
            if (query, templates) not in cache:
                cache[(query, templates)] = teacher.build_classifier([[query]], prompts)[0]
        text = torch.stack([cache[(q, templates)] for q in queries])
        display = (["background"] if background else []) + [c[0] for c in classes]
        return cls(display, text, torch.tensor(owners, device=text.device), background)

    def class_max(self, values: Tensor) -> Tensor:
        """(..., Q) per-query values -> (..., K') max over each class's synonyms, bg words last."""
        columns = [
            values[..., self.query_class == k].max(-1).values for k in range(self.num_classes)
        ]
        if (self.query_class < 0).any():
            columns.append(values[..., self.query_class < 0].max(-1).values)
        return torch.stack(columns, dim=-1)

    def logits(self, embeddings: Tensor, logit_scale: float) -> Tensor:
        """(..., D) image-side embeddings -> (..., Q) scaled cosine similarities."""
        return logit_scale * F.normalize(embeddings.float(), dim=-1) @ self.text.T

    def probabilities(self, embeddings: Tensor, logit_scale: float) -> Tensor:
        """(..., D) embeddings -> (..., K') class probabilities (softmax over queries, class max)."""
        return self.class_max(self.logits(embeddings, logit_scale).softmax(-1))

    def top_k_restricted(self, logits: Tensor, image_logits: Tensor, k: int) -> Tensor:
        """GroupViT's image-level restriction: (..., Q) logits -> (..., K') probabilities.

        The image's top-k classes are chosen by ``image_logits`` (Q,), the scores of the whole
        image's embedding; the other classes' queries are masked out and the softmax is taken over
        the rest (background words always stay). GroupViT multiplies this by the unrestricted
        probabilities (``probabilities``); the callers do.
        """
        image_scores = self.class_max(image_logits)[: self.num_classes]
        keep_classes = image_scores.topk(min(k, self.num_classes)).indices
        keep = torch.isin(self.query_class, keep_classes) | (self.query_class < 0)
        return self.class_max(logits.masked_fill(~keep, float("-inf")).softmax(-1))

    def with_background(self, pixel_scores: Tensor, threshold: float, best: float) -> Tensor:
        """(K', H, W) pixel class scores -> (C, H, W) with the background channel first if used.

        GroupViT's rule: a pixel is background (score 1) when its best class score is below
        min(threshold, best), ``best`` being the best class score in the image or window. The best
        background-word score, when there are background words, also counts as background.
        """
        fg = pixel_scores[: self.num_classes]
        if not self.background:
            return fg
        bg = (fg.max(dim=0).values < min(threshold, best)).float()
        if pixel_scores.shape[0] > self.num_classes:
            bg = torch.maximum(bg, pixel_scores[self.num_classes])
        return torch.cat([bg.unsqueeze(0), fg])
