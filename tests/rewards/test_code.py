"""Code scorer: extraction, the three GURU test formats, float tolerance, real sandbox runs."""

import json

import pytest

from rlpipe.rewards import score
from rlpipe.rewards.code import extract_code, outputs_match
from rlpipe.rewards.sandbox import Limits


@pytest.fixture(autouse=True)
def _fast_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rlpipe.rewards.code.DEFAULT_LIMITS", Limits(timeout_s=2.0, cpu_s=2))


def fence(body: str, lang: str = "python") -> str:
    return f"Here you go:\n```{lang}\n{body}\n```\nDone."


STDIO = {"inputs": ["1 2\n", "10 20\n"], "outputs": ["3\n", "30\n"]}
ADD = "a, b = map(int, input().split())\nprint(a + b)"


def test_extract_code_rules() -> None:
    # as the GURU reference (coder1): every Python block of the answer, joined in order
    two = "```python\nprint(1)\n```\nbetter:\n```python\nprint(2)\n```"
    assert extract_code(two) == "print(1)\nprint(2)"
    assert extract_code("```\nprint(3)\n```") == "print(3)"
    assert extract_code("```python\nx = 1\n```\nInput:\n```\n1 2\n```") == "x = 1"  # code.python-blocks-only
    assert extract_code("```cpp\nint main(){}\n```") is None
    assert extract_code("print(4)") is None  # no fenced block: no program (as the reference)
    assert extract_code("<think>```python\nprint(5)\n```</think>no code") is None
    assert extract_code("<think>```python\nprint(5)\n```") is None  # code.require-closed-think


def test_stdin_stdout_pass_and_fail() -> None:
    assert score("code", fence(ADD), json.dumps(STDIO)) == 1.0
    assert score("code", fence(ADD), STDIO) == 1.0  # already-decoded dict
    wrong = "a, b = map(int, input().split())\nprint(a * b if a == 1 else a + b)"
    assert score("code", fence(wrong), STDIO) == 0.0  # first case fails: all must pass
    assert score("code", fence("print(3)"), STDIO) == 0.0


def test_blocks_are_joined() -> None:
    # a solution followed by an example-usage block is one program (as in the reference) ...
    usage = fence("def add(a, b):\n    return a + b") + "\nExample:\n" + fence("print(add(2, 3))")
    assert score("code", usage, {"functional": "assert add(2, 3) == 5"}) == 1.0
    # ... so a draft and its fix both run: the draft's output makes a stdin/stdout test fail
    response = fence("print('wrong')") + "\nFixed version:\n" + fence(ADD)
    assert score("code", response, STDIO) == 0.0


def test_float_tolerance() -> None:
    tests = {"inputs": [""], "outputs": ["0.3333333333 2\n"]}
    assert score("code", fence("print(1/3, 2)"), tests) == 1.0
    assert score("code", fence("print(0.3334, 2)"), tests) == 0.0
    assert outputs_match("1.0000001\n", "1.0")
    assert not outputs_match("1.01", "1.0")
    assert not outputs_match("1000000.5", "1000000")  # absolute tolerance, as the reference
    assert outputs_match("YES\nno", "yes\nNo")  # yes/no in any letter case, as the reference
    assert not outputs_match("Even", "even")
    assert outputs_match("1 2\r\n3\r\n", "1  2\n3")
    assert outputs_match("nan", "nan")  # equal strings
    assert not outputs_match("nan", "0")


def test_trailing_whitespace_and_lines() -> None:
    tests = {"inputs": ["x"], "outputs": ["a\nb\n"]}
    assert score("code", fence("print('a  ')\nprint('b')\n\n"), tests) == 1.0
    assert score("code", fence("print('a b')"), tests) == 0.0


def test_functional() -> None:
    tests = json.dumps({"functional": "assert add(2, 3) == 5\nassert add(-1, 1) == 0"})
    assert score("code", fence("def add(a, b):\n    return a + b"), tests) == 1.0
    assert score("code", fence("def add(a, b):\n    return a - b"), tests) == 0.0
    assert score("code", fence("def add(a, b) return"), tests) == 0.0  # syntax error


