"""Shared fixtures for the tests that train or probe a real model: one tiny Qwen2 per module, a
deterministic single-thread setup, and the ``test_digit_share`` scorer (a dense reward the random
tiny model earns in varying amounts, so every GRPO group has reward variance; the real scorers give
it 0)."""

from __future__ import annotations

import pytest
import torch

from rlpipe.models import build_tiny_model
from rlpipe.rewards.registry import SCORERS

TINY_ARCH = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "max_positions": 64,
}
SCORERS.setdefault(
    "test_digit_share", lambda response, ground_truth, extra=None: sum(map(str.isdigit, response)) / 8
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(path, TINY_ARCH, seed=0)
    return str(path)


@pytest.fixture
def one_thread():
    """One torch thread and seed 0 for the test, restored after (opt in: training tests use it)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(old)
