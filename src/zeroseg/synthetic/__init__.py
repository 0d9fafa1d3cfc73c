"""A synthetic world for seeing ZeroSeg work on a small CPU.

- ``zeroseg.synthetic.scenes``: seeded procedural scenes (5 textured stuff classes, 8 shapes, each
  shape class with its own surface family from ``painting``) with per-pixel labels and captions,
  in-memory sets; ``writers`` writes them in the formats real data comes in.
- ``zeroseg.synthetic.crops``: captioned views of scenes at every scale (the teacher's data).
- ``zeroseg.synthetic.caption_clip``: a small open_clip CLIP trained on those captions only, the
  teacher of the synthetic world (loadable by ``zeroseg.models.teacher.build_teacher``); the package ships
  one trained with the defaults (``synthetic/teacher/``); ``views`` measures how well it names
  whole scenes and grid cells.
- ``zeroseg.synthetic.demo``: ``zeroseg demo``, the whole chain; ``evaluate``, ``report`` and
  ``upper_bound`` serve it and the benchmarks.
"""
