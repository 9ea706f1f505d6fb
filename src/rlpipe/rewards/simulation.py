"""Code-simulation scorers: CodeI/O (predict an input/output as JSON) and CruxEval-I/-O (by execution).

``codeio``: the prediction is the last ``\\boxed{}`` of the answer region (the GURU prompt asks for
``\\boxed{"output": ...}``), else the last fenced ``json`` (or untagged) block, else the last
``<answer>`` block, else the answer region. Prediction and ground truth are decoded as JSON, else as a
Python literal; a bare key fragment such as ``"input": {"n": 3}`` (GURU's ground-truth form) is read as
the object ``{"input": {"n": 3}}``. Equal after normalisation: dict key order ignored, tuples = lists,
numbers within 1e-6, strings that hold a JSON array (``"[97]"``) read as that array, and a one-key
``{"input": X}`` / ``{"output": X}`` wrapper present on only one side is unwrapped. Unlike the reference,
strings stay case-sensitive and lists stay ordered (exact compare).

``cruxeval_o`` / ``cruxeval_i``: needs the function ``f``, the call input (for -O) and the expected output
(for -I). They are taken from, first hit wins per field:
``ground_truth`` / ``extra_info`` as a dict or JSON with ``code`` (or ``function``), ``input``, ``output``;
GURU's ``{"functional": X}`` ground truth (X is the code when it defines ``f``, else the output literal);
``extra_info["reference"]`` (the output); and the prompt's last ``[PYTHON]...[/PYTHON]`` block in
``extra_info["original_prompt"]`` / ``["prompt"]`` (code, plus ``assert f(INPUT) == ??`` or
``assert f(??) == OUTPUT``). The answer is the last ``[ANSWER]...[/ANSWER]`` block, else ``<answer>``, else
the last python block, else the last ``\\boxed{}``, else the last line; it may be a full
``assert f(...) == ...`` statement.

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


_KEY_FRAGMENT = re.compile(r'^\s*"[^"]+"\s*:')


def _decode(text: Any) -> tuple[bool, Any]:
    """``(True, value)`` for JSON / Python-literal text or a ``"key": value`` fragment; else (False, text)."""
    if not isinstance(text, str):
        return True, text
    text = text.strip()
    candidates = [text, "{" + text + "}"] if _KEY_FRAGMENT.match(text) else [text]
    for candidate in candidates:
        try:
            return True, json.loads(candidate)
        except (ValueError, RecursionError):
            pass
        try:
            return True, ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return False, text


def _normalise(value: Any) -> Any:
    """Strings holding a JSON array become the array; containers are normalised recursively."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            return value
        return _normalise(decoded) if isinstance(decoded, list) else value
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _codeio_answer(response: str) -> str | None:
    region = answer_region(response)
    if region is None:
        return None
    boxed = last_boxed(region)
    if boxed is not None:
        return boxed
    blocks = fenced_blocks(region)
    preferred = [b for lang, b in blocks if lang == "json"] or [b for lang, b in blocks if lang == ""]
    if preferred:
        return preferred[-1]
    tagged = last_answer_tag(region)
    return tagged if tagged is not None else region.strip()


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
    pred, truth = _normalise(pred), _normalise(truth)
    try:
        return float(values_match(pred, truth) or values_match(_unwrap(pred), _unwrap(truth)))
    except RecursionError:  # absurdly deep model output
        return 0.0


def _as_dict(value: Any) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def _defines_f(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name == "f" for node in tree.body)


_PROMPT_BLOCK = re.compile(r"\[PYTHON\]\n?(.*?)\[/PYTHON\]", re.DOTALL)
_QUERY_O = re.compile(r"^assert\s+f\((.*)\)\s*==\s*\?\?\s*$")
_QUERY_I = re.compile(r"^assert\s+f\(\s*\?\?\s*\)\s*==\s*(.*?)\s*$")


def _from_prompt(prompt: str) -> dict[str, str]:
    """Code and the known half of the example from the prompt's last ``[PYTHON]`` block."""
    blocks = _PROMPT_BLOCK.findall(prompt)
    if not blocks:
        return {}
    lines = blocks[-1].rstrip().splitlines()
    if not lines:
        return {}
    out = {"code": "\n".join(lines[:-1])}
    query = lines[-1].strip()
    if match := _QUERY_O.match(query):
        out["input"] = match.group(1)
    elif match := _QUERY_I.match(query):
        out["output"] = match.group(1)
    return out


def _crux_spec(ground_truth: Any, extra_info: dict | None) -> dict | None:
    """``{"code", "input", "output"}`` from the sources listed in the module docstring; None if no code."""
    truth, info = _as_dict(ground_truth), dict(extra_info or {})
    fields: dict[str, str] = {}
    for source in (truth, info):
        for key, names in (("code", ("code", "function")), ("input", ("input",)), ("output", ("output",))):
            for name in names:
                if key not in fields and source.get(name) is not None:
                    fields[key] = str(source[name])
    functional = truth.get("functional")
    if isinstance(functional, str):
        if _defines_f(functional):
            fields.setdefault("code", functional)
        else:
            fields.setdefault("output", functional)
    if info.get("reference") is not None:
        fields.setdefault("output", str(info["reference"]))
    if isinstance(ground_truth, str) and not truth:
        fields.setdefault("output", ground_truth)
    prompt = info.get("original_prompt") or info.get("prompt")
    if isinstance(prompt, str):
        for key, value in _from_prompt(prompt).items():
            fields.setdefault(key, value)
    if not fields.get("code"):
        return None
    return {"code": fields["code"], "input": fields.get("input", ""), "output": fields.get("output", "")}


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
    if predicted is None or not spec["input"].strip():
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
    if args is None or not spec["output"].strip():
        return 0.0
    return _run_assert(spec["code"], f"assert f({args}) == {spec['output']}")
