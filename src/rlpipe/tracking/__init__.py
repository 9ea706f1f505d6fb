"""Tracking: logging with progress/ETA, atomic writes, metrics files and W&B."""
