"""Training: the losses (paper §4), the one place where student, teacher and losses meet
(``task``), the optimiser schedule, checkpoints, and the loop (``loop.train``, also
``zeroseg.train``).
"""
