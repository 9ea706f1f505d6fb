"""Code-simulation scorers: CodeI/O (predict an input/output as JSON) and CruxEval-I/-O (by execution).

``codeio``: the prediction is the last fenced ``json`` (or untagged) block of the answer region, else
the last ``<answer>`` block, else the last ``\\boxed{}``, else the answer region; decoded as JSON (else
as a Python literal). The ground truth (JSON string or value) is decoded the same way. Equal after
normalisation: dict key order ignored, tuples = lists, numbers equal within 1e-6, and a one-key
``{"input": X}`` / ``{"output": X}`` wrapper on only one side is unwrapped.

``cruxeval_o`` / ``cruxeval_i``: the function and the example come from ``ground_truth`` (or, when it
is a plain string, ``extra_info``) as a dict / JSON with ``code`` (or ``function``), ``input`` and
``output`` (Python source fragments as in CruxEval, e.g. ``input='"abc", 2'``, ``output="'ab'"``). The
answer is the last ``[ANSWER]...[/ANSWER]`` block, else ``<answer>``, else the last python block, else the
last ``\\boxed{}``, else the last line. It may be a full ``assert f(...) == ...`` statement.

* ``cruxeval_o``: the predicted output must be a Python *literal* (so ``f(x)`` or side effects cannot
  fake a pass); scored 1 when ``assert f(<input>) == <prediction>`` passes in the sandbox.
* ``cruxeval_i``: the predicted call arguments must all be literals; scored 1 when
  ``assert f(<prediction>) == <output>`` passes in the sandbox.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from typing import Any

from rlpipe.rewards.code import values_match
from rlpipe.rewards.extract import answer_region, fenced_blocks, last_answer_tag, last_boxed
from rlpipe.rewards.registry import register
from rlpipe.rewards.sandbox import Limits, run_python

log = logging.getLogger(__name__)

CRUX_LIMITS = Limits(timeout_s=5.0, cpu_s=4, total_timeout_s=15.0)


def _decode(text: Any) -> tuple[bool, Any]:
    if not isinstance(text, str):
        return True, text
    text = text.strip()
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, text


def _codeio_answer(response: str) -> str | None:
    region = answer_region(response)
    if region is None:
        return None
    blocks = fenced_blocks(region)
    preferred = [b for lang, b in blocks if lang == "json"] or [b for lang, b in blocks if lang == ""]
    if preferred:
        return preferred[-1]
    for candidate in (last_answer_tag(region), last_boxed(region)):
        if candidate is not None:
            return candidate
    return region.strip()


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("input", "output"):
        return next(iter(value.values()))
    return value


@register("codeio")
def codeio_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the predicted JSON equals the ground truth after normalisation."""
    answer = _codeio_answer(response)
    if answer is None:
        return 0.0
    ok_p, pred = _decode(answer)
    ok_t, truth = _decode(ground_truth)
    if not ok_p or not ok_t:
        return float(ok_p == ok_t and " ".join(str(pred).split()) == " ".join(str(truth).split()))
    try:
        return float(values_match(pred, truth) or values_match(_unwrap(pred), _unwrap(truth)))
    except RecursionError:  # absurdly deep model output
        return 0.0


def _crux_spec(ground_truth: Any, extra_info: dict | None) -> dict | None:
    for source in (ground_truth, extra_info):
        spec = source
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except (ValueError, RecursionError):
                continue
        if isinstance(spec, dict) and ("code" in spec or "function" in spec):
            return {
                "code": str(spec.get("code", spec.get("function"))),
                "input": str(spec.get("input", "")),
                "output": str(spec.get("output", "")),
            }
    return None


_CRUX_TAG = re.compile(r"\[ANSWER\](.*?)\[/ANSWER\]", re.DOTALL)


def _crux_answer(response: str) -> str | None:
    region = answer_region(response)
    if region is None:
        return None
    tagged = _CRUX_TAG.findall(region)
    if tagged:
        return tagged[-1].strip()
    tag = last_answer_tag(region)
    if tag is not None:
        return tag
    python = [b for lang, b in fenced_blocks(region) if lang in ("python", "py", "")]
    if python:
        return python[-1].strip()
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed
    lines = [line for line in region.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def _parse_assert(text: str) -> ast.Compare | None:
    """The ``f(...) == X`` comparison of the last ``assert`` line, if the answer is one."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("assert")]
    if not lines:
        return None
    try:
        node = ast.parse(lines[-1]).body[0]
    except (SyntaxError, ValueError, IndexError, RecursionError):
        return None
    if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
        return node.test
    return None


def _literal_src(node: ast.AST) -> str | None:
    try:
        return repr(ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _predicted_output(answer: str) -> str | None:
    compare = _parse_assert(answer)
    if compare is not None:
        return _literal_src(compare.comparators[0]) if len(compare.comparators) == 1 else None
    try:
        node = ast.parse(answer.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return None
    return _literal_src(node)


def _predicted_args(answer: str) -> str | None:
    compare = _parse_assert(answer)
    if compare is not None:
        call = compare.left
    else:
        text = answer.strip()
        try:
            call = ast.parse(text if re.match(r"^f\s*\(", text) else f"f({text})", mode="eval").body
        except (SyntaxError, ValueError, RecursionError):
            return None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.func.id != "f":
        return None
    parts: list[str] = []
    for arg in call.args:
        src = None if isinstance(arg, ast.Starred) else _literal_src(arg)
        if src is None:
            return None
        parts.append(src)
    for kw in call.keywords:
        src = _literal_src(kw.value)
        if kw.arg is None or src is None:
            return None
        parts.append(f"{kw.arg}={src}")
    return ", ".join(parts)


def _run_assert(code: str, statement: str) -> float:
    result = run_python(f"{code}\n\n{statement}\n", None, CRUX_LIMITS)
    if result.error:
        log.warning("cruxeval sandbox error: %s", result.error)
    return float(result.all_ok)


@register("cruxeval_o")
def cruxeval_o(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the predicted output literal equals ``f(input)``, checked by execution."""
    spec = _crux_spec(ground_truth, extra_info)
    answer = _crux_answer(response)
    if spec is None or answer is None:
        return 0.0
    predicted = _predicted_output(answer)
    if predicted is None:
        return 0.0
    return _run_assert(spec["code"], f"assert f({spec['input']}) == {predicted}")


@register("cruxeval_i")
def cruxeval_i(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when ``f(predicted input)`` equals the expected output, checked by execution."""
    spec = _crux_spec(ground_truth, extra_info)
    answer = _crux_answer(response)
    if spec is None or answer is None:
        return 0.0
    args = _predicted_args(answer)
    if args is None:
        return 0.0
    return _run_assert(spec["code"], f"assert f({args}) == {spec['output']}")
