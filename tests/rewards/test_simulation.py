"""CodeI/O JSON comparison and CruxEval input/output prediction checked by sandboxed execution."""

import json

import pytest

from rlpipe.rewards import score

CRUX = {"code": "def f(s, n):\n    return s[::-1] * n", "input": "'ab', 2", "output": "'baba'"}


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ('```json\n{"output": [1, 2.0000001]}\n```', '{"output": [1, 2]}'),
        ('<answer>{"b": 1, "a": [1, 2]}</answer>', {"a": (1, 2), "b": 1}),
        ('The result:\n```json\n{"output": "x"}\n```', '"x"'),  # one-sided wrapper
        ("<answer>\n{'a': None,\n 'b': True}\n</answer>", '{"a": null, "b": true}'),
        ('<think>```json\n{"output": 0}\n```</think>```json\n{"output": 1}\n```', '{"output": 1}'),
    ],
)
def test_codeio_positive(response: str, truth: object) -> None:
    assert score("codeio", response, truth) == 1.0


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        ('```json\n{"output": [1, 2.1]}\n```', '{"output": [1, 2]}'),
        ('```json\n{"output": true}\n```', '{"output": 1}'),  # bool is not int
        ('```json\n{"output": [1, 2]}\n```', '{"output": [2, 1]}'),
        ("no json at all", '{"output": 1}'),
        ('<think>```json\n{"output": 1}\n```', '{"output": 1}'),
    ],
)
def test_codeio_negative(response: str, truth: object) -> None:
    assert score("codeio", response, truth) == 0.0


def test_cruxeval_output() -> None:
    assert score("cruxeval_o", "[ANSWER]\nassert f('ab', 2) == 'baba'\n[/ANSWER]", CRUX) == 1.0
    assert score("cruxeval_o", "<answer>'baba'</answer>", json.dumps(CRUX)) == 1.0
    assert score("cruxeval_o", "[ANSWER]'abab'[/ANSWER]", CRUX) == 0.0
    # a non-literal "prediction" that just re-calls f must not pass
    assert score("cruxeval_o", "[ANSWER]assert f('ab', 2) == f('ab', 2)[/ANSWER]", CRUX) == 0.0
    assert score("cruxeval_o", "[ANSWER]__import__('os')._exit(0)[/ANSWER]", CRUX) == 0.0


def test_cruxeval_input() -> None:
    assert (
        score("cruxeval_i", "[ANSWER]assert f('ba', 2) == 'abab'[/ANSWER]", {**CRUX, "output": "'abab'"})
        == 1.0
    )
    assert score("cruxeval_i", "[ANSWER]f('ab', 2)[/ANSWER]", CRUX) == 1.0
    assert score("cruxeval_i", "The input is:\n'ab', n=2", CRUX) == 1.0  # last line, keyword argument
    assert score("cruxeval_i", "[ANSWER]f('ab', 3)[/ANSWER]", CRUX) == 0.0
    assert score("cruxeval_i", "[ANSWER]f(*['ab', 2])[/ANSWER]", CRUX) == 0.0  # starred: not a literal
    assert score("cruxeval_i", "[ANSWER]f(exit(0))[/ANSWER]", CRUX) == 0.0


def test_cruxeval_spec_from_extra_info_and_bad_spec() -> None:
    assert score("cruxeval_o", "[ANSWER]'baba'[/ANSWER]", "'baba'", CRUX) == 1.0
    assert score("cruxeval_o", "[ANSWER]'baba'[/ANSWER]", "'baba'", None) == 0.0


def test_codeio_guru_formats() -> None:
    truth = '"input": {"preorder": [97], "n": 3}'  # GURU stores a bare key fragment
    assert score("codeio", r'so \boxed{"input": {"n": 3, "preorder": "[97]"}}', truth) == 1.0
    assert score("codeio", '```json\n{"input": {"n": 3, "preorder": [97]}}\n```', truth) == 1.0
    assert score("codeio", r'\boxed{{"n": 3, "preorder": [97]}}', truth) == 1.0  # unwrapped
    assert score("codeio", r'\boxed{"input": {"n": 4, "preorder": [97]}}', truth) == 0.0
    assert score("codeio", r'\boxed{"output": "Yes"}', '"output": "yes"') == 0.0  # case-sensitive


FUNC = "def f(s, n):\n    return s[::-1] * n\n"
PROMPT_O = (
    f"[PYTHON]\ndef f(x):\n    return x\n[/PYTHON]\n[PYTHON]\n{FUNC}assert f('ab', 2) == ??\n[/PYTHON]\n"
)
PROMPT_I = f"...examples...\n[PYTHON]\n{FUNC}assert f(??) == 'baba'\n[/PYTHON]\n[THOUGHT]\n"


