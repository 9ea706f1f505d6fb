# ruff: noqa: E501 -- test data: long prompts and responses
"""Parity cases for the ``codeio``, ``cruxeval_o`` and ``cruxeval_i`` scorers (family ``guru_simulation``).

Reference: LLM360/Reasoning360 at commit 13158341d2a0dfe5f3bb80e7126ff21de0d16676, the functions its reward
router (``verl/utils/reward_score/__init__.py:default_compute_score``) calls for
``simulation__codeio*`` -- ``verl/utils/reward_score/codeio.py:compute_score`` -- and for
``simulation__cruxeval*`` (both -I and -O) -- ``verl/utils/reward_score/cruxeval/__init__.py:compute_score``,
which ``exec``s the ground truth's function followed by the response's first ``python`` block in a
child process (``cruxeval/utils.py``: a timeout and ``reliability_guard``, NO sandbox -- run this generator
only in a throw-away scratch directory or container).

Run::

    git clone https://github.com/LLM360/Reasoning360 /tmp/ref && git -C /tmp/ref checkout 13158341d2a0
    python tests/rewards/parity/sources/guru_simulation.py /tmp/ref

(any directory holding ``verl/utils/reward_score/`` of that commit works, e.g. a ``git archive`` export).
It writes ``tests/rewards/parity/cases/guru_simulation.jsonl`` (deterministic order, ids
``guru_simulation-<n>``). Only the reference's own modules are imported (stub ``verl`` packages point at
the checkout, so verl's heavy ``__init__`` never runs).

Rows are laid out as the reference's ``data_preprocess/simulation/{codeio,cruxeval-o,cruxeval-i}.py``
write them: CodeI/O ground truth ``"output": <json>`` / ``"input": <json>``; CRUXEval ground truth
``{"functional": <the function's code>}`` with ``extra_info`` = ``reference`` (the expected output
literal), ``original_prompt`` (the prompt with the ```python block ending in ``assert f(<input>) == ??``
or ``assert f(??) == <output>``) and ``prompt`` (rlpipe's loader adds the prompt text for these scorers).

Score mapping: codeio returns ``{"score": bool}`` and cruxeval ``{"score": 0 or 1}``; ``reference_score``
is that value as 0.0 / 1.0. Cases whose difference is deliberate carry the decision ids documented in
``rlpipe/rewards/simulation.py``; a case keeps its decision only when the reference's score really
differs from the score the decision promises.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import types
from pathlib import Path

COMMIT = "13158341d2a0dfe5f3bb80e7126ff21de0d16676"
FAMILY = "guru_simulation"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"
REPO = "LLM360/Reasoning360"
CODEIO_FN = "verl/utils/reward_score/codeio.py:compute_score"
CRUX_FN = "verl/utils/reward_score/cruxeval/__init__.py:compute_score"


def load_reference(root: Path):
    """(codeio, cruxeval) modules from the checkout at ``root``, with stub parent packages."""
    base = root / "verl" / "utils" / "reward_score"
    for name, path in (
        ("verl", root / "verl"),
        ("verl.utils", root / "verl" / "utils"),
        ("verl.utils.reward_score", base),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    codeio = importlib.import_module("verl.utils.reward_score.codeio")
    cruxeval = importlib.import_module("verl.utils.reward_score.cruxeval")
    return codeio, cruxeval


THINK = (
    "<think>\nLet me work through this step by step. I'll trace the code carefully, keeping track of every "
    "variable after each statement, and double-check the edge cases before I commit to an answer.\n{body}\n</think>\n\n"
)

# --------------------------------------------------------------------------------------------------
# CodeI/O: (name, predict_type, truth json text, a wrong json text, python-literal spelling or None)

CODEIO = [
    ("int_out", "output", "42", "41", None),
    ("float_out", "output", "3.5", "3.25", None),
    ("float_noise", "output", "0.30000000000000004", "0.31", None),
    ("str_out", "output", '"Yes"', '"No"', None),
    ("bool_out", "output", "true", "false", "True"),
    ("list_out", "output", "[1, 2, 3]", "[3, 2, 1]", None),
    ("dict_out", "output", '{"count": 3, "items": ["a", "b"]}', '{"count": 2, "items": ["a", "b"]}', None),
    (
        "nested_out",
        "output",
        '{"result": [[1, 0], [0, 1]], "ok": true}',
        '{"result": [[0, 1], [1, 0]], "ok": true}',
        "{'result': [[1, 0], [0, 1]], 'ok': True}",
    ),
    ("null_out", "output", "null", "0", "None"),
    ("in_simple", "input", '{"n": 5}', '{"n": 4}', "{'n': 5}"),
    ("in_multi", "input", '{"nums": [2, 7, 11], "target": 9}', '{"nums": [2, 7, 11], "target": 18}', None),
    (
        "in_strlist",
        "input",
        '{"preorder": "[97]", "inorder": "[97]"}',
        '{"preorder": "[98]", "inorder": "[97]"}',
        None,
    ),
    ("str_json_list", "output", '"[1, 2]"', '"[2, 1]"', None),
]


def codeio_responses(ptype: str, truth: str, wrong: str, literal: str | None) -> list[tuple]:
    """(template, kind, response, decision or None) for one CodeI/O problem; a decision is
    (id, the score rlpipe gives), kept only where the reference's score differs from it."""
    ans = f'{{"{ptype}": {truth}}}'
    bad = f'{{"{ptype}": {wrong}}}'
    is_object = truth.startswith("{")
    last = "codeio.last-answer"
    out = [
        ("json-block", "realistic", f"```json\n{ans}\n```", None),
        ("json-block-wrong", "realistic", f"```json\n{bad}\n```", None),
        ("boxed", "realistic", f"So the final answer is \\boxed{{{ans[1:-1]}}}.", None),
        ("boxed-wrong", "realistic", f"So the final answer is \\boxed{{{bad[1:-1]}}}.", None),
        (
            "think-json",
            "realistic",
            THINK.format(body="The loop runs a few times; I get the value below.") + f"```json\n{ans}\n```",
            None,
        ),
        (
            "think-with-braces",
            "realistic",
            THINK.format(body="State after step 1: {i: 0, acc: []}; after step 2: {i: 1, acc: [1]}.")
            + f'The {ptype} is:\n```json\n{{\n  "{ptype}": {truth}\n}}\n```',
            None,
        ),
        ("boxed-double-brace", "realistic", f"Final answer: \\boxed{{{ans}}}", (last, 1.0)),
        (
            "bare-value",
            "adversarial",
            f"```json\n{truth}\n```",
            ("codeio.refuse-no-answer", 1.0 if is_object else 0.0),
        ),
        (
            "unwrapped-dict",
            "realistic",
            f"```json\n{truth}\n```" if is_object else f'```json\n{{"value": {truth}}}\n```',
            None,
        ),
        (
            "draft-then-final",
            "realistic",
            f"First guess:\n```json\n{bad}\n```\nWait, I mis-traced the loop. Corrected:\n```json\n{ans}\n```",
            (last, 1.0),
        ),
        (
            "final-then-restated-wrong",
            "adversarial",
            f"```json\n{ans}\n```\nOn second thought it could also be\n```json\n{bad}\n```",
            (last, 0.0),
        ),
        (
            "answer-in-think-only",
            "adversarial",
            THINK.format(body=f"I believe it is {ans}.") + "I could not finish the trace.",
            (last, 0.0),
        ),
        (
            "unclosed-think",
            "adversarial",
            f"<think>\nTracing... the answer should be\n```json\n{ans}\n```\nbut let me check again the",
            ("codeio.require-closed-think", 0.0),
        ),
        ("empty", "adversarial", "", ("codeio.refuse-no-answer", 0.0)),
        ("hedge-both", "adversarial", f'```json\n{{"{ptype}": [{truth}, {wrong}]}}\n```', None),
        (
            "plain-text",
            "adversarial",
            f"The {ptype} is {truth}.",
            ("codeio.refuse-no-answer", 1.0 if is_object else 0.0),
        ),
    ]
    if ptype == "output":
        out.append(
            ("restates-input", "realistic", f'```json\n{{"input": {wrong}, "output": {truth}}}\n```', None)
        )
    else:
        out.append(
            (
                "both-keys-wrong-input",
                "adversarial",
                f'```json\n{{"input": {wrong}, "output": {truth}}}\n```',
                ("codeio.match-key", 0.0),
            )
        )
        out.append(
            (
                "restates-output",
                "realistic",
                f'```json\n{{"input": {truth}, "output": 7}}\n```',
                ("codeio.match-key", 1.0),
            )
        )
    if literal is not None:
        out.append(
            (
                "python-literal",
                "realistic",
                f"```json\n{{'{ptype}': {literal}}}\n```",
                ("codeio.python-literals", 1.0),
            )
        )
    if truth in ("true", "false"):
        out.append(("bool-as-string", "realistic", f'```json\n{{"{ptype}": "{truth}"}}\n```', None))
        out.append(
            (
                "bool-as-int",
                "adversarial",
                f'```json\n{{"{ptype}": {1 if truth == "true" else 0}}}\n```',
                ("codeio.bool-is-not-number", 0.0),
            )
        )
    if truth.startswith("{") or truth.startswith("["):
        out.append(("json-in-string", "realistic", f'```json\n{{"{ptype}": {json.dumps(truth)}}}\n```', None))
    if truth == "0.30000000000000004":
        out.append(
            (
                "float-rounded",
                "realistic",
                f'```json\n{{"{ptype}": 0.3}}\n```',
                ("codeio.float-tolerance", 1.0),
            )
        )
    if truth == '"Yes"':
        out.append(("case-changed", "adversarial", f'```json\n{{"{ptype}": "yes"}}\n```', None))
    return out


