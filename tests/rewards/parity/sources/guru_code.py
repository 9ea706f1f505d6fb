"""Parity cases for the ``code`` scorer against the GURU code reward (family ``guru_code``).

Reference: LLM360/Reasoning360 at commit 13158341d2a0dfe5f3bb80e7126ff21de0d16676, function
``verl/utils/reward_score/coder1/__init__.py:compute_score`` -- the function its reward router
(``verl/utils/reward_score/__init__.py:default_compute_score``) calls for every ``codegen__*`` data source,
run in its default ``CODER1_EXEC=unsafe_local`` mode (``coder1/unsafe_local_exec.py``: a plain
subprocess with ``timeout`` and ``ulimit -v``, NO sandbox -- run this generator only in a throw-away
scratch directory or container).

Run::

    git clone https://github.com/LLM360/Reasoning360 /tmp/ref && git -C /tmp/ref checkout 13158341d2a0
    python tests/rewards/parity/sources/guru_code.py /tmp/ref

(any directory holding ``verl/utils/reward_score/`` of that commit works, e.g. a ``git archive`` export).
It writes ``tests/rewards/parity/cases/guru_code.jsonl`` (deterministic order, ids ``guru_code-<n>``).
Only the reference's own modules are imported (stub ``verl`` packages point at the checkout, so verl's
heavy ``__init__`` never runs); it needs ``numpy``, ``requests`` and ``pydantic`` (imported by coder1).

Settings of the reference run, all said here because they change what it returns:

* the programs run with this interpreter (``CONDA_BIN_PATH`` = its directory), the one rlpipe's sandbox
  uses, so both sides see the same Python;
* the generator's own stdin is ``/dev/null``: the reference passes ``stdin=None`` (a test input of
  ``None`` or ``""``) through as "inherit the parent's stdin", i.e. nothing to read here;
* the reference's 30 s timeout is lowered to 10 s (no case runs longer than a fraction of a second,
  except none: there are no timeout cases, they would make the parity test slow).

Score mapping: the reference returns ``{"score": s, "acc": s}`` with s in {0.0, 1.0}; the case's
``reference_score`` is s. Ground truths are the JSON strings GURU stores in ``reward_model.ground_truth``;
``extra_info`` is a GURU row's (``data_source``, ``prefix`` for LeetCode rows), as rlpipe's loader passes it.

Cases whose difference is deliberate carry the decision ids documented in ``rlpipe/rewards/code.py``
(``code.require-closed-think``, ``code.python-blocks-only``, ``code.refuse-early-exit``); a case keeps its
decision only when the reference's score really differs from the score the decision promises.
"""

# ruff: noqa: E501 -- test data: long program and test strings
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import types
from pathlib import Path

COMMIT = "13158341d2a0dfe5f3bb80e7126ff21de0d16676"
FUNCTION = "verl/utils/reward_score/coder1/__init__.py:compute_score"
FAMILY = "guru_code"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"


