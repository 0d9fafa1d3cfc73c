"""Inference: the ``Segmenter`` (GroupViT's recipe, paper §6), text queries and prompt templates,
resizing, banded labels, PAMR, release folders, and the teacher-only readout and crop segmenters.
"""