# templates every CodeI/O problem gets (the normalisation cases and the degenerate answers)
CODEIO_ALWAYS = {
    "empty", "bare-value", "plain-text", "python-literal", "bool-as-string", "bool-as-int",
    "json-in-string", "float-rounded", "case-changed",
}  # fmt: skip

COLLECTED_CODEIO = [
    # verl/utils/reward_score/codeio.py __main__ examples 1-4
    (
        '```json\n{"input": {"upper_limit": 2924}}\n```',
        '"input": {"upper_limit": 2719}',
        "codeio.py __main__ Example 1",
    ),
    (
        '```json\n{\n  "preorder": "[97]",\n  "inorder": "[97]"\n}\n```',
        '"input": {"preorder": "[97]", "inorder": "[97]"}',
        "codeio.py __main__ Example 2",
    ),
    ('```json\n{"output": {"result": 42}}\n```', '"output": {"result": 42}', "codeio.py __main__ Example 3"),
    ('```json\n{"answer": true}\n```', '"output": {"answer": "true"}', "codeio.py __main__ Example 4"),
]

# --------------------------------------------------------------------------------------------------
# CRUXEval: (name, code, input literal, a wrong output literal, another valid input or None)

CRUX = [
    ("rev_repeat", "def f(s, n):\n    return s[::-1] * n", "'ab', 2", "'abab'", "'ba', 2"),
    (
        "count_pairs",
        "def f(nums):\n    output = []\n    for n in nums:\n        output.append((nums.count(n), n))\n    output.sort(reverse=True)\n    return output",
        "[1, 1, 3, 1, 3, 1]",
        "[(4, 1), (2, 3)]",
        None,
    ),
    (
        "dict_inc",
        "def f(d, k):\n    d = dict(d)\n    d[k] = d.get(k, 0) + 1\n    return d",
        "{'a': 1}, 'b'",
        "{'a': 1, 'b': 0}",
        "{'b': 0, 'a': 1}, 'b'",
    ),
    (
        "upper_vowels",
        "def f(text):\n    return ''.join(c.upper() if c in 'aeiou' else c for c in text)",
        "'banana'",
        "'BANANA'",
        None,
    ),
    (
        "split_join",
        "def f(text, sep):\n    parts = text.split(sep)\n    return '-'.join(p.strip() for p in parts if p)",
        "'a, b,, c', ','",
        "'a-b--c'",
        None,
    ),
    (
        "sum_even",
        "def f(nums):\n    return sum(x for x in nums if x % 2 == 0)",
        "[1, 2, 3, 4, 10]",
        "20",
        "[16]",
    ),
    (
        "find_idx",
        "def f(xs, x):\n    if x in xs:\n        return xs.index(x)\n    return -1",
        "[5, 3, 5], 5",
        "2",
        "[5], 5",
    ),
    ("strip_count", "def f(s):\n    return len(s.strip('x')), s.count('x')", "'xxhixx'", "(6, 4)", None),
    (
        "set_out",
        "def f(a, b):\n    return sorted(set(a) & set(b))",
        "[3, 1, 2], [2, 3, 4]",
        "[3, 2]",
        "[2, 3], [3, 2]",
    ),
    ("bool_out", "def f(s):\n    return s.isdigit() and int(s) > 10", "'42'", "False", "'11'"),
    ("none_out", "def f(lst):\n    lst.sort()\n    return None if not lst else lst[0]", "[]", "0", None),
    ("str_mult", "def f(c, n):\n    return c * n + '!'", "'ab', 3", "'ababab'", "'ababab', 1"),
]


