"""Data: unlabelled training images, the teacher-feature cache and the evaluation benchmarks."""
