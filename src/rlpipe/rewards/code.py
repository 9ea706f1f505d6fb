"""Code-generation scorer (HumanEval, MBPP, LiveCodeBench): model code run against tests in the sandbox.

``code``: 1 only when every test passes, else 0.

* The program is the last fenced block tagged ``python``/``py``/``python3`` in the answer region, else
  the last untagged fenced block, else -- when there is no fenced block at all -- the whole answer
  region. A response whose only blocks are in another language (``cpp``) has no program: 0.
* The ground truth (a JSON string or an already-decoded dict) is one of
  ``{"functional": "<test code>"}``: the test code is appended to the program and run once; it passes
  when the process exits with status 0 (assertion errors, exceptions, timeouts fail; so does any
  ``SystemExit``, so ``sys.exit(0)`` before the tests cannot skip them -- ``os._exit(0)`` still can:
  in-process tests cannot be made tamper-proof against the code they test, a known gap);
  ``{"inputs": [...], "outputs": [...]}``: the program runs once per input on stdin; each stdout must
  equal the expected output line by line (same number of lines after stripping surrounding blank
  lines; per line, trailing spaces ignored and numeric tokens equal within 1e-6, absolute or relative);
  ``{"inputs", "outputs", "fn_name"}``: call-based (LeetCode style): each input is newline-separated
  JSON arguments, passed to ``Solution().<fn_name>`` (or a top-level ``<fn_name>``), the JSON-encoded
  return value compared with the expected one (floats within 1e-6).
  Other formats (e.g. the reference's ``{"pytest": ...}``, used by no suite task) score 0 with a warning.
* ``extra_info["prefix"]`` (GURU code rows), when present, is prepended if the result still compiles.
* Execution uses ``rlpipe.rewards.sandbox.run_python`` with ``DEFAULT_LIMITS``; stops at the first
  failing case. Infrastructure failures (no sandbox) are logged and score 0.
"""

from __future__ import annotations

import json
import logging
import math
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
    if python:
        return python[-1]
    untagged = [body for lang, body in blocks if lang == ""]
    if untagged:
        return untagged[-1]
    if blocks or "```" in region:
        return None
    return region.strip() or None


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


def tokens_match(got: str, expected: str) -> bool:
    """Token-wise output comparison with a 1e-6 float tolerance."""
    a, b = got.split(), expected.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        fx, fy = _is_float_token(x), _is_float_token(y)
        if fx is None or fy is None or not math.isclose(fx, fy, rel_tol=1e-6, abs_tol=1e-6):
            return False
    return True


def outputs_match(got: str, expected: str) -> bool:
    """Whether a program's stdout equals the expected output, line by line (see module docstring).

    Leading/trailing blank lines and trailing spaces are ignored; within a line, tokens are compared
    with the 1e-6 float tolerance. Line structure matters: ``"a b"`` does not match ``"a\\nb"``.
    """
    g = [line.rstrip() for line in got.strip().splitlines()]
    e = [line.rstrip() for line in str(expected).strip().splitlines()]
    return len(g) == len(e) and all(x == y or tokens_match(x, y) for x, y in zip(g, e, strict=True))


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
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


_CALL_HEADER = "from typing import *\n"  # LeetCode-style signatures use List/Optional without importing them
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


def run_tests(program: str, tests: dict, limits: Limits | None = None) -> float:
    """Run ``program`` against parsed ``tests``; 1.0 when all pass (limits: ``DEFAULT_LIMITS``)."""
    limits = limits or DEFAULT_LIMITS
    if "functional" in tests:
        result = run_python(f"{program}\n\n{tests['functional']}\n", None, limits, exit_fails=True)
        if result.error:
            log.warning("code sandbox error: %s", result.error)
        return float(result.all_ok)
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
    return run_tests(with_prefix(program, (extra_info or {}).get("prefix")), tests)


def with_prefix(program: str, prefix: Any) -> str:
    """Prepend GURU's ``extra_info["prefix"]`` (imports / the given signature) when the result compiles.

    A prefix that would break an otherwise valid program (e.g. an unfinished ``def`` line) is left out,
    so the prefix can only help a solution that relies on it (``List`` without ``from typing import``).
    """
    if not isinstance(prefix, str) or not prefix.strip() or prefix.strip() in program:
        return program
    combined = f"{prefix.rstrip()}\n\n{program}"
    try:
        compile(combined, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return program
    return combined
