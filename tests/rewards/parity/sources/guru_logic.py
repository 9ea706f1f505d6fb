"""Parity cases for the GURU logic puzzles: ``arc_grid``, ``zebra`` and ``ordering`` (family ``guru_logic``).

Reference: LLM360/Reasoning360 at commit 13158341d2a0dfe5f3bb80e7126ff21de0d16676, functions
``verl/utils/reward_score/arcagi.py:compute_score`` (called directly: the repository's router sends only
``simulation__arcagi*`` there and crashes on the renamed ``logic__arcagi1_*`` files),
``verl/utils/reward_score/zebra_puzzle.py:compute_score`` and
``verl/utils/reward_score/puzzles_dataset.py:compute_score`` (``logic__ordering_puzzle*``). Each returns a
dict; its ``score`` is the case's ``reference_score`` (ARC and ordering: 0/1, zebra: the fraction of
cells, as the suite counts them).

Ground truths are in the form rlpipe's scorers receive from a GURU row (``reward_model.ground_truth``):
ARC an int grid (the test outputs of ARC-AGI-1's evaluation tasks, fchollet/ARC-AGI at commit
399030444e0ab0cc8b4e199870fb20b863846f34, read from a checkout), zebra a ``{"header", "rows"}`` dict with
string cells, ordering a list of item names; ``extra_info`` carries the row's ``data_source``.

Run (from the project root, with a Reasoning360 and an ARC-AGI checkout fetched by yourself; nothing of
them is copied into the project)::

    python tests/rewards/parity/sources/guru_logic.py /path/to/Reasoning360 --arc-agi /path/to/ARC-AGI

The reference modules are imported from the checkout with stub parent packages (the repository's
``verl/__init__.py`` would pull in torch and ray); they need ``numpy``. The output is deterministic.
A template may promise a written decision (``decision`` + the score rlpipe gives instead); the promise
is recorded only where the reference's score differs from it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import types
from pathlib import Path

REPO = "LLM360/Reasoning360"
COMMIT = "13158341d2a0dfe5f3bb80e7126ff21de0d16676"
FAMILY = "guru_logic"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"
FUNCTIONS = {
    "arc_grid": ("arcagi", "verl/utils/reward_score/arcagi.py:compute_score"),
    "zebra": ("zebra_puzzle", "verl/utils/reward_score/zebra_puzzle.py:compute_score"),
    "ordering": ("puzzles_dataset", "verl/utils/reward_score/puzzles_dataset.py:compute_score"),
}


def load_reference(root: Path, name: str):
    """Import ``verl.utils.reward_score.<name>`` from a checkout without running the packages' __init__."""
    for package in ("verl", "verl.utils", "verl.utils.reward_score", "verl.utils.reward_score.prime_math"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")))]
            sys.modules[package] = module
    return importlib.import_module(f"verl.utils.reward_score.{name}")


# --------------------------------------------------------------------------------------------------
# Shared text pieces: model-like reasoning, chat phrasing and noise.

THINKING = [
    "Let me look at the examples carefully and work out the rule step by step.",
    "First, I compare each input with its output to see what changes.",
    "Hmm, wait. That doesn't fit the second example. Let me reconsider.",
    "Okay, so the pattern seems consistent across all the examples.",
    "Let me double-check this against every clue before answering.",
    "I'll try a different approach: go through the constraints one at a time.",
    "So far so good. Now the remaining positions follow from the earlier deductions.",
]
CHAT_OPEN = ["Sure! Let's solve this.", "Great question.", "Here's my solution.", "Alright, let's think."]
CHAT_CLOSE = ["Let me know if you have questions!", "Hope this helps.", "", "That is the final answer."]


def reasoning(rng: random.Random, n: int = 4) -> str:
    return "\n\n".join(rng.choice(THINKING) for _ in range(n))


# --------------------------------------------------------------------------------------------------
# ARC-AGI grids.


def arc_tasks(arc_dir: Path, count: int = 24) -> list[tuple[str, list, list]]:
    """``(task id, test input, test output)`` of the first ``count`` evaluation tasks with small outputs."""
    out = []
    for path in sorted((arc_dir / "data" / "evaluation").glob("*.json")):
        task = json.loads(path.read_text())
        test = task["test"][0]
        grid = test["output"]
        if len(grid) <= 8 and len(grid[0]) <= 8 and len(grid) * len(grid[0]) >= 4:
            out.append((path.stem, test["input"], grid))
        if len(out) == count:
            break
    return out


def one_line(grid: list) -> str:
    return json.dumps(grid)


def multi_line(grid: list) -> str:
    return "[" + ",\n ".join(json.dumps(row) for row in grid) + "]"


def pretty(grid: list) -> str:
    return "[\n" + ",\n".join("  " + json.dumps(row) for row in grid) + "\n]"


def digit_rows(grid: list) -> str:
    return "\n".join(" ".join(str(c) for c in row) for row in grid)


def numpy_style(grid: list) -> str:
    return "[" + "\n ".join("[" + " ".join(str(c) for c in row) + "]" for row in grid) + "]"


def altered(grid: list) -> list:
    out = [list(row) for row in grid]
    out[-1][-1] = (out[-1][-1] + 1) % 10
    return out


def arc_cases(arc_dir: Path) -> list[dict]:
    rng = random.Random(2401)
    tasks = arc_tasks(arc_dir)
    cases: list[dict] = []

    def add(response, grid, kind, source, decision=None, promise=None):
        cases.append(
            {
                "scorer": "arc_grid",
                "response": response,
                "ground_truth": grid,
                "extra_info": {"data_source": "logic__arcagi1", "split": "test"},
                "kind": kind,
                "source": source,
                "promise": (decision, promise) if decision else None,
            }
        )

    prompt_tail = (
        "What is the output grid? Please put your answer within <answer> and </answer> tags, "
        "your final answer should be only the output grid (2d array)."
    )
    for i, (task_id, _, grid) in enumerate(tasks):
        src = f"ARC-AGI-1 evaluation/{task_id}.json"
        template = i % 8
        if template == 0:
            add(
                f"{reasoning(rng)}\n\n<answer>{one_line(grid)}</answer>",
                grid,
                "realistic",
                f"{src}; one-line grid",
            )
        elif template == 1:
            add(
                f"{reasoning(rng)}\n\nThe output grid is:\n<answer>\n{multi_line(grid)}\n</answer>",
                grid,
                "realistic",
                f"{src}; one row per line",
            )
        elif template == 2:
            add(
                f"<think>\n{reasoning(rng, 6)}\n</think>\n\n<answer>{one_line(grid)}</answer>",
                grid,
                "realistic",
                f"{src}; </think> then the answer",
            )
        elif template == 3:
            add(
                f"{reasoning(rng)}\n\n<answer>\n{pretty(grid)}\n</answer>",
                grid,
                "realistic",
                f"{src}; pretty-printed JSON (outer bracket on its own line)",
                "arc_grid.spaced-brackets",
                1.0,
            )
        elif template == 4:
            add(
                f"{reasoning(rng)}\nFirst draft: <answer>{one_line(altered(grid))}</answer>\n"
                f"Wait, the last cell is wrong. Corrected:\n<answer>{one_line(grid)}</answer>",
                grid,
                "realistic",
                f"{src}; draft answer then a corrected last answer",
            )
        elif template == 5:
            add(
                f"{rng.choice(CHAT_OPEN)}\n\n**Reasoning**\n{reasoning(rng, 3)}\n\n<answer>\n"
                f"The output grid is {one_line(grid)}.\n</answer>\n\n{rng.choice(CHAT_CLOSE)}",
                grid,
                "realistic",
                f"{src}; chat style, grid embedded in a sentence inside the tag",
            )
        elif template == 6:
            add(
                f"{reasoning(rng)}\n<answer>\n```json\n{one_line(grid)}\n```\n</answer>",
                grid,
                "realistic",
                f"{src}; fenced JSON inside the tag",
            )
        else:
            add(
                f"{reasoning(rng)}\n\n<answer>\n{digit_rows(grid)}\n</answer>",
                grid,
                "realistic",
                f"{src}; rows of space-separated digits",
                "arc_grid.digit-rows",
                1.0,
            )
        # A wrong answer for every task, in rotating forms.
        wrong = template % 4
        if wrong == 0:
            add(
                f"{reasoning(rng)}\n<answer>{one_line(altered(grid))}</answer>",
                grid,
                "realistic",
                f"{src}; one cell wrong",
            )
        elif wrong == 1:
            add(
                f"{reasoning(rng)}\n<answer>{one_line(grid + [grid[-1]])}</answer>",
                grid,
                "realistic",
                f"{src}; an extra row",
            )
        elif wrong == 2:
            add(
                f"{reasoning(rng)}\n<answer>{one_line(grid)}</answer>\nHmm, actually no.\n"
                f"<answer>{one_line(altered(grid))}</answer>",
                grid,
                "realistic",
                f"{src}; correct draft, wrong last answer",
            )
        else:
            transposed = [list(r) for r in zip(*grid, strict=True)]
            add(
                f"{reasoning(rng)}\n<answer>{one_line(transposed)}</answer>",
                grid,
                "realistic",
                f"{src}; transposed",
            )

    # Adversarial responses on a handful of tasks.
    for i, (task_id, test_input, grid) in enumerate(tasks[:10]):
        src = f"ARC-AGI-1 evaluation/{task_id}.json"
        kinds = [
            ("", "empty response", None, None),
            (
                f"<think>\n{reasoning(rng)}\nSo the answer is <answer>{one_line(grid)}</answer>\n</think>\n\n"
                "I could not settle on a final grid.",
                "answer only inside the reasoning",
                "arc_grid.answer-after-think",
                0.0,
            ),
            (
                f"<think>\n{reasoning(rng)}\n<answer>{one_line(grid)}</answer>\nLet me verify once more",
                "unclosed <think> (truncated), answer inside it",
                "arc_grid.answer-after-think",
                0.0,
            ),
            (
                f"Input: {test_input}\n\n{prompt_tail}",
                "copied prompt tail, no answer",
                None,
                None,
            ),
            (
                f"{reasoning(rng)}\n<answer>{one_line(test_input)}</answer>",
                "the test input copied as the answer",
                None,
                None,
            ),
            (
                f"{reasoning(rng)}\nThe output grid is {one_line(grid)}.",
                "grid without <answer> tags",
                None,
                None,
            ),
            (f"{reasoning(rng)}\n<answer></answer>", "empty <answer> tag", None, None),
            (
                f"{reasoning(rng)}\n<answer>{one_line(grid)} or maybe {one_line(altered(grid))}</answer>",
                "hedge: two grids in one answer, the right one first",
                "arc_grid.refuse-hedge",
                0.0,
            ),
            (
                f"{reasoning(rng)}\n<answer>\n{numpy_style(grid)}\n</answer>",
                "numpy-printed grid (no commas)",
                "arc_grid.digit-rows",
                1.0,
            ),
            (
                f"{reasoning(rng)}\n<answer>[[{', '.join(str(c) for c in grid[0])}, ...], ...]</answer>",
                "grid elided with ...",
                None,
                None,
            ),
        ]
        response, what, decision, promise = kinds[i]
        add(response, grid, "adversarial", f"{src}; {what}", decision, promise)
    # Values as floats / strings (both read as ints), and the 1x1 [[0]] ground truth that the
    # reference pays for any unparseable answer (its fallback grid is [[0]]).
    _, _, grid = tasks[0]
    add(
        f"<answer>{json.dumps([[float(c) for c in row] for row in grid])}</answer>",
        grid,
        "realistic",
        "float cells",
    )
    add(
        f"<answer>{json.dumps([[str(c) for c in row] for row in grid])}</answer>",
        grid,
        "realistic",
        "string cells",
    )
    add(
        "I don't know.",
        [[0]],
        "adversarial",
        "no answer on a 1x1 [[0]] truth",
        "arc_grid.refuse-default-grid",
        0.0,
    )
    add("<answer>[[0]]</answer>", [[0]], "realistic", "1x1 [[0]] truth answered", None, None)
    add(
        "<answer>none</answer>",
        [[0]],
        "adversarial",
        "'none' on a [[0]] truth",
        "arc_grid.refuse-default-grid",
        0.0,
    )
    return cases


# --------------------------------------------------------------------------------------------------
# Zebra puzzles.

ATTRIBUTES = {
    "Nationality": ["british", "polish", "german", "thai", "egyptian", "mexican", "japanese"],
    "Job": ["plumber", "carpenter", "chef", "doctor", "pilot", "teacher", "software-developer"],
    "Pet": ["cat", "dog", "hamster", "goldfish", "guinea-pig", "turtle", "rabbit"],
    "Beverage": ["coffee", "tea", "milk", "water", "iced-tea", "soy-milk", "7up"],
    "Food": ["apple", "kiwi", "mango", "pear", "onion", "radish", "zucchini"],
    "Hobby": ["chess", "hiking", "rowing", "skydiving", "cooking", "drawing", "gardening"],
}
ZEBRA_EXAMPLE = (
    '<answer> {"header": ["Position", "Nationality", "Job"], "rows": [["1", "british", "plumber"], '
    '["2", "polish", "carpenter"]]} </answer>'
)


def zebra_truth(rng: random.Random, houses: int, kinds: int) -> dict:
    names = sorted(rng.sample(sorted(ATTRIBUTES), kinds))
    columns = [rng.sample(ATTRIBUTES[name], houses) for name in names]
    rows = [[str(i + 1)] + [column[i] for column in columns] for i in range(houses)]
    return {"header": ["Position", *names], "rows": rows}


def swap_column(truth: dict, column: int) -> dict:
    rows = [list(r) for r in truth["rows"]]
    rows[0][column], rows[1][column] = rows[1][column], rows[0][column]
    return {"header": truth["header"], "rows": rows}


def zebra_cases() -> list[dict]:
    rng = random.Random(2402)
    cases: list[dict] = []

    def add(response, truth, kind, source, decision=None, promise=None):
        cases.append(
            {
                "scorer": "zebra",
                "response": response,
                "ground_truth": truth,
                "extra_info": {"data_source": "logic__zebra_puzzle_dataset", "split": "test"},
                "kind": kind,
                "source": source,
                "promise": (decision, promise) if decision else None,
            }
        )

    example_truth = {
        "header": ["Position", "Nationality", "Job"],
        "rows": [["1", "british", "plumber"], ["2", "polish", "carpenter"]],
    }
    add(
        f"{reasoning(rng, 2)}\n{ZEBRA_EXAMPLE}",
        example_truth,
        "collected",
        "process_zebrapuzzle_dataset.py InstructionFollow example answer, on its own grid",
    )
    add(
        ZEBRA_EXAMPLE.replace('"polish", "carpenter"', '"polish", "plumber"'),
        example_truth,
        "collected",
        "process_zebrapuzzle_dataset.py example answer with one wrong cell",
    )
    for i in range(48):
        houses, kinds = 2 + i % 4, 2 + (i // 4) % 3
        truth = zebra_truth(rng, houses, kinds)
        src = f"zebra grid {houses}x{kinds + 1} #{i}"
        template = i % 12
        if template == 0:
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(truth)}</answer>",
                truth,
                "realistic",
                f"{src}; one-line JSON",
            )
        elif template == 1:
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(swap_column(truth, 1))}</answer>",
                truth,
                "realistic",
                f"{src}; two cells swapped",
            )
        elif template == 2:
            add(
                f"{reasoning(rng)}\n<answer>\n{json.dumps(truth, indent=2)}\n</answer>",
                truth,
                "realistic",
                f"{src}; multi-line JSON",
                "zebra.multiline-answer",
                1.0,
            )
        elif template == 3:
            add(
                f"<think>\n{reasoning(rng, 6)}\n</think>\n"
                f"<answer>{json.dumps(swap_column(truth, kinds))}</answer>",
                truth,
                "realistic",
                f"{src}; </think>, last column partly wrong",
            )
        elif template == 4:
            add(
                f"{reasoning(rng)}\n<answer>{truth!r}</answer>",
                truth,
                "realistic",
                f"{src}; Python dict literal",
            )
        elif template == 5:
            capital = {
                "header": truth["header"],
                "rows": [[c.capitalize() for c in r] for r in truth["rows"]],
            }
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(capital)}</answer>",
                truth,
                "realistic",
                f"{src}; capitalised cells",
                "zebra.cell-normalisation",
                1.0,
            )
        elif template == 6:
            numbered = {"header": truth["header"], "rows": [[int(r[0]), *r[1:]] for r in truth["rows"]]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(numbered)}</answer>",
                truth,
                "realistic",
                f"{src}; positions as numbers",
                "zebra.cell-normalisation",
                1.0,
            )
        elif template == 7:
            draft = swap_column(swap_column(truth, 1), kinds)
            add(
                f"{reasoning(rng)}\nDraft: <answer>{json.dumps(draft)}</answer>\nLet me fix that.\n"
                f"<answer>{json.dumps(truth)}</answer>",
                truth,
                "realistic",
                f"{src}; draft then corrected answer",
            )
        elif template == 8:
            multi = swap_column(truth, 1)
            add(
                f"{rng.choice(CHAT_OPEN)}\n{reasoning(rng, 3)}\n\n"
                f"<answer>\n{json.dumps(multi, indent=1)}\n</answer>",
                truth,
                "realistic",
                f"{src}; multi-line JSON, two cells swapped",
                "zebra.multiline-answer",
                1.0 - 2 / (houses * (kinds + 1)),
            )
        elif template == 9:
            reordered = {"rows": truth["rows"], "header": truth["header"]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(reordered)}</answer>\n{rng.choice(CHAT_CLOSE)}",
                truth,
                "realistic",
                f"{src}; keys in another order",
            )
        elif template == 10:
            spaced = {"header": truth["header"], "rows": [[f" {c} " for c in r] for r in truth["rows"]]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(spaced)}</answer>",
                truth,
                "realistic",
                f"{src}; cells padded with spaces",
                "zebra.cell-normalisation",
                1.0,
            )
        else:
            wrong = {"header": truth["header"], "rows": [list(r) for r in reversed(truth["rows"])]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(wrong)}</answer>",
                truth,
                "realistic",
                f"{src}; rows reversed",
            )

    for i in range(12):
        truth = zebra_truth(rng, 3 + i % 3, 3)
        src = f"zebra grid {3 + i % 3}x4 adversarial #{i}"
        template = i % 12
        if template == 0:
            add("", truth, "adversarial", f"{src}; empty response")
        elif template == 1:
            add(
                f"<think>\n{reasoning(rng)}\n<answer>{json.dumps(truth)}</answer>\n</think>\n"
                "I am not confident.",
                truth,
                "adversarial",
                f"{src}; answer only inside the reasoning",
                "zebra.answer-after-think",
                0.0,
            )
        elif template == 2:
            add(
                f"<think>\n{reasoning(rng)}\n<answer>{json.dumps(truth)}</answer>",
                truth,
                "adversarial",
                f"{src}; unclosed <think>",
                "zebra.answer-after-think",
                0.0,
            )
        elif template == 3:
            add(
                "Solve the zebra puzzle. The clues are: ... Please return the final answer in "
                f"<answer> </answer> tags, for example {ZEBRA_EXAMPLE}.",
                truth,
                "adversarial",
                f"{src}; copied prompt with its example answer",
            )
        elif template == 4:
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(truth['rows'])}</answer>",
                truth,
                "adversarial",
                f"{src}; bare rows list instead of the dict",
            )
        elif template == 5:
            short = {"header": truth["header"], "rows": truth["rows"][:-1]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(short)}</answer>",
                truth,
                "adversarial",
                f"{src}; a row missing",
            )
        elif template == 6:
            short = {"header": truth["header"], "rows": [r[:-1] for r in truth["rows"]]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(short)}</answer>",
                truth,
                "adversarial",
                f"{src}; a column missing",
            )
        elif template == 7:
            add(
                f"{reasoning(rng)}\n{json.dumps(truth)}",
                truth,
                "adversarial",
                f"{src}; table without <answer> tags",
            )
        elif template == 8:
            add(
                f"{reasoning(rng)}\n<answer>The final grid is {json.dumps(truth)}</answer>",
                truth,
                "adversarial",
                f"{src}; prose inside the tag",
            )
        elif template == 9:
            add(f"{reasoning(rng)}\n<answer>{{}}</answer>", truth, "adversarial", f"{src}; empty dict")
        elif template == 10:
            longer = {"header": truth["header"], "rows": [*truth["rows"], ["9", "x", "y", "z"]]}
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(longer)}</answer>",
                truth,
                "adversarial",
                f"{src}; an extra row",
            )
        else:
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(truth)[:-5]}</answer>",
                truth,
                "adversarial",
                f"{src}; truncated JSON",
            )
    return cases