def test_cruxeval_guru_row_layouts() -> None:
    # -O: ground truth {"functional": <output literal>}, code and input only in the prompt
    o_truth, o_info = (
        json.dumps({"functional": "'baba'"}),
        {"original_prompt": PROMPT_O, "reference": "'baba'"},
    )
    assert score("cruxeval_o", "[ANSWER]\nassert f('ab', 2) == 'baba'\n[/ANSWER]", o_truth, o_info) == 1.0
    assert score("cruxeval_o", "[ANSWER]\nassert f('ab', 2) == 'abab'\n[/ANSWER]", o_truth, o_info) == 0.0
    # the model cannot move the goalposts by asserting about another input
    assert score("cruxeval_o", "[ANSWER]assert f('ab', 1) == 'ba'[/ANSWER]", o_truth, o_info) == 0.0
    # -I: ground truth {"functional": <code>}, expected output in extra_info["reference"]
    code = "def f(s, n):\n    return s[::-1] * n"
    i_truth, i_info = json.dumps({"functional": code}), {"reference": "'baba'", "original_prompt": PROMPT_I}
    assert score("cruxeval_i", "[ANSWER]\nassert f('ab', 2) == 'baba'\n[/ANSWER]", i_truth, i_info) == 1.0
    assert score("cruxeval_i", "[ANSWER]\nassert f('ba', 1) == 'ab'\n[/ANSWER]", i_truth, i_info) == 0.0
    assert score("cruxeval_i", "[ANSWER]\nassert f('ba', 1) == 'ab'\n[/ANSWER]", i_truth, {}) == 0.0


GURU_PROMPT_O = (
    "You will be given a Python function and an assertion containing an input to the function. ...\n\n"
    f"```python\n{FUNC}assert f('ab', 2) == ??\n```\n"
)
GURU_PROMPT_I = f"You will be given a function f ...\n\n```python\n{FUNC}assert f(??) == 'baba'\n```\n"


def test_cruxeval_reasoning360_layout() -> None:
    """Reasoning360's rows: {"functional": code}, the output in extra_info["reference"], the query in a
    fenced python block of the prompt; the answer an assertion in a python block."""
    truth = json.dumps({"functional": FUNC.strip()})
    o_info = {"reference": "'baba'", "original_prompt": GURU_PROMPT_O}
    i_info = {"reference": "'baba'", "original_prompt": GURU_PROMPT_I}
    assert score("cruxeval_o", "```python\nassert f('ab', 2) == 'baba'\n```", truth, o_info) == 1.0
    assert score("cruxeval_o", "```python\nassert f('ab', 2) == 'ba' + 'ba'\n```", truth, o_info) == 1.0
    assert score("cruxeval_o", "```python\n'baba'\n```", truth, o_info) == 1.0
    assert score("cruxeval_i", "```python\nassert f('a' + 'b', 2) == 'baba'\n```", truth, i_info) == 1.0
    assert score("cruxeval_i", "```python\nassert f('ab', 2) == f('ab', 2)\n```", truth, i_info) == 1.0


def test_cruxeval_refuses_unchecked_answers() -> None:
    """cruxeval_o.refuse-unchecked / cruxeval_i.refuse-unchecked: the reference scores these 1."""
    truth = json.dumps({"functional": FUNC.strip()})
    o_info = {"reference": "'baba'", "original_prompt": GURU_PROMPT_O}
    i_info = {"reference": "'baba'", "original_prompt": GURU_PROMPT_I}
    for response in ("", "```python\n\n```", "```python\nassert True\n```", f"```python\n{FUNC}\n```"):
        assert score("cruxeval_o", response, truth, o_info) == 0.0
        assert score("cruxeval_i", response, truth, i_info) == 0.0
    assert score("cruxeval_o", "```python\n'abab'\n```", truth, o_info) == 0.0  # no assert, wrong
    assert score("cruxeval_o", "```python\nassert f('a', 1) == 'a'\n```", truth, o_info) == 0.0
    assert score("cruxeval_i", "```python\nassert f('a', 1) == 'a'\n```", truth, i_info) == 0.0
    assert score("cruxeval_i", "```python\nf('a', 1)\n```", truth, i_info) == 0.0
    # a hedge of two outputs: every assertion is checked
    hedge = "```python\nassert f('ab', 2) == 'abab'\nassert f('ab', 2) == 'baba'\n```"
    assert score("cruxeval_o", hedge, truth, o_info) == 0.0
    # the claim as written must hold too (-I: a mis-copied output)
    assert score("cruxeval_i", "```python\nassert f('ab', 2) == 'abab'\n```", truth, i_info) == 0.0
    # names, calls and attributes are not constants
    assert score("cruxeval_o", "```python\nassert f('ab', 2) == 'baba'.lower()\n```", truth, o_info) == 0.0


def test_codeio_reference_normalisation() -> None:
    assert score("codeio", '```json\n{"answer": true}\n```', '"output": {"answer": "true"}') == 1.0
    assert score("codeio", '```json\n{"output": "{\\"a\\": 1}"}\n```', '"output": {"a": 1}') == 1.0
    assert score("codeio", 'The output is {"a": [1, 2]}.', '"output": {"a": [1, 2]}') == 1.0  # brace scan
    assert score("codeio", "```json\n42\n```", '"output": 42') == 0.0  # not an object, as the reference
    assert score("codeio", '```json\n{"output": 123456780}\n```', '"output": 123456789') == 0.0  # ints exact
    # codeio.refuse-no-answer: the reference scores no answer 1 against a null output
    assert score("codeio", "", '"output": null') == 0.0
    assert score("codeio", "I could not work it out.", '"output": null') == 0.0
    # codeio.match-key: compared under the ground truth's key
    both = '```json\n{"input": {"n": 5}, "output": 120}\n```'
    assert score("codeio", both, '"input": {"n": 5}') == 1.0
    assert score("codeio", both, '"output": 120') == 1.0