def load_reference(root: Path):
    """coder1 from the checkout at ``root``, with stub parent packages (verl's own __init__ not run)."""
    base = root / "verl" / "utils" / "reward_score"
    for name, path in (
        ("verl", root / "verl"),
        ("verl.utils", root / "verl" / "utils"),
        ("verl.utils.reward_score", base),
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    os.environ["CODER1_EXEC"] = "unsafe_local"
    os.environ["CONDA_BIN_PATH"] = os.path.dirname(sys.executable)
    import importlib

    coder1 = importlib.import_module("verl.utils.reward_score.coder1")
    coder1.code_exec = functools.partial(coder1.code_exec, timeout=10)
    return coder1


# --------------------------------------------------------------------------------------------------
# Problems: (name, ground truth dict, extra_info, correct program, wrong program, prompt)

# A LeetCode-style header like the LeetCodeDataset ``prompt`` field GURU stores as extra_info["prefix"].
LEETCODE_PREFIX = """import random
import functools
import collections
import string
import math
import datetime

from typing import *
from functools import *
from collections import *
from itertools import *
from heapq import *
from bisect import *
from string import *
from operator import *
from math import *

inf = float('inf')
"""


def humaneval(entry: str, asserts: list[str]) -> str:
    body = "".join(f"    assert {a}\n" for a in asserts)
    return f"\n\nMETADATA = {{}}\n\n\ndef check(candidate):\n{body}\n\ncheck({entry})"


def mbpp(asserts: list[str]) -> str:
    return "".join(f"assert {a}\n" for a in asserts)


def lcb_functional(fn: str, calls: list[tuple[str, str]]) -> str:
    body = "".join(f"    assert Solution().{fn}({args}) == {out}\n" for args, out in calls)
    return f"def check_{fn}():\n{body}\ncheck_{fn}()\n"


def taco_functional(fn: str, inputs: list, outputs: list) -> str:
    return (
        f"_inputs = {inputs}\n_outputs = {outputs}\nimport math\n"
        "def _deep_eq(a, b, tol=1e-5):\n"
        "    if isinstance(a, float) or isinstance(b, float):\n"
        "        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)\n"
        "    if isinstance(a, (list, tuple)):\n"
        "        if len(a) != len(b): return False\n"
        "        return all(_deep_eq(x, y, tol) for x, y in zip(a, b))\n"
        "    return a == b\n\n"
        "for i, o in zip(_inputs, _outputs):\n"
        f"    assert _deep_eq({fn}(*i), o[0])"
    )


P = []  # list of dicts

P.append(
    dict(
        name="he_add",
        source="humaneval",
        truth={
            "functional": humaneval(
                "add", ["candidate(2, 3) == 5", "candidate(-1, 1) == 0", "candidate(7, 0) == 7"]
            )
        },
        prompt='```python\ndef add(x: int, y: int):\n    """Add two numbers x and y\n    >>> add(2, 3)\n    5\n    """\n```',
        good="def add(x: int, y: int):\n    return x + y",
        bad="def add(x: int, y: int):\n    return x - y",
        usage="print(add(2, 3))  # 5",
    )
)
P.append(
    dict(
        name="he_sort_desc",
        source="humaneval",
        truth={
            "functional": humaneval(
                "sort_desc",
                [
                    "candidate([3, 1, 2]) == [3, 2, 1]",
                    "candidate([]) == []",
                    "candidate([5, 5, 1]) == [5, 5, 1]",
                ],
            )
        },
        prompt='```python\ndef sort_desc(xs: list):\n    """Return xs sorted in descending order."""\n```',
        good="def sort_desc(xs: list):\n    return sorted(xs, reverse=True)",
        bad="def sort_desc(xs: list):\n    return sorted(xs)",
        usage="print(sort_desc([3, 1, 2]))",
    )
)
P.append(
    dict(
        name="mbpp_palindrome",
        source="mbpp",
        truth={
            "functional": mbpp(
                ['is_palindrome("aba") == True', 'is_palindrome("ab") == False', 'is_palindrome("") == True']
            )
        },
        prompt="Write a function to check whether a string is a palindrome.",
        good="def is_palindrome(s):\n    return s == s[::-1]",
        bad="def is_palindrome(s):\n    return s[0] == s[-1]",
        usage='assert is_palindrome("racecar")',
    )
)
P.append(
    dict(
        name="mbpp_vowels",
        source="mbpp",
        truth={
            "functional": mbpp(
                ['count_vowels("hello") == 2', 'count_vowels("xyz") == 0', 'count_vowels("AEIOU") == 5']
            )
        },
        prompt="Write a function to count the vowels in a string.",
        good="def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')",
        bad="def count_vowels(s):\n    return sum(1 for c in s if c in 'aeiou')",
        usage='print(count_vowels("hello"))',
    )
)
P.append(
    dict(
        name="mbpp_fib",
        source="mbpp",
        truth={"functional": mbpp(["fib(1) == 1", "fib(2) == 1", "fib(10) == 55"])},
        prompt="Write a function to return the n-th Fibonacci number.",
        good="def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        bad="def fib(n):\n    a, b = 1, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        usage="for i in range(1, 6):\n    print(fib(i))",
    )
)
P.append(
    dict(
        name="lc_topk",
        source="leetcode2k",
        truth={
            "functional": "def check(candidate):\n    assert sorted(candidate(nums=[1, 1, 1, 2, 2, 3], k=2)) == [1, 2]\n"
            "    assert candidate(nums=[1], k=1) == [1]\n\n\ncheck(Solution().topKFrequent)"
        },
        info={"prefix": LEETCODE_PREFIX},
        prompt="Given an integer array nums and an integer k, return the k most frequent elements.",
        good="class Solution:\n    def topKFrequent(self, nums: List[int], k: int) -> List[int]:\n"
        "        cnt = Counter(nums)\n        return [x for x, _ in nlargest(k, cnt.items(), key=lambda p: p[1])]",
        bad="class Solution:\n    def topKFrequent(self, nums: List[int], k: int) -> List[int]:\n"
        "        return sorted(set(nums))[:k]",
        usage="print(Solution().topKFrequent([1, 1, 2], 1))",
    )
)
P.append(
    dict(
        name="lc_grid_bfs",
        source="leetcode2k",
        truth={
            "functional": "def check(candidate):\n    assert candidate(grid=[[0, 0], [0, 0]]) == 3\n"
            "    assert candidate(grid=[[0, 1], [1, 0]]) == -1\n    assert candidate(grid=[[0]]) == 1\n\n\n"
            "check(Solution().shortestPath)"
        },
        info={"prefix": LEETCODE_PREFIX},
        prompt="Return the number of cells on a shortest 4-directional path from top-left to bottom-right.",
        good="class Solution:\n    def shortestPath(self, grid: List[List[int]]) -> int:\n"
        "        n, m = len(grid), len(grid[0])\n        if grid[0][0]:\n            return -1\n"
        "        q = deque([(0, 0, 1)])\n        seen = {(0, 0)}\n        while q:\n"
        "            r, c, d = q.popleft()\n            if (r, c) == (n - 1, m - 1):\n                return d\n"
        "            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):\n"
        "                nr, nc = r + dr, c + dc\n"
        "                if 0 <= nr < n and 0 <= nc < m and not grid[nr][nc] and (nr, nc) not in seen:\n"
        "                    seen.add((nr, nc))\n                    q.append((nr, nc, d + 1))\n        return -1",
        bad="class Solution:\n    def shortestPath(self, grid: List[List[int]]) -> int:\n"
        "        return len(grid) + len(grid[0]) - 1",
        usage="print(Solution().shortestPath([[0, 0], [0, 0]]))",
    )
)
P.append(
    dict(
        name="lc_gcd_pairs",
        source="leetcode2k",
        truth={
            "functional": "def check(candidate):\n    assert candidate(nums=[2, 4, 3]) == 1\n"
            "    assert candidate(nums=[5, 7]) == 0\n    assert candidate(nums=[6, 9, 12]) == 3\n\n\n"
            "check(Solution().countPairs)"
        },
        info={"prefix": LEETCODE_PREFIX},
        prompt="Count the pairs i < j with gcd(nums[i], nums[j]) > 1.",
        good="class Solution:\n    def countPairs(self, nums: List[int]) -> int:\n"
        "        return sum(1 for a, b in combinations(nums, 2) if gcd(a, b) > 1)",
        bad="class Solution:\n    def countPairs(self, nums: List[int]) -> int:\n"
        "        return sum(1 for a, b in combinations(nums, 2) if gcd(a, b) >= 1)",
        usage="print(Solution().countPairs([2, 4]))",
    )
)
P.append(
    dict(
        name="lc_median_heap",
        source="leetcode2k",
        truth={
            "functional": "def check(candidate):\n    assert candidate(nums=[3, 1, 2]) == [3, 2, 2]\n"
            "    assert candidate(nums=[5]) == [5]\n\n\ncheck(Solution().runningLowerMedian)"
        },
        info={"prefix": LEETCODE_PREFIX},
        prompt="Return the lower median of every prefix of nums.",
        good="class Solution:\n    def runningLowerMedian(self, nums: List[int]) -> List[int]:\n"
        "        out, seen = [], []\n        for x in nums:\n            insort(seen, x)\n"
        "            out.append(seen[(len(seen) - 1) // 2])\n        return out",
        bad="class Solution:\n    def runningLowerMedian(self, nums: List[int]) -> List[int]:\n"
        "        h, out = [], []\n        for x in nums:\n            heappush(h, x)\n            out.append(h[0])\n"
        "        return out",
        usage="print(Solution().runningLowerMedian([3, 1, 2]))",
    )
)
P.append(
    dict(
        name="lcb_max_pair",
        source="livecodebench functional",
        truth={
            "functional": lcb_functional(
                "maxPairSum", [("[1, 2, 3]", "5"), ("[4, 4]", "8"), ("[-1, -2, 0]", "-1")]
            )
        },
        prompt="```python\nclass Solution:\n    def maxPairSum(self, nums: List[int]) -> int:\n        \n```",
        good="from typing import List\n\nclass Solution:\n    def maxPairSum(self, nums: List[int]) -> int:\n"
        "        a, b = sorted(nums)[-2:]\n        return a + b",
        bad="from typing import List\n\nclass Solution:\n    def maxPairSum(self, nums: List[int]) -> int:\n"
        "        return max(nums) * 2",
        usage="print(Solution().maxPairSum([1, 2, 3]))",
    )
)
P.append(
    dict(
        name="taco_digits",
        source="taco codewars fn_name",
        truth={"functional": taco_functional("digit_sum", [[123], [0], [9999]], [[6], [0], [36]])},
        prompt="Write digit_sum(n) returning the sum of the decimal digits of n.",
        good="def digit_sum(n):\n    return sum(int(d) for d in str(n))",
        bad="def digit_sum(n):\n    return len(str(n))",
        usage="print(digit_sum(123))",
    )
)
# stdin/stdout problems
P.append(
    dict(
        name="io_sum",
        source="livecodebench stdin",
        truth={"inputs": ["1 2\n", "10 20\n", "-5 5\n"], "outputs": ["3\n", "30\n", "0\n"]},
        prompt="Read two integers and print their sum.",
        good="a, b = map(int, input().split())\nprint(a + b)",
        bad="a, b = map(int, input().split())\nprint(a * b)",
        sample=("1 2", "3"),
    )
)
P.append(
    dict(
        name="io_parity",
        source="taco stdin",
        truth={"inputs": ["4\n", "7\n", "0\n"], "outputs": ["YES\n", "NO\n", "YES\n"]},
        prompt="Print YES if n is even, else NO.",
        good="n = int(input())\nprint('YES' if n % 2 == 0 else 'NO')",
        bad="n = int(input())\nprint('YES' if n % 2 else 'NO')",
        sample=("4", "YES"),
        variants={
            "lower": "n = int(input())\nprint('yes' if n % 2 == 0 else 'no')",
            "title": "n = int(input())\nprint('Yes' if n % 2 == 0 else 'No')",
            "word": "n = int(input())\nprint('EVEN' if n % 2 == 0 else 'ODD')",
        },
    )
)
P.append(
    dict(
        name="io_ratio",
        source="primeintellect stdin",
        truth={"inputs": ["1 3\n", "2 4\n"], "outputs": ["0.3333333333\n", "0.5000000000\n"]},
        prompt="Print a / b with 10 digits after the decimal point.",
        good="a, b = map(int, input().split())\nprint(f'{a / b:.10f}')",
        bad="a, b = map(int, input().split())\nprint(f'{a / b:.3f}')",
        sample=("1 3", "0.3333333333"),
        variants={
            "six_digits": "a, b = map(int, input().split())\nprint(f'{a / b:.6f}')",
            "repr": "a, b = map(int, input().split())\nprint(a / b)",
            "seven_digits": "a, b = map(int, input().split())\nprint(f'{a / b:.7f}')",
        },
    )
)
P.append(
    dict(
        name="io_half",
        source="codeforces-style stdin",
        truth={"inputs": ["2000001\n", "3\n"], "outputs": ["1000000.5\n", "1.5\n"]},
        prompt="Print n / 2.",
        good="n = int(input())\nprint(n / 2)",
        bad="n = int(input())\nprint(n // 2)",
        sample=("3", "1.5"),
        variants={
            "rounded_up": "n = int(input())\nprint(n / 2 + 4e-7)",
            "off_by_half": "n = int(input())\nprint((n + 1) // 2)",
        },
    )
)
P.append(
    dict(
        name="io_lines",
        source="livecodebench stdin",
        truth={"inputs": ["3\n", "1\n"], "outputs": ["1\n2\n3\n", "1\n"]},
        prompt="Print the numbers 1..n, one per line.",
        good="n = int(input())\nfor i in range(1, n + 1):\n    print(i)",
        bad="n = int(input())\nprint(*range(1, n + 1))",
        sample=("3", "1\n2\n3"),
        variants={
            "trailing_spaces": "n = int(input())\nfor i in range(1, n + 1):\n    print(i, end='  \\n')",
            "blank_tail": "n = int(input())\nfor i in range(1, n + 1):\n    print(i)\nprint()\nprint()",
            "blank_between": "n = int(input())\nfor i in range(1, n + 1):\n    print(i)\n    print()",
            "crlf": "import sys\nn = int(input())\nsys.stdout.write(''.join(f'{i}\\r\\n' for i in range(1, n + 1)))",
        },
    )
)
P.append(
    dict(
        name="io_grid",
        source="taco stdin",
        truth={"inputs": ["2 3\n1 2 3\n4 5 6\n", "1 1\n7\n"], "outputs": ["6 15\n", "7\n"]},
        prompt="Read an n x m grid and print the row sums on one line.",
        good="import sys\ndata = sys.stdin.read().split()\nn, m = int(data[0]), int(data[1])\n"
        "vals = list(map(int, data[2:]))\nprint(*[sum(vals[i * m:(i + 1) * m]) for i in range(n)])",
        bad="import sys\ndata = sys.stdin.read().split()\nn, m = int(data[0]), int(data[1])\nprint(n * m)",
        sample=("2 3\n1 2 3\n4 5 6", "6 15"),
        variants={
            "main_guard": "import sys\n\ndef main():\n    data = sys.stdin.read().split()\n    n, m = int(data[0]), int(data[1])\n"
            "    vals = list(map(int, data[2:]))\n    print(*[sum(vals[i * m:(i + 1) * m]) for i in range(n)])\n\n"
            "if __name__ == '__main__':\n    main()",
            "deque_no_import": "n, m = map(int, input().split())\nq = deque()\nfor _ in range(n):\n    q.append(sum(map(int, input().split())))\nprint(*q)",
            "numpy": "import sys\nimport numpy as np\ndata = sys.stdin.read().split()\nn, m = int(data[0]), int(data[1])\n"
            "a = np.array(data[2:], dtype=np.int64).reshape(n, m)\nprint(*a.sum(axis=1).tolist())",
        },
    )
)
P.append(
    dict(
        name="io_none_stdin",
        source="stdin None",
        truth={"inputs": [None, None], "outputs": ["0\n", "0\n"]},
        prompt="Print how many characters are on standard input.",
        good="import sys\nprint(len(sys.stdin.read()))",
        bad="print(1)",
        sample=None,
        variants={"reads_line": "print(len(input()))"},
    )
)
P.append(
    dict(
        name="io_none_echo",
        source="stdin None",
        truth={"inputs": [None], "outputs": ["None\n"]},
        prompt="Echo the input line.",
        good="print(None)",
        bad="print(input())",
        sample=None,
        variants={"try_echo": "try:\n    print(input())\nexcept EOFError:\n    print('None')"},
    )
)
P.append(
    dict(
        name="io_empty_stdin",
        source="stdin empty string",
        truth={"inputs": ["", ""], "outputs": ["hello\n", "hello\n"]},
        prompt="Print hello.",
        good="print('hello')",
        bad="print('Hello')",
        sample=None,
        variants={"reads": "import sys\ns = sys.stdin.read()\nprint('hello' if not s else s)"},
    )
)

REASONING = (
    "Okay, let me think about this problem carefully. First I restate it: {task}\n\n"
    "I need to handle the edge cases (empty input, a single element, negative numbers). "
    "Let me trace a small example by hand to make sure the idea is right... yes, that works. "
    "The complexity is fine for the given constraints.\n"
)


def fence(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{code}\n```"


def responses(p: dict) -> list[tuple[str, str, str, tuple[str, float] | None]]:
    """(template, kind, response, decision) for one problem."""
    good, bad, task = p["good"], p["bad"], p["prompt"]
    stdio = "inputs" in p["truth"]
    think = REASONING.format(task=task)
    out: list[tuple[str, str, str, tuple[str, float] | None]] = [
        ("plain-good", "realistic", fence(good), None),
        ("plain-bad", "realistic", fence(bad), None),
        (
            "chat-good",
            "realistic",
            f"Sure! Here is a solution:\n\n{fence(good)}\n\nIt runs in linear time.",
            None,
        ),
        ("think-good", "realistic", f"<think>\n{think}</think>\n\n{fence(good)}", None),
        ("think-bad", "realistic", f"<think>\n{think}</think>\n\nFinal code:\n{fence(bad)}", None),
        (
            "draft-in-think",
            "realistic",
            f"<think>\n{think}A first draft:\n{fence(bad)}\nHmm, that fails the example. Fix it.\n</think>\n{fence(good)}",
            None,
        ),
        ("untagged", "realistic", f"Solution:\n{fence(good, '')}", None),
        ("py-tag", "realistic", fence(good, "py"), None),
        ("empty", "adversarial", "", None),
        (
            "no-code",
            "adversarial",
            "I am not sure how to solve this. It might need dynamic programming.",
            None,
        ),
        ("unfenced", "adversarial", good, None),
        (
            "only-in-reasoning",
            "adversarial",
            f"<think>\n{think}{fence(good)}\n</think>\nThe code is above.",
            None,
        ),
        (
            "unclosed-think",
            "adversarial",
            f"<think>\n{think}I'll write:\n{fence(good)}\nand then double-check the",
            ("code.require-closed-think", 0.0),
        ),
        ("copied-prompt", "adversarial", task, None),
        ("cpp-only", "adversarial", fence("int main() { return 0; }", "cpp"), None),
    ]
    if stdio:
        out.append(
            (
                "draft-then-fix",
                "realistic",
                f"{fence(bad)}\nWait, that is wrong. Corrected:\n{fence(good)}",
                None,
            )
        )
        if p.get("sample"):
            sin, sout = p["sample"]
            out.append(
                (
                    "sample-io-blocks",
                    "realistic",
                    f"{fence(good)}\n\nFor the input\n{fence(sin, '')}\nit prints\n{fence(sout, '')}",
                    ("code.python-blocks-only", 1.0),
                )
            )
            out.append(
                (
                    "sample-text-block",
                    "realistic",
                    f"{fence(good)}\n\nExample:\n{fence(sin + chr(10) + '->' + chr(10) + sout, 'text')}",
                    ("code.python-blocks-only", 1.0),
                )
            )
        for name, code in p.get("variants", {}).items():
            out.append((f"variant-{name}", "realistic", f"<think>\n{think}</think>\n{fence(code)}", None))
        out.append(("crash-after-output", "adversarial", fence(good + "\nraise RuntimeError('oops')"), None))
    else:
        out.append(
            ("usage-block", "realistic", f"{fence(good)}\n\nExample usage:\n{fence(p['usage'])}", None)
        )
        out.append(("draft-then-fix", "realistic", f"{fence(bad)}\nOops, fixed:\n{fence(good)}", None))
        out.append(("fix-then-draft", "adversarial", f"{fence(good)}\nAlternatively:\n{fence(bad)}", None))
        out.append(
            (
                "exit-before-tests",
                "adversarial",
                fence(bad + "\n\nimport sys\nsys.exit(0)"),
                ("code.refuse-early-exit", 0.0),
            )
        )
        out.append(
            (
                "os-exit-before-tests",
                "adversarial",
                fence(bad + "\n\nimport os\nos._exit(0)"),
                ("code.refuse-early-exit", 0.0),
            )
        )
        out.append(
            ("stderr-noise", "realistic", fence(good + "\nimport sys\nprint('debug', file=sys.stderr)"), None)
        )
        if p.get("info", {}).get("prefix"):
            out.append(("copies-prefix", "realistic", fence(p["info"]["prefix"] + "\n" + good), None))
    return out


def collected() -> list[dict]:
    """Canonical solution + test layouts exactly as the reference's data_preprocess scripts build them."""
    he_test = (
        "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate([1.0, 2.0, 3.0], 0.5) == False\n"
        "    assert candidate([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True\n    assert candidate([1.0, 2.0, 3.9, 4.0], 0.05) == True\n"
        "\n\ncheck(has_close_elements)"
    )
    he_sol = (
        "from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
        "            if idx != idx2 and abs(elem - elem2) < threshold:\n                return True\n    return False"
    )
    mb_test = 'assert remove_Occ("hello","l") == "heo"\nassert remove_Occ("abcda","a") == "bcd"\nassert remove_Occ("PHP","P") == "H"\n'
    mb_sol = (
        "def remove_Occ(s, ch):\n    first = s.find(ch)\n    if first != -1:\n        s = s[:first] + s[first + 1:]\n"
        "    last = s.rfind(ch)\n    if last != -1:\n        s = s[:last] + s[last + 1:]\n    return s"
    )
    return [
        dict(
            truth={"functional": he_test},
            info={},
            response=fence(he_sol),
            src="data_preprocess/codegen/humaneval.py: test_code_with_check, HumanEval/0 canonical",
        ),
        dict(
            truth={"functional": he_test},
            info={},
            response=fence(he_sol.replace("< threshold", "<= threshold * 0")),
            src="data_preprocess/codegen/humaneval.py: HumanEval/0 mutant",
        ),
        dict(
            truth={"functional": mb_test},
            info={},
            response=fence(mb_sol),
            src="data_preprocess/codegen/mbpp.py: test_list layout, MBPP/11",
        ),
        dict(
            truth={"functional": mb_test},
            info={},
            response=fence(mb_sol.replace("rfind", "find")),
            src="data_preprocess/codegen/mbpp.py: MBPP/11 mutant",
        ),
        dict(
            truth={
                "functional": "def check(candidate):\n    assert candidate(nums=[2, 7, 11, 15], target=9) == [0, 1]\n\n\ncheck(Solution().twoSum)"
            },
            info={"prefix": LEETCODE_PREFIX},
            response=fence(
                "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        d = defaultdict(int)\n"
                "        for i, x in enumerate(nums):\n            if target - x in d:\n                return [d[target - x], i]\n            d[x] = i"
            ),
            src="data_preprocess/codegen/leetcode2k.py: f'{test}\\n\\ncheck({entry_point})' with prefix",
        ),
        dict(
            truth={
                "functional": "def check(candidate):\n    assert candidate(nums=[2, 7, 11, 15], target=9) == [0, 1]\n\n\ncheck(Solution().twoSum)"
            },
            info={},
            response=fence(
                "class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n        d = defaultdict(int)\n"
                "        for i, x in enumerate(nums):\n            if target - x in d:\n                return [d[target - x], i]\n            d[x] = i"
            ),
            src="coder1/__init__.py comment 'NameError: name defaultdict is not defined' (no prefix)",
        ),
    ]


CORE = {"plain-good", "plain-bad", "think-good", "usage-block"}


def data_source(source: str) -> str:
    """The GURU ``data_source`` of the data set a case imitates (all ``codegen__*``: coder1's route)."""
    for name in ("humaneval", "mbpp", "leetcode2k", "livecodebench", "primeintellect"):
        if name in source.split(" / ")[0] or (name == "leetcode2k" and "coder1/" in source):
            return f"codegen__{name}"
    return "codegen__taco"


def build(coder1) -> list[dict]:
    cases: list[dict] = []

    def add(truth: dict, info: dict, response: str, kind: str, source: str, decision) -> None:
        truth_json = json.dumps(truth)
        extra = {"data_source": data_source(source), **info}
        result = coder1.compute_score(response, truth_json, extra_info=dict(extra))
        ref = float(result["score"])
        case = {
            "id": f"{FAMILY}-{len(cases)}",
            "scorer": "code",
            "response": response,
            "ground_truth": truth_json,
            "extra_info": extra,
            "reference": {"repo": "LLM360/Reasoning360", "commit": COMMIT, "function": FUNCTION},
            "reference_score": ref,
            "kind": kind,
            "source": source,
            "decision": None,
        }
        if decision is not None and abs(decision[1] - ref) > 1e-9:
            case["decision"], case["rlpipe_score"] = decision
        cases.append(case)

    for c in collected():
        add(c["truth"], c["info"], c["response"], "collected", c["src"], None)
    for number, p in enumerate(P):
        for index, (template, kind, response, decision) in enumerate(responses(p)):
            # every problem gets the core templates; the others alternate between problems (time budget)
            if template not in CORE and not template.startswith("variant-") and (index + number) % 3:
                continue
            add(
                p["truth"],
                p.get("info", {}),
                response,
                kind,
                f"{p['source']} / {p['name']} / {template}",
                decision,
            )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="checkout of LLM360/Reasoning360 (or an export of it)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    coder1 = load_reference(args.reference.resolve())
    cases = build(coder1)
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
