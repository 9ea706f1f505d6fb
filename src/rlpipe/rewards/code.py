"""Code-generation scorer (HumanEval, MBPP, LiveCodeBench, LeetCode): model code run against tests, sandboxed.

``code``: 1 only when every test passes, else 0. Parity with the GURU reference (Reasoning360's
``coder1.compute_score``, the function its reward router uses for ``codegen__*``) is measured on
``tests/rewards/parity/cases/guru_code.jsonl``; where rlpipe differs on purpose the decision is named.

* The program is every fenced block tagged ``python``/``py``/``python3`` in the answer region, joined in
  order (so a solution followed by an "example usage" block runs as one program, as in the reference);
  when no block is tagged Python, every untagged block, joined. A response with no fenced code block has
  no program: 0 (as in the reference). The answer region is the text after ``</think>``. The first
  line's indentation is kept (the reference strips it), so a body-only completion can continue an
  ``extra_info["prefix"]`` that ends in the function's signature.
  Decisions: ``code.require-closed-think`` -- a response that opened ``<think>`` and never closed it was
  cut off mid-reasoning and has no answer (the reference runs the code blocks of the unfinished
  reasoning); ``code.python-blocks-only`` -- when a block is tagged Python, untagged blocks (sample
  input/output) and blocks in another language (``text``, ``bash``) are not part of the program (the
  reference runs every block, so a correct solution followed by a sample-input block fails there).
* The ground truth (a JSON string or an already-decoded dict) is one of
  ``{"functional": "<test code>"}``: the test code is appended to the program and run once; it passes
  when the process exits with status 0 *after the tests ran* (assertion errors, exceptions, timeouts
  fail). Decision ``code.refuse-early-exit``: ``sys.exit(0)`` or ``os._exit(0)`` before the tests skips
  them and scores 1 in the reference; rlpipe fails it (``SystemExit`` fails the case, and a random token
  printed after the tests must reach stdout -- in-process tests cannot be made tamper-proof against code
  that digs the token out of the interpreter's memory, a known gap);
  ``{"inputs": [...], "outputs": [...]}``: the program runs once per input on stdin (an input of
  ``None`` is empty stdin); each stdout must equal the expected output as the reference compares them:
  both stripped, then equal, or the same number of lines with each line equal or its whitespace-split
  tokens equal one by one -- exactly, ``yes``/``no`` in any letter case, or as numbers within 1e-6
  (absolute difference);
  ``{"inputs", "outputs", "fn_name"}``: call-based (LeetCode style, the prime_code / APPS layout; the
  GURU data has no such rows): each input is newline-separated JSON arguments, passed to
  ``Solution().<fn_name>`` (or a top-level ``<fn_name>``), the JSON-encoded return value compared with the
  expected one (floats within 1e-6). The program is preceded by the import header of the reference's
  call-based harness (Reasoning360 ``prime_code/testing_util.py``: ``from collections import *``,
  ``heapq``, ``math``, ``itertools``, ``functools``, ``typing`` ... and a raised recursion limit), so a
  LeetCode-style solution that uses ``deque`` or ``heappush`` without importing them runs.
  Other formats (e.g. the reference's ``{"pytest": ...}``, used by no suite task) score 0 with a warning.
* ``extra_info["prefix"]`` (GURU LeetCode rows: the import header and helper classes of the data set) is
  prepended to the program of a ``functional`` test, as in the reference (only when the result still
  compiles, so a prefix cannot break an otherwise valid program).
* Execution uses ``rlpipe.rewards.sandbox.run_python`` with ``DEFAULT_LIMITS`` (never the reference's
  unsandboxed local execution); stops at the first failing case. Infrastructure failures (no sandbox)
  are logged and score 0.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from typing import Any

from rlpipe.rewards.extract import answer_region, fenced_blocks
from rlpipe.rewards.registry import register
from rlpipe.rewards.sandbox import Limits, run_python

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()
_PY_TAGS = ("python", "py", "python3")


def extract_code(response: str) -> str | None:
    """The program to run (see module docstring); None when the response offers none."""
    region = answer_region(response)
    if region is None:
        return None
    blocks = fenced_blocks(region)
    python = [body for lang, body in blocks if lang in _PY_TAGS]
    chosen = python or [body for lang, body in blocks if lang == ""]
    # blank lines around are dropped, indentation kept: a body-only completion continues a prefix
    # that ends in its signature (the reference strips the indentation too, and so fails it)
    program = "\n".join(body.rstrip("\n") for body in chosen).strip("\n").rstrip()
    return program if program.strip() else None


def parse_tests(ground_truth: Any) -> dict | None:
    """The test specification as a dict, or None when it is not one of the supported formats."""
    tests = ground_truth
    if isinstance(tests, bytes):
        tests = tests.decode("utf-8", "replace")
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)
        except (ValueError, RecursionError):
            return None
    if not isinstance(tests, dict):
        return None
    if "functional" in tests or ("inputs" in tests and "outputs" in tests):
        return tests
    return None


def _is_float_token(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tokens_match(x: str, y: str) -> bool:
    if x == y:
        return True
    if x.lower() in ("yes", "no") and y.lower() in ("yes", "no"):
        return x.lower() == y.lower()
    fx, fy = _is_float_token(x), _is_float_token(y)
    return fx is not None and fy is not None and abs(fx - fy) <= 1e-6


def tokens_match(got: str, expected: str) -> bool:
    """Whitespace-split tokens equal one by one: exactly, yes/no in any case, or numbers within 1e-6."""
    a, b = got.split(), expected.split()
    return len(a) == len(b) and all(_tokens_match(x, y) for x, y in zip(a, b, strict=True))


def outputs_match(got: str, expected: str) -> bool:
    """Whether a program's stdout equals the expected output (see module docstring).

    Both are stripped (so leading/trailing blank lines do not count); then line by line, each line equal
    or its tokens equal (:func:`tokens_match`). Line structure matters: ``"a b"`` does not match ``"a\\nb"``.
    """
    g = got.strip().replace("\r\n", "\n")
    e = str(expected).strip().replace("\r\n", "\n")
    if g == e:
        return True
    g_lines, e_lines = g.split("\n"), e.split("\n")
    return len(g_lines) == len(e_lines) and all(
        x == y or tokens_match(x, y) for x, y in zip(g_lines, e_lines, strict=True)
    )


def values_match(got: Any, expected: Any) -> bool:
    """Structural equality of decoded JSON values; floats within 1e-6; tuples equal lists."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return got is expected if isinstance(got, bool) and isinstance(expected, bool) else False
    if isinstance(got, int | float) and isinstance(expected, int | float):
        return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-6)
    if isinstance(got, list | tuple) and isinstance(expected, list | tuple):
        return len(got) == len(expected) and all(
            values_match(x, y) for x, y in zip(got, expected, strict=True)
        )
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(values_match(got[k], expected[k]) for k in got)
    return got == expected