# --------------------------------------------------------------------------------------------------
# Ordering puzzles.

OBJECTS = {
    "birds": [
        "hawk",
        "hummingbird",
        "quail",
        "owl",
        "crow",
        "robin",
        "cardinal",
        "sparrow",
        "bluejay",
        "pigeon",
    ],
    "fruits": ["apple", "passion fruit", "mango", "kiwi", "dragonfruit", "pear", "lychee", "fig"],
    "vehicles": ["bus", "hot air balloon", "golf cart", "tram", "kayak", "van", "rickshaw"],
    "gemstones": ["ruby", "lapis lazuli", "opal", "jade", "topaz", "onyx", "garnet"],
    "people": ["Emma", "Liam", "Wei", "Priya", "Mohammed", "Sofia", "Jamal", "Yuki"],
}
ORDERING_EXAMPLE = "<answer> ['pigeon', 'sparrow', 'quail'] </answer>"


def ordering_cases() -> list[dict]:
    rng = random.Random(2403)
    cases: list[dict] = []

    def add(response, truth, kind, source, decision=None, promise=None):
        cases.append(
            {
                "scorer": "ordering",
                "response": response,
                "ground_truth": truth,
                "extra_info": {"data_source": "logic__ordering_puzzle_dataset", "split": "test"},
                "kind": kind,
                "source": source,
                "promise": (decision, promise) if decision else None,
            }
        )

    add(
        f"{reasoning(rng, 2)}\n{ORDERING_EXAMPLE}",
        ["pigeon", "sparrow", "quail"],
        "collected",
        "process_puzzles_dataset.py INSTRUCTION_FOLLOW example answer, on its own order",
    )
    add(
        ORDERING_EXAMPLE,
        ["sparrow", "pigeon", "quail"],
        "collected",
        "process_puzzles_dataset.py example answer against another order",
    )
    kinds = sorted(OBJECTS)
    for i in range(60):
        kind_name = kinds[i % len(kinds)]
        truth = rng.sample(OBJECTS[kind_name], 3 + i % 5)
        src = f"ordering {kind_name} n={len(truth)} #{i}"
        people = kind_name == "people"
        decision = ("ordering.casefold-truth", 1.0) if people else (None, None)
        template = i % 12
        if template == 0:
            add(
                f"{reasoning(rng)}\n<answer> {truth!r} </answer>",
                truth,
                "realistic",
                f"{src}; Python list",
                *decision,
            )
        elif template == 1:
            add(
                f"{reasoning(rng)}\n<answer>{json.dumps(truth)}</answer>",
                truth,
                "realistic",
                f"{src}; JSON list",
                *decision,
            )
        elif template == 2:
            add(
                f"{reasoning(rng)}\n<answer>[{', '.join(truth)}]</answer>",
                truth,
                "realistic",
                f"{src}; unquoted list",
                *decision,
            )
        elif template == 3:
            add(
                f"{reasoning(rng)}\n<answer>\n{json.dumps(truth)}\n</answer>",
                truth,
                "realistic",
                f"{src}; list on its own line",
                "ordering.multiline-answer",
                1.0,
            )
        elif template == 4:
            add(
                f"<think>\n{reasoning(rng, 6)}\n</think>\n<answer>{truth!r}</answer>",
                truth,
                "realistic",
                f"{src}; </think> then the answer",
                *decision,
            )
        elif template == 5:
            wrong = truth[1:] + truth[:1]
            add(
                f"{reasoning(rng)}\n<answer>{wrong!r}</answer>", truth, "realistic", f"{src}; rotated (wrong)"
            )
        elif template == 6:
            add(
                f"{reasoning(rng)}\n<answer>{truth[:-1]!r}</answer>",
                truth,
                "realistic",
                f"{src}; one item missing",
            )
        elif template == 7:
            add(
                f"{reasoning(rng)}\n<answer>The order from left to right is {truth!r}.</answer>",
                truth,
                "realistic",
                f"{src}; list inside a sentence",
                *decision,
            )
        elif template == 8:
            upper = [t.upper() if j % 2 else t.capitalize() for j, t in enumerate(truth)]
            add(
                f"{rng.choice(CHAT_OPEN)}\n{reasoning(rng, 3)}\n"
                f"<answer>{upper!r}</answer>\n{rng.choice(CHAT_CLOSE)}",
                truth,
                "realistic",
                f"{src}; upper/capitalised items",
                *decision,
            )
        elif template == 9:
            add(
                f"{reasoning(rng)}\n<answer>{', '.join(truth)}</answer>",
                truth,
                "realistic",
                f"{src}; comma-separated without brackets",
                "ordering.plain-list",
                1.0,
            )
        elif template == 10:
            draft = list(reversed(truth))
            add(
                f"{reasoning(rng)}\n<answer>{draft!r}</answer>\n"
                f"Wait, that's reversed.\n<answer>{truth!r}</answer>",
                truth,
                "realistic",
                f"{src}; draft then corrected answer",
                *decision,
            )
        else:
            add(
                f"{reasoning(rng)}\n<answer>\n"
                + "\n".join(f"{j + 1}. {t}" for j, t in enumerate(truth))
                + "\n</answer>",
                truth,
                "realistic",
                f"{src}; numbered lines",
                "ordering.multiline-answer",
                1.0,
            )
    for i in range(14):
        truth = rng.sample(OBJECTS["birds"], 4)
        src = f"ordering birds n=4 adversarial #{i}"
        if i == 0:
            add("", truth, "adversarial", f"{src}; empty response")
        elif i == 1:
            add(
                f"<think>\n{reasoning(rng)}\n<answer>{truth!r}</answer>\n</think>\nNot sure.",
                truth,
                "adversarial",
                f"{src}; answer only inside the reasoning",
                "ordering.answer-after-think",
                0.0,
            )
        elif i == 2:
            add(
                f"<think>\n{reasoning(rng)}\n<answer>{truth!r}</answer>",
                truth,
                "adversarial",
                f"{src}; unclosed <think>",
                "ordering.answer-after-think",
                0.0,
            )
        elif i == 3:
            add(
                f"{reasoning(rng)}\n<answer>{truth!r} or {list(reversed(truth))!r}</answer>",
                truth,
                "adversarial",
                f"{src}; hedge: two orders, the right one first",
                "ordering.refuse-hedge",
                0.0,
            )
        elif i == 4:
            add(
                "Solve the following puzzle to determine the order of the birds from left to right. "
                f"The birds are {', '.join(sorted(truth))}. Please put your answer within <answer> and "
                f"</answer> tags, for example {ORDERING_EXAMPLE}.",
                truth,
                "adversarial",
                f"{src}; copied prompt with its example answer",
            )
        elif i == 5:
            add(
                f"{reasoning(rng)}\n<answer>{sorted(truth)!r}</answer>",
                truth,
                "adversarial",
                f"{src}; items in prompt order",
            )
        elif i == 6:
            add(f"{reasoning(rng)}\n<answer>[]</answer>", truth, "adversarial", f"{src}; empty list")
        elif i == 7:
            add(
                f"{reasoning(rng)}\nThe order is {truth!r}.", truth, "adversarial", f"{src}; no <answer> tags"
            )
        elif i == 8:
            add(f"{reasoning(rng)}\n<answer></answer>", truth, "adversarial", f"{src}; empty tag")
        elif i == 9:
            add(
                f"{reasoning(rng)}\n<answer>{[*truth, truth[0]]!r}</answer>",
                truth,
                "adversarial",
                f"{src}; an item repeated at the end",
            )
        elif i == 10:
            add(
                f"{reasoning(rng)}\n<answer>{truth!r}</answer> <answer>{list(reversed(truth))!r}</answer>",
                truth,
                "adversarial",
                f"{src}; right then wrong answer block",
            )
        elif i == 11:
            add(
                f"{reasoning(rng)}\n<answer>[{', '.join(repr(t) for t in truth)}, ...]</answer>",
                truth,
                "adversarial",
                f"{src}; list ending in ...",
                "ordering.exact-items",
                0.0,
            )
        elif i == 12:
            add(
                f"{reasoning(rng)}\n"
                f"<answer>['{truth[0]}', '{truth[1]}'], ['{truth[2]}', '{truth[3]}']</answer>",
                truth,
                "adversarial",
                f"{src}; list split in two",
                "ordering.refuse-hedge",
                0.0,
            )
        else:
            add(
                f"{reasoning(rng)}\n<answer>{' '.join(truth)}</answer>",
                truth,
                "adversarial",
                f"{src}; space-separated names",
            )
    return cases


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a Reasoning360 checkout (the repository root)")
    parser.add_argument("--arc-agi", type=Path, required=True, help="an fchollet/ARC-AGI checkout")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    modules = {scorer: load_reference(args.reference, name) for scorer, (name, _) in FUNCTIONS.items()}
    lines = []
    for n, case in enumerate(arc_cases(args.arc_agi) + zebra_cases() + ordering_cases(), start=1):
        scorer = case["scorer"]
        result = modules[scorer].compute_score(case["response"], case["ground_truth"])
        reference_score = float(result["score"])
        record = {
            "id": f"{FAMILY}-{n}",
            "scorer": scorer,
            "response": case["response"],
            "ground_truth": case["ground_truth"],
            "extra_info": case["extra_info"],
            "reference": {"repo": REPO, "commit": COMMIT, "function": FUNCTIONS[scorer][1]},
            "reference_score": reference_score,
            "kind": case["kind"],
            "source": case["source"],
            "decision": None,
        }
        promise = case["promise"]
        if promise and abs(promise[1] - reference_score) > 1e-9:
            record["decision"], record["rlpipe_score"] = promise
        lines.append(json.dumps(record, ensure_ascii=False))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
