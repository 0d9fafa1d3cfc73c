"""Benchmarks: the evaluation datasets and their preparation, mmseg-identical metrics, the
evaluation loop, the published protocols, class-name files, and grouping diagnostics.
"""
