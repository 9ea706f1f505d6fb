"""Code-simulation scorers: CodeI/O (predict an input/output as JSON) and CruxEval-I/-O (by execution).

References (parity cases in ``tests/rewards/parity/cases/guru_simulation.jsonl``): Reasoning360's
``codeio.compute_score`` (GURU ``simulation__codeio*``) and ``cruxeval.compute_score`` (GURU
``simulation__cruxeval*``, -I and -O alike). Where rlpipe differs on purpose the decision is named.

``codeio``: the answer is read from the answer region (the text after ``</think>``): the last ``\\boxed{}``
(the GURU prompt asks for ``\\boxed{"output": ...}``), else the last fenced ``json`` (or untagged) block,
else the last ``<answer>`` block, else the last complete ``{...}`` group of the region (as the reference
scans). It must decode (JSON, else a Python literal; a bare ``"output": X`` fragment is read as the
object ``{"output": X}``) to an object, as the prompt asks -- a bare value scores 0, as in the reference.
The ground truth is GURU's ``"input": X`` / ``"output": X`` fragment (or any JSON). The value compared is
the answer's entry under the ground truth's key, else under the other of ``input``/``output``, else the
whole object (the reference takes ``output``, else ``input``, else the object). Both sides are normalised
as the reference does: strings holding a JSON object or array are decoded, ``"true"``/``"false"`` (any
case) become booleans; then compared structurally: dict key order ignored, tuples equal lists,
strings and integers exact, floats within 1e-6. Decisions:

* ``codeio.last-answer``: the reference reads the *first* fenced block anywhere in the response
  (reasoning included), else the last ``{...}`` group of the whole response, and cannot read a JSON
  object inside ``\\boxed{}``; rlpipe reads the last answer after ``</think>`` as above.
* ``codeio.require-closed-think``: a response that opened ``<think>`` and never closed it has no answer.
* ``codeio.refuse-no-answer``: with no answer found the reference compares ``None`` with the ground
  truth, so an empty response scores 1 on every ``"output": null`` row; rlpipe scores it 0.
* ``codeio.python-literals``: an answer in Python syntax (``{'output': True}``) is read; the reference
  reads JSON only.
* ``codeio.match-key``: an answer holding both ``input`` and ``output`` is compared under the ground
  truth's key; the reference always takes ``output``.
* ``codeio.float-tolerance``: floats equal within 1e-6 (the reference compares exactly, so
  ``0.3`` for ``0.30000000000000004`` scores 0 there).
* ``codeio.bool-is-not-number``: ``true`` is not ``1`` (the reference uses Python's ``==``, where it is).

``cruxeval_o`` / ``cruxeval_i``: needs the function ``f``, the call input (for -O) and the expected output
(for -I). They are taken from, first hit wins per field:
``ground_truth`` / ``extra_info`` as a dict or JSON with ``code`` (or ``function``), ``input``, ``output``;
GURU's ``{"functional": X}`` ground truth (X is the code when it defines ``f``, else the output literal);
``extra_info["reference"]`` (the output); and the prompt's last ``[PYTHON]...[/PYTHON]`` or fenced
``python`` block in ``extra_info["original_prompt"]`` / ``["prompt"]`` (code, plus ``assert f(INPUT) == ??``
or ``assert f(??) == OUTPUT``). The answer is the last ``[ANSWER]...[/ANSWER]`` block of the answer region,
else ``<answer>``, else the last python (or untagged) fenced block, else the last ``\\boxed{}``, else the
last line; it may be one or more ``assert f(...) == ...`` statements (all are checked).

* ``cruxeval_o``: each predicted output must be a constant expression (literals combined with operators;
  no names, calls or attributes, so ``f(x)`` or side effects cannot fake a pass); scored 1 when
  ``assert f(<the given input>) == <prediction>`` passes in the sandbox for every prediction.
* ``cruxeval_i``: the predicted call arguments must all be constant expressions; scored 1 when
  ``assert f(<prediction>) == <the given output>`` passes in the sandbox (for every assertion).

The reference instead ``exec``s the function followed by the response's first ``python`` block (or the
whole response when there is none) and scores 1 when nothing raises. Decisions:

* ``cruxeval_o.refuse-unchecked`` / ``cruxeval_i.refuse-unchecked``: whatever does not state the checked
  claim scores 0 -- an empty response or empty block (the reference runs just the function: 1), a copy of
  the function, ``assert True``, a bare wrong literal, an assertion about another input (-O) or another
  output (-I), a non-constant prediction such as ``f(x)``.
* ``cruxeval_o.last-answer`` / ``cruxeval_i.last-answer``: the answer is the last one in the answer region
  (and ``[ANSWER]`` tags, untagged blocks and a bare last line are read); the reference runs the first
  ``python`` block after the first ``</think>``, so an echo of the code or a corrected draft decides there.
* ``cruxeval_o.require-closed-think`` / ``cruxeval_i.require-closed-think``: a response that opened
  ``<think>`` and never closed it has no answer (the reference runs the blocks of the unfinished reasoning).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import textwrap
from typing import Any

from rlpipe.rewards.code import values_match
from rlpipe.rewards.extract import answer_region, fenced_blocks, last_answer_tag, last_boxed
from rlpipe.rewards.registry import register
from rlpipe.rewards.sandbox import Limits, run_python

log = logging.getLogger(__name__)

CRUX_LIMITS = Limits(timeout_s=5.0, cpu_s=4, total_timeout_s=15.0)


_KEY_FRAGMENT = re.compile(r'^\s*"[^"]+"\s*:')
_IO_KEYS = ("input", "output")


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
    """As the reference: strings holding a JSON object/array are decoded, "true"/"false" become booleans."""
    if isinstance(value, str):
        text = value.strip()
        if (text.startswith("{") and text.endswith("}")) or (text.startswith("[") and text.endswith("]")):
            try:
                return _normalise(json.loads(text))
            except (ValueError, RecursionError):
                pass
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        return value
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _same(got: Any, expected: Any) -> bool:
    """Structural equality: bools only equal bools, integers exactly, floats within 1e-6."""
    if isinstance(got, bool) or isinstance(expected, bool):
        return isinstance(got, bool) and isinstance(expected, bool) and got is expected
    if isinstance(got, int) and isinstance(expected, int):
        return got == expected
    if isinstance(got, int | float) and isinstance(expected, int | float):
        return values_match(got, expected)
    if isinstance(got, list | tuple) and isinstance(expected, list | tuple):
        return len(got) == len(expected) and all(_same(x, y) for x, y in zip(got, expected, strict=True))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return got == expected


def _last_brace_group(text: str) -> str | None:
    """The last complete top-level ``{...}`` group (the reference's scan: stray ``}`` are ignored)."""
    depth, start, last = 0, 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                last = text[start : i + 1]
    return last


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
    return tagged if tagged is not None else _last_brace_group(region)


@register("codeio")
def codeio_score(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when the predicted input/output equals the ground truth's (see the module docstring)."""
    answer = _codeio_answer(response)
    if answer is None:
        return 0.0
    ok_p, pred = _decode(answer)
    if not ok_p or not isinstance(pred, dict):
        return 0.0
    ok_t, truth = _decode(ground_truth)
    key = None
    if ok_t and isinstance(truth, dict) and len(truth) == 1 and next(iter(truth)) in _IO_KEYS:
        key = next(iter(truth))
        truth = truth[key]
    order = [key, *[k for k in ("output", "input") if k != key]] if key else ["output", "input"]
    for name in order:
        if name in pred:
            pred = pred[name]
            break
    try:
        return float(_same(_normalise(pred), _normalise(truth)))
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


_PROMPT_BLOCK = re.compile(r"\[PYTHON\]\n?(.*?)\[/PYTHON\]|```python[ \t]*\n(.*?)```", re.DOTALL)
_QUERY_O = re.compile(r"^assert\s+f\((.*)\)\s*==\s*\?\?\s*$")
_QUERY_I = re.compile(r"^assert\s+f\(\s*\?\?\s*\)\s*==\s*(.*?)\s*$")


def _from_prompt(prompt: str) -> dict[str, str]:
    """Code and the known half of the example from the prompt's last ``[PYTHON]`` block."""
    blocks = [tagged or fenced for tagged, fenced in _PROMPT_BLOCK.findall(prompt)]
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


def _asserts(text: str) -> list[ast.Compare] | None:
    """The ``f(...) == X`` comparisons of every ``assert`` in the answer; [] when it has none, None when
    an ``assert`` is not such a comparison (then the answer as a whole is wrong)."""
    try:
        nodes = [n for n in ast.parse(textwrap.dedent(text)).body if isinstance(n, ast.Assert)]
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        nodes = []
        for line in text.splitlines():
            if line.strip().startswith("assert"):
                try:
                    nodes.append(ast.parse(line.strip()).body[0])
                except (SyntaxError, ValueError, IndexError, RecursionError, MemoryError):
                    return None
    compares = [n.test for n in nodes if isinstance(n, ast.Assert)]
    if any(not isinstance(c, ast.Compare) or len(c.comparators) != 1 for c in compares):
        return None
    return compares


_CONSTANT_NODES = (
    ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.BinOp, ast.UnaryOp, ast.Load,
    ast.operator, ast.unaryop,
)  # fmt: skip


def _literal_src(node: ast.AST) -> str | None:
    """Source of a constant expression (literals and operators only: no names, calls, attributes)."""
    try:
        if not all(isinstance(n, _CONSTANT_NODES) for n in ast.walk(node)):
            return None
        return ast.unparse(node)
    except (ValueError, TypeError, RecursionError):
        return None


def _call_args(call: ast.AST) -> str | None:
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


def _claims(answer: str, mode: str) -> list[tuple[str | None, str | None]] | None:
    """``(arguments, output)`` source of each claim ``f(arguments) == output`` the answer makes.

    Every ``assert`` must be ``f(<constants>) == <constant>`` (for -I the right side may be anything
    else too, it is then not checked: the input is the answer); without one, the answer is a bare output
    (-O) or a bare call / argument list (-I). None when the answer makes no valid claim.
    """
    compares = _asserts(answer)
    if compares is None:
        return None
    if compares:
        claims = [(_call_args(c.left), _literal_src(c.comparators[0])) for c in compares]
        if mode == "i":  # the input is the answer: a non-constant right side claims nothing more
            return None if any(a is None for a, _ in claims) else claims
        return None if any(a is None or o is None for a, o in claims) else claims
    text = answer.strip()
    try:
        if mode == "o":
            out = _literal_src(ast.parse(text, mode="eval").body)
            return None if out is None else [(None, out)]
        call = ast.parse(text if re.match(r"^f\s*\(", text) else f"f({text})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    args = _call_args(call)
    return None if args is None else [(args, None)]


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
    claims = _claims(answer, "o")
    if not claims or not spec["input"].strip():
        return 0.0
    statements = []
    for args, out in claims:  # each claim as written, and about the given input
        statements.append(f"assert f({spec['input']}) == {out}")
        if args:
            statements.append(f"assert f({args}) == {out}")
    return _run_assert(spec["code"], "\n".join(statements))


@register("cruxeval_i")
def cruxeval_i(response: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """1 when ``f(predicted input)`` equals the expected output, checked by execution."""
    spec = _crux_spec(ground_truth, extra_info)
    answer = _crux_answer(response)
    if spec is None or answer is None:
        return 0.0
    claims = _claims(answer, "i")
    if not claims or not spec["output"].strip():
        return 0.0
    statements = []
    for args, out in claims:  # each claim as written, and about the given output
        statements.append(f"assert f({args}) == {spec['output']}")
        if out:
            statements.append(f"assert f({args}) == {out}")
    return _run_assert(spec["code"], "\n".join(statements))