def crux_output(code: str, inp: str) -> str:
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the generator's own fixed functions
    return repr(eval(f"f({inp})", scope))  # noqa: S307


def crux_prompt(mode: str, code: str, inp: str, out: str) -> str:
    """The prompts of data_preprocess/simulation/cruxeval-{o,i}.py."""
    if mode == "o":
        head = (
            "You will be given a Python function and an assertion containing an input to the function. Complete the assertion with a literal "
            "(no unsimplified expressions, no function calls) containing the output when executing the provided code on the given input, "
            "even if the function is incorrect or incomplete. Do NOT output any extra information. Execute the program step by step before "
            "arriving at an answer, and provide the full assertion with the correct output in ```python and ``` tags, following the examples.\n\n"
        )
        return head + f"```python\n{code.strip()}\nassert f({inp}) == ??\n```\n"
    head = (
        "You will be given a function f and an output in the form f(??) == output. Your task is to find any input such that executing f on "
        "the input leads to the given output. There may be multiple answers, but only output one. First, think step by step. You MUST "
        "surround the answer with ```python and ``` tags. Express your answer as a passing assertion containing the input and the given output.\n\n"
    )
    return head + f"```python\n{code.strip()}\nassert f(??) == {out}\n```\n"


def py(text: str) -> str:
    return f"```python\n{text}\n```"


