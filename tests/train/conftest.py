"""Every training test runs single-threaded with seed 0 (``one_thread`` and the tiny-model fixtures
are in tests/conftest.py)."""

import pytest


@pytest.fixture(autouse=True)
def _single_thread(one_thread):
    yield
