"""Procedural, verifiable reasoning tasks sized for a tiny model.

Each task enumerates a finite pool of problems; a problem's split is decided by a hash of its
canonical key, so train / validation / test can never overlap whatever the sizes or seeds asked
for. Sampling from a split's pool is deterministic given the seed.

Prompts are terse on purpose (``"23+45="``): a character-level model of a few hundred thousand
parameters has to learn them in a minute of CPU time.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

SPLITS = ("train", "validation", "test")
# Share of the hash space per split, in percent: train 80, validation 10, test 10.
_SPLIT_BOUNDS = {"train": (0, 80), "validation": (80, 90), "test": (90, 100)}


@dataclass(frozen=True)
class Problem:
    """One problem: a canonical key (decides the split), its prompt and its answer."""

    key: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class TaskSpec:
    """A procedural task: its domain, the scorer that checks it, and its problem pool."""

    name: str
    domain: str
    scorer: str
    description: str
    pool: Callable[[], Iterator[Problem]]


def _addition() -> Iterator[Problem]:
    for a, b in itertools.product(range(100), range(100)):
        yield Problem(key=f"{a}+{b}", prompt=f"{a}+{b}=", answer=str(a + b))


def _sorting() -> Iterator[Problem]:
    for digits in itertools.product("0123456789", repeat=4):
        text = "".join(digits)
        yield Problem(key=text, prompt=f"sort {text}", answer="".join(sorted(text)))


def _add_digit() -> Iterator[Problem]:
    for a, b in itertools.product(range(1000), range(10)):
        yield Problem(key=f"{a}+{b}", prompt=f"{a}+{b}=", answer=str(a + b))


_OPS: dict[str, Callable[[int, int], int]] = {
    "+=": lambda x, k: x + k,
    "-=": lambda x, k: x - k,
    "*=": lambda x, k: x * k,
}


def _program() -> Iterator[Problem]:
    steps = [(op, k) for op in _OPS for k in range(1, 10) if not (op == "*=" and k > 3)]
    for x0 in range(10):
        for (op1, k1), (op2, k2) in itertools.product(steps, repeat=2):
            x = _OPS[op2](_OPS[op1](x0, k1), k2)
            code = f"x={x0};x{op1}{k1};x{op2}{k2}"
            yield Problem(key=code, prompt=f"{code};x?", answer=str(x))


def _counter() -> Iterator[Problem]:
    steps = [(op, k) for op in ("+=", "-=") for k in range(1, 10)]
    for x0 in range(10):
        for (op1, k1), (op2, k2) in itertools.product(steps, repeat=2):
            x = _OPS[op2](_OPS[op1](x0, k1), k2)
            code = f"x={x0};x{op1}{k1};x{op2}{k2}"
            yield Problem(key=code, prompt=f"{code};x?", answer=str(x))


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("addition", "math", "integer", "two-number addition, operands 0-99", _addition),
        TaskSpec("sorting", "logic", "exact_match", "sort four digits ascending", _sorting),
        TaskSpec("program", "simulation", "integer", "value of x after two assignments", _program),
        # The embedded default's math and simulation tasks: learnable by its ~0.6 M-parameter model in
        # its warm-up (addition of two 0-99 operands and the *= programs stay near 0 there).
        TaskSpec("add_digit", "math", "integer", "a number 0-999 plus one digit", _add_digit),
        TaskSpec(
            "counter", "simulation", "integer", "value of x after adding or subtracting two digits", _counter
        ),
    )
}


def split_of(task: str, key: str) -> str:
    """The split a problem belongs to, from a stable hash of ``task`` and its key."""
    bucket = int(hashlib.sha256(f"{task}:{key}".encode()).hexdigest(), 16) % 100
    for split, (lo, hi) in _SPLIT_BOUNDS.items():
        if lo <= bucket < hi:
            return split
    raise AssertionError("unreachable: bounds cover 0-99")


def get_task(name: str) -> TaskSpec:
    """The task called ``name``; the error lists the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown procedural task {name!r}; known: {', '.join(sorted(TASKS))}") from None


def generate(task: str, split: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows of ``task`` from ``split``, in rlpipe's normalised row schema.

    Raises ``ValueError`` when the split's pool holds fewer than ``n`` problems.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    spec = get_task(task)
    pool = [p for p in spec.pool() if split_of(task, p.key) == split]
    if n > len(pool):
        raise ValueError(f"task {task!r} split {split!r} has {len(pool)} problems; {n} were asked for")
    rng = random.Random(f"{seed}:{task}:{split}")
    chosen = rng.sample(pool, n)
    return [
        {
            "id": f"{task}/{split}/{i}",
            "domain": spec.domain,
            "task": task,
            "prompt": [{"role": "user", "content": p.prompt}],
            "ground_truth": p.answer,
            "scorer": spec.scorer,
            "solution": p.answer,
            "extra_info": {"split": split, "index": i, "key": p.key},
        }
        for i, p in enumerate(chosen)
    ]