def crux_o_responses(
    code: str, inp: str, out: str, wrong: str, alt: str | None
) -> list[tuple[str, str, str, tuple[str, float] | None]]:
    good = f"assert f({inp}) == {out}"
    bad = f"assert f({inp}) == {wrong}"
    cases = [
        ("assert-block", "realistic", py(good), None),
        ("assert-block-wrong", "realistic", py(bad), None),
        (
            "think-assert",
            "realistic",
            THINK.format(body=f"Calling f({inp}) step by step gives {out}.") + py(good),
            None,
        ),
        ("think-assert-wrong", "realistic", THINK.format(body="Step by step...") + py(bad), None),
        ("bare-literal-right", "realistic", py(out), None),
        ("bare-literal-wrong", "adversarial", py(wrong), ("cruxeval_o.refuse-unchecked", 0.0)),
        (
            "tautology",
            "adversarial",
            py(f"assert f({inp}) == f({inp})"),
            ("cruxeval_o.refuse-unchecked", 0.0),
        ),
        ("assert-true", "adversarial", py("assert True"), ("cruxeval_o.refuse-unchecked", 0.0)),
        ("empty-block", "adversarial", "```python\n\n```", ("cruxeval_o.refuse-unchecked", 0.0)),
        ("copied-function", "adversarial", py(code), ("cruxeval_o.refuse-unchecked", 0.0)),
        ("copied-prompt", "adversarial", crux_prompt("o", code, inp, out), None),
        ("empty", "adversarial", "", ("cruxeval_o.refuse-unchecked", 0.0)),
        ("hedge-two-asserts", "adversarial", py(f"{bad}\n{good}"), None),
        ("answer-tag", "realistic", f"[ANSWER]\n{good}\n[/ANSWER]", ("cruxeval_o.last-answer", 1.0)),
        ("untagged-block", "realistic", f"```\n{good}\n```", ("cruxeval_o.last-answer", 1.0)),
        ("raw-assert", "realistic", good, None),
        (
            "echo-then-answer",
            "realistic",
            f"Let me restate the code:\n{py(code)}\nTracing it, the result is {out}.\n{py(good)}",
            ("cruxeval_o.last-answer", 1.0),
        ),
        (
            "draft-then-final",
            "realistic",
            f"Initially I thought:\n{py(bad)}\nBut re-checking the loop:\n{py(good)}",
            ("cruxeval_o.last-answer", 1.0),
        ),
        (
            "unclosed-think",
            "adversarial",
            f"<think>\nThe output is {out}, so:\n{py(good)}\nHmm, wait, let me re-check the",
            ("cruxeval_o.require-closed-think", 0.0),
        ),
        ("expression-right", "realistic", py(f"assert f({inp}) == {as_expression(out)}"), None),
    ]
    if alt is not None:
        cases.append(
            (
                "other-input",
                "adversarial",
                py(f"assert f({alt}) == {{ALT}}"),
                ("cruxeval_o.refuse-unchecked", 0.0),
            )
        )
    return cases


