"""Teacher-only baselines with the ``Segmenter`` API (``set_vocabulary``, ``predict``).

- ``zeroseg.baselines.dense_clip.DenseCLIPSegmenter``: MaskCLIP-style dense readout of the teacher.
- ``zeroseg.baselines.teacher_crops``: grid / sliding crops classified by the teacher.
"""
