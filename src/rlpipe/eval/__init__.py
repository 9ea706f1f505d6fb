"""Evaluation: generation backends (one interface) and per-task metrics."""