def crux_i_responses(
    code: str, inp: str, out: str, wrong: str, alt: str | None
) -> list[tuple[str, str, str, tuple[str, float] | None]]:
    good = f"assert f({inp}) == {out}"
    cases = [
        ("assert-block", "realistic", py(good), None),
        ("think-assert", "realistic", THINK.format(body=f"Working backwards from {out}...") + py(good), None),
        ("wrong-input", "realistic", py(f"assert f({{WRONG_IN}}) == {out}"), None),
        ("call-only", "realistic", py(f"f({inp})"), None),
        ("call-only-wrong", "adversarial", py("f({WRONG_IN})"), ("cruxeval_i.refuse-unchecked", 0.0)),
        ("tautology-right", "adversarial", py(f"assert f({inp}) == f({inp})"), None),
        (
            "tautology-wrong",
            "adversarial",
            py("assert f({WRONG_IN}) == f({WRONG_IN})"),
            ("cruxeval_i.refuse-unchecked", 0.0),
        ),
        ("misquoted-output", "adversarial", py(f"assert f({inp}) == {wrong}"), None),
        ("assert-true", "adversarial", py("assert True"), ("cruxeval_i.refuse-unchecked", 0.0)),
        ("copied-function", "adversarial", py(code), ("cruxeval_i.refuse-unchecked", 0.0)),
        (
            "other-output",
            "adversarial",
            py("assert f({WRONG_IN}) == {WRONG_OUT}"),
            ("cruxeval_i.refuse-unchecked", 0.0),
        ),
        ("copied-prompt", "adversarial", crux_prompt("i", code, inp, out), None),
        ("empty", "adversarial", "", ("cruxeval_i.refuse-unchecked", 0.0)),
        ("answer-tag", "realistic", f"[ANSWER]\n{good}\n[/ANSWER]", ("cruxeval_i.last-answer", 1.0)),
        ("raw-assert", "realistic", good, None),
        (
            "draft-then-final",
            "realistic",
            f"Try:\n{py(f'assert f({{WRONG_IN}}) == {out}')}\nThat gives the wrong value. Instead:\n{py(good)}",
            ("cruxeval_i.last-answer", 1.0),
        ),
        (
            "unclosed-think",
            "adversarial",
            f"<think>\nI think:\n{py(good)}\nLet me verify by",
            ("cruxeval_i.require-closed-think", 0.0),
        ),
        ("two-valid-asserts", "realistic", py(f"{good}\n{good}"), None),
        ("expression-input", "realistic", py(f"assert f({{EXPR_IN}}) == {out}"), None),
    ]
    if alt is not None:
        cases.append(("alternative-input", "realistic", py(f"assert f({alt}) == {out}"), None))
    return cases


def wrong_input(code: str, inp: str) -> str:
    """A different input of the same shape whose output differs: the first literal argument changed."""
    import ast

    args = ast.parse(f"f({inp})", mode="eval").body.args
    first = ast.literal_eval(args[0])
    rest = [ast.unparse(a) for a in args[1:]]
    if isinstance(first, str):
        options = [first + "z", "q" + first, first[1:], "x"]
    elif isinstance(first, int):
        options = [first + 1, first + 3, -first - 1]
    elif isinstance(first, list):
        options = [[*first, 7], first[1:], [9]]
    elif isinstance(first, dict):
        options = [{**first, "b": 5}, {}]
    else:
        options = []
    target = crux_output(code, inp)
    for option in options:
        candidate = ", ".join([repr(option), *rest])
        try:
            if crux_output(code, candidate) != target:
                return candidate
        except Exception:  # noqa: BLE001, S112 - that input breaks f: try the next one
            continue
    raise ValueError(f"no wrong input for {inp!r}")


def as_expression(out: str) -> str:
    """The output literal written as an unsimplified constant expression (``'ab'`` -> ``'ab' + ''``)."""
    import ast

    value = ast.literal_eval(out)
    if isinstance(value, bool):
        return f"not {not value}"
    if isinstance(value, str):
        return f"{out} + ''"
    if isinstance(value, int):
        return f"{value - 1} + 1"
    if isinstance(value, list):
        return f"{out} + []"
    if isinstance(value, tuple):
        return f"{out} + ()"
    return f"({out})"