def _as_text(value: Any) -> str:
    """A test input/output as text; ``None`` is nothing (empty stdin), not the word "None"."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


# The import header the reference's call-based harness (Reasoning360 prime_code/testing_util.py, the
# APPS/TACO layout) puts before the solution: LeetCode-style code uses these names without importing.
_HEADER_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json",
)  # fmt: skip
_CALL_HEADER = (
    "".join(f"from {m} import *\n" for m in _HEADER_MODULES)
    + "from builtins import *\nfrom typing import *\n"
    + "".join(f"import {m}\n" for m in _HEADER_MODULES)
    + "sys.setrecursionlimit(6 * 10**5)\n"
)
_CALL_DRIVER = """

def __rlpipe_call():
    import json as _json
    import sys as _sys
    _args = [_json.loads(_line) for _line in _sys.stdin.read().splitlines() if _line.strip()]
    _fn = None
    if "Solution" in globals():
        _fn = getattr(globals()["Solution"](), {name!r}, None)
    if _fn is None:
        _fn = globals()[{name!r}]
    _sys.stdout.write(_json.dumps(_fn(*_args)))

__rlpipe_call()
"""


# Printed after the tests: an exit before them (``os._exit(0)`` included) never prints the token.
_DONE = (
    "import os as __rlpipe_os, sys as __rlpipe_sys\n"
    "__rlpipe_sys.stdout.flush()\n"
    "__rlpipe_os.write(1, b'\\n{token}\\n')\n"
)


def run_tests(program: str, tests: dict, limits: Limits | None = None) -> float:
    """Run ``program`` against parsed ``tests``; 1.0 when all pass (limits: ``DEFAULT_LIMITS``)."""
    limits = limits or DEFAULT_LIMITS
    if "functional" in tests:
        token = secrets.token_hex(16)
        source = f"{program}\n\n{tests['functional']}\n\n{_DONE.format(token=token)}"
        result = run_python(source, None, limits, exit_fails=True)
        if result.error:
            log.warning("code sandbox error: %s", result.error)
        return float(result.all_ok and token in result.cases[-1].stdout)
    inputs, outputs = list(tests["inputs"]), list(tests["outputs"])
    if not inputs or len(inputs) != len(outputs):
        return 0.0
    fn_name = tests.get("fn_name")
    source = _CALL_HEADER + program + _CALL_DRIVER.format(name=str(fn_name)) if fn_name else program
    result = run_python(source, [_as_text(i) for i in inputs], limits)
    if result.error:
        log.warning("code sandbox error: %s", result.error)
    if not result.all_ok or len(result.cases) != len(outputs):
        return 0.0
    for case, expected in zip(result.cases, outputs, strict=True):
        if fn_name:
            try:
                got = json.loads(case.stdout)
                want = json.loads(expected) if isinstance(expected, str) else expected
            except (ValueError, RecursionError):
                return 0.0
            try:
                if not values_match(got, want):
                    return 0.0
            except RecursionError:
                return 0.0
        elif not outputs_match(case.stdout, _as_text(expected)):
            return 0.0
    return 1.0


@register("code")
def code_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the extracted program passes every test of the ground truth in the sandbox."""
    program = extract_code(response)
    tests = parse_tests(ground_truth)
    if tests is None:
        log.warning("code scorer: unsupported ground truth format %r", str(ground_truth)[:80])
        return 0.0
    if program is None:
        return 0.0
    if "functional" in tests:
        program = with_prefix(program, (extra_info or {}).get("prefix"))
    return run_tests(program, tests)


def with_prefix(program: str, prefix: Any) -> str:
    """Prepend GURU's ``extra_info["prefix"]`` (imports / the given signature) when the result compiles.

    A prefix that would break an otherwise valid program (e.g. an unfinished ``def`` line) is left out,
    so the prefix can only help a solution that relies on it (``List`` without ``from typing import``).
    """
    if not isinstance(prefix, str) or not prefix.strip():
        return program
    combined = f"{prefix.rstrip()}\n\n{program}"
    try:
        compile(combined, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return program
    return combined