def test_call_based() -> None:
    tests = {"inputs": ["[2, 7, 11]\n9", "[3, 3]\n6"], "outputs": ["[0, 1]", "[0, 1]"], "fn_name": "twoSum"}
    good = (
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
        "        for i, n in enumerate(nums):\n            if target - n in seen:\n"
        "                return [seen[target - n], i]\n            seen[n] = i"
    )
    assert score("code", fence(good), tests) == 1.0
    typed = (
        good.replace("self, nums, target", "self, nums: List[int], target: int")
        + "\n\nx: Optional[int] = None"
    )
    assert score("code", fence(typed), tests) == 1.0  # List/Optional work without an import
    # the reference's call-based harness header: collections, heapq, math, itertools ... without import
    uses = (
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = defaultdict(int)\n"
        "        h = []\n        heappush(h, gcd(4, 6))\n        assert list(accumulate([1, 2])) == [1, 3]\n"
        "        assert deque([1]).popleft() == 1 and floor(2.5) == 2 and bisect_left([1, 3], 2) == 1\n"
        "        for i, n in enumerate(nums):\n            if target - n in seen:\n"
        "                return [seen[target - n], i]\n            seen[n] = i"
    )
    assert score("code", fence(uses), tests) == 1.0
    assert score("code", fence(good.replace("return [seen[target - n], i]", "return [i, 0]")), tests) == 0.0


def test_timeouts_and_crashes_score_zero() -> None:
    assert score("code", fence("while True:\n    pass"), STDIO) == 0.0
    assert score("code", fence("raise SystemExit(3)"), {"functional": "pass"}) == 0.0
    # exiting before the appended tests run must not count as passing
    assert score("code", fence("import sys\nsys.exit(0)"), {"functional": "assert False"}) == 0.0
    assert score("code", fence("raise SystemExit"), {"functional": "assert False"}) == 0.0
    # in stdin/stdout mode an explicit exit after printing is normal and fine
    assert (
        score("code", fence("import sys\nprint(3)\nsys.exit(0)"), {"inputs": [""], "outputs": ["3"]}) == 1.0
    )


def test_none_stdin_is_empty() -> None:
    """A test input of None is fed as nothing (the reference passes no stdin), not as the text "None"."""
    assert (
        score("code", fence("import sys\nprint(len(sys.stdin.read()))"), {"inputs": [None], "outputs": ["0"]})
        == 1.0
    )
    assert score("code", fence("print(input())"), {"inputs": [None], "outputs": ["None"]}) == 0.0


def test_exit_before_tests_fails() -> None:
    """code.refuse-early-exit: neither sys.exit(0) nor os._exit(0) skips the appended tests."""
    tests = {"functional": "assert add(2, 3) == 5"}
    wrong = "def add(a, b):\n    return 0\n"
    assert score("code", fence(wrong + "import os\nos._exit(0)"), tests) == 0.0
    assert score("code", fence(wrong + "import sys\nsys.exit(0)"), tests) == 0.0
    assert score("code", fence("def add(a, b):\n    return a + b\nprint('chatty')"), tests) == 1.0


def test_bad_ground_truth_and_empty_response() -> None:
    assert score("code", fence(ADD), "not json") == 0.0
    assert score("code", fence(ADD), {"inputs": [], "outputs": []}) == 0.0
    assert score("code", "", STDIO) == 0.0


def test_prefix_from_extra_info() -> None:
    tests = {"functional": "assert total([1, 2]) == 3"}
    body = "def total(xs: Sequence[int]) -> int:\n    return sum(xs)"
    assert score("code", fence(body), tests) == 0.0  # NameError: Sequence
    info = {"prefix": "from typing import Sequence"}
    assert score("code", fence(body), tests, info) == 1.0
    assert score("code", fence(body), tests, {"prefix": "def broken("}) == 0.0  # ignored, still NameError
    ok = "def total(xs):\n    return sum(xs)"
    assert score("code", fence(ok), tests, {"prefix": "def broken("}) == 1.0  # a bad prefix cannot hurt