def expr_input(inp: str) -> str:
    """The same input written as an unsimplified expression (``'ab'`` -> ``'a' + 'b'``, 5 -> ``4 + 1``)."""
    import ast

    args = ast.parse(f"f({inp})", mode="eval").body.args
    first = ast.literal_eval(args[0])
    if isinstance(first, str) and len(first) >= 2:
        head = f"{first[:1]!r} + {first[1:]!r}"
    elif isinstance(first, int) and not isinstance(first, bool):
        head = f"{first - 1} + 1"
    elif isinstance(first, list) and first:
        head = f"{first[:1]!r} + {first[1:]!r}"
    else:
        head = ast.unparse(args[0])
    return ", ".join([head, *[ast.unparse(a) for a in args[1:]]])


def build(codeio, cruxeval) -> list[dict]:
    cases: list[dict] = []

    def add(scorer, response, truth, info, kind, source, decision, reference_score, function) -> None:
        case = {
            "id": f"{FAMILY}-{len(cases)}",
            "scorer": scorer,
            "response": response,
            "ground_truth": truth,
            "extra_info": info,
            "reference": {"repo": REPO, "commit": COMMIT, "function": function},
            "reference_score": float(reference_score),
            "kind": kind,
            "source": source,
            "decision": None,
        }
        if decision is not None:
            case["decision"], case["rlpipe_score"] = decision
        cases.append(case)

    def run_codeio(response, truth, kind, source, decision=None):
        ref = 1.0 if codeio.compute_score(response, truth)["score"] else 0.0
        info = {"data_source": "simulation__codeio", "split": "test"}
        if decision is not None and abs(decision[1] - ref) <= 1e-9:
            decision = None  # (id, the score rlpipe gives): kept only where the reference differs
        add("codeio", response, truth, info, kind, source, decision, ref, CODEIO_FN)

    for response, truth, src in COLLECTED_CODEIO:
        run_codeio(response, truth, "collected", src)
    for number, (name, ptype, truth, wrong, literal) in enumerate(CODEIO):
        gt = f'"{ptype}": {truth}'
        for index, (template, kind, response, decision) in enumerate(
            codeio_responses(ptype, truth, wrong, literal)
        ):
            if index >= 6 and template not in CODEIO_ALWAYS and (index + number) % 2:
                continue  # beyond the well-formed answers, most templates alternate between problems
            run_codeio(response, gt, kind, f"codeio / {name} / {template}", decision)

    for mode in ("o", "i"):
        scorer = f"cruxeval_{mode}"
        for number, (name, code, inp, wrong, alt) in enumerate(CRUX):
            out = crux_output(code, inp)
            prompt = crux_prompt(mode, code, inp, out)
            truth = json.dumps({"functional": code.strip()})
            info = {
                "data_source": f"simulation__cruxeval-{mode}",
                "split": "test",
                "index": number,
                "reference": out,
                "original_prompt": prompt,
                "dataset": f"cruxeval-{mode}",
                "task_id": f"sample_{number}",
                "prompt": prompt,
            }
            maker = crux_o_responses if mode == "o" else crux_i_responses
            wrong_in = wrong_input(code, inp)
            for index, (template, kind, response, decision_id) in enumerate(
                maker(code, inp, out, wrong, alt)
            ):
                if template not in ("assert-block", "think-assert") and (index + number) % 3:
                    continue  # the other templates alternate between functions (time budget)
                fill = {
                    "{ALT}": crux_output(code, alt) if alt else "",
                    "{WRONG_IN}": wrong_in,
                    "{EXPR_IN}": expr_input(inp),
                }
                if "{WRONG_OUT}" in response:
                    try:
                        fill["{WRONG_OUT}"] = crux_output(code, wrong_in)
                    except Exception:  # noqa: BLE001 - the changed input breaks f: skip the template
                        continue
                for key, value in fill.items():
                    response = response.replace(key, value)
                ref = cruxeval.compute_score(response, truth)["score"]
                decision = None
                if decision_id is not None and abs(decision_id[1] - float(ref)) > 1e-9:
                    decision = decision_id  # (id, the score rlpipe gives): kept only where they differ
                add(
                    scorer,
                    response,
                    truth,
                    info,
                    kind,
                    f"cruxeval-{mode} / {name} / {template}",
                    decision,
                    ref,
                    CRUX_FN,
                )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("reference", type=Path, help="checkout of LLM360/Reasoning360 (or an export of it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    codeio, cruxeval = load_reference(args.reference.resolve())
    cases = build(codeio, cruxeval)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for case in cases:
            fh.write(json.dumps(case, ensure_ascii=False) + "\n")
    kinds: dict[str, int] = {}
    for case in cases:
        kinds[case["kind"]] = kinds.get(case["kind"], 0) + 1
    print(f"{len(cases)} cases -> {args.out} {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
