"""A synthetic world for seeing ZeroSeg work on a small CPU (issue #3).

- ``zeroseg.synthetic.scenes``: seeded procedural scenes (5 textured stuff classes, 8 shapes) with
  per-pixel labels and captions, close-ups, in-memory sets; ``painting`` paints their pixels and
  ``writers`` writes them in the formats real data comes in.
- ``zeroseg.synthetic.caption_clip``: a small open_clip CLIP trained on those captions only, the
  teacher of the synthetic world (loadable by ``zeroseg.teacher.build_teacher``).
- ``zeroseg.synthetic.demo``: ``zeroseg demo``, the whole chain; ``evaluate``, ``report`` and
  ``upper_bound`` serve it and the ablation benchmark.
"""
