"""Parity cases for GURU's table QA (FinQA, HiTab, MultiHiertt) and rlpipe's ``tabular`` (``guru_table``).

Reference: LLM360/Reasoning360 at commit 13158341d2a0dfe5f3bb80e7126ff21de0d16676, function
``verl/utils/reward_score/tablereason.py:compute_score`` (the router's choice for every ``table__*``
data source; it uses ``prime_math/grader.py:math_equal`` and ``math.py``'s box extraction). It returns
``{"score": bool, "acc": bool}``; the case's ``reference_score`` is that bool as 0/1.

Ground truths take the forms the GURU rows hold (``reward_model.ground_truth``): FinQA a float (the
preprocessing evaluates ``2.85%`` to ``0.0285``), HiTab a string (several answers joined with ``|``,
numbers or cell text), MultiHiertt a numeric string. ``extra_info`` carries the row's ``data_source``.

Run (from the project root, with a Reasoning360 checkout fetched by yourself; nothing of it is copied
into the project)::

    python tests/rewards/parity/sources/guru_table.py /path/to/Reasoning360

The reference modules are imported from the checkout with stub parent packages (the repository's
``verl/__init__.py`` would pull in torch and ray); they need ``sympy``. The output is deterministic.
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
FAMILY = "guru_table"
FUNCTION = "verl/utils/reward_score/tablereason.py:compute_score"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"


def load_reference(root: Path, name: str):
    """Import ``verl.utils.reward_score.<name>`` from a checkout without running the packages' __init__."""
    for package in ("verl", "verl.utils", "verl.utils.reward_score", "verl.utils.reward_score.prime_math"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")))]
            sys.modules[package] = module
    return importlib.import_module(f"verl.utils.reward_score.{name}")


THINKING = [
    "Let me find the relevant rows in the table first.",
    "The question asks for the change between the two years, so I subtract and divide by the earlier value.",
    "Looking at the second table, the total is listed in the last row.",
    "Hmm, wait, I should double-check the units: the table is in millions.",
    "Computing: the numerator is the difference and the denominator is the base year value.",
    "I'll round to two decimal places at the end.",
]
INSTRUCTION_FINQA = "Please output the final numeric answer within \\boxed{}."
INSTRUCTION_HITAB = (
    "Please output the final answer within \\boxed{}. If there are multiple answers, please output them "
    "separated by |."
)


def reasoning(rng: random.Random, n: int = 3) -> str:
    return "\n".join(rng.choice(THINKING) for _ in range(n))


def finqa_truth(answer: str) -> float:
    """FinQA's stored ground truth: its answer string evaluated the way the GURU preprocessing does."""
    text = answer.replace(",", "").replace("%", " / 100").replace("$", "").replace(":", "/")
    return float(eval(text))  # noqa: S307 -- fixed strings written in this file


# (answer as written in the dataset, a correct way a model writes it, a near miss)
FINQA = [
    ("2.85%", "2.85\\%", "2.9\\%"),
    ("12.5%", "12.5%", "13.5%"),
    ("-3.2%", "-3.2\\%", "3.2\\%"),
    ("0.75", "0.75", "0.76"),
    ("1234.5", "1,234.5", "1,243.5"),
    ("$ 456", "\\$456", "\\$465"),
    ("38.7", "38.7", "37.8"),
    ("15.2%", "0.152", "0.125"),
    ("9%", "9", "8"),
    ("1:4", "1:4", "1:5"),
    ("107.6", "107.6", "106.7"),
    ("-0.05", "-0.05", "0.05"),
    ("3.14", "3.142", "3.2"),
    ("2500000", "2,500,000", "2,500"),
    ("0.0123", "1.23\\%", "12.3\\%"),
    ("87.4", "87.40", "78.4"),
    ("4.5%", "4.50\\%", "5.4\\%"),
    ("1.12", "1.12", "1.21"),
    ("-145", "-145", "145.5"),
    ("66.7%", "66.67\\%", "33.3\\%"),
]
# HiTab / MultiHiertt string ground truths: (truth, correct form, wrong form)
HITAB = [
    ("12.3", "12.3", "12.4"),
    ("north america", "North America", "South America"),
    ("2008", "2008", "2009"),
    ("men", "Men", "women"),
    ("45|55", "55 | 45", "45 | 56"),
    ("1.5|2.5|3.5", "1.5|2.5|3.5", "1.5|2.5"),
    ("quebec|ontario", "Ontario | Quebec", "Ontario"),
    ("0.4", "0.40", "0.04"),
    ("61.2", "61.2\\%", "62.1"),
    ("less than high school", "less than high school", "high school"),
    ("340", "340", "34"),
    ("17.9|18.3", "17.9 | 18.3", "17.9 | 18.4"),
]
MULTIHIERTT = [
    ("2.34", "2.34"),
    ("1539.0", "1539"),
    ("0.36842", "0.3684"),
    ("-38.0", "-38"),
    ("12864.0", "12,864"),
    ("0.08333", "(5.2 - 4.8) / 4.8"),
    ("25.66", "25.66"),
    ("113.0", "113"),
]


def build() -> list[dict]:
    rng = random.Random(2404)
    cases: list[dict] = []

    def add(response, truth, source_name, kind, source, decision=None, promise=None):
        cases.append(
            {
                "response": response,
                "ground_truth": truth,
                "extra_info": {"data_source": source_name, "split": "test"},
                "kind": kind,
                "source": source,
                "promise": (decision, promise) if decision else None,
            }
        )

    # Collected: the instruction's own examples, answered as the prompts ask.
    add("\\boxed{42}", "42", "table__hitab", "collected", "hitab.py InstructionFollow: a boxed answer")
    add(
        "\\boxed{3|4}",
        "3|4",
        "table__hitab",
        "collected",
        "hitab.py InstructionFollow: answers separated by |",
    )
    add(
        "\\boxed{4|3}",
        "3|4",
        "table__hitab",
        "collected",
        "hitab.py InstructionFollow: | answers in another order",
    )
    add(
        "\\boxed{12.5}",
        finqa_truth("12.5"),
        "table__finqa",
        "collected",
        "finqa.py InstructionFollow: numeric box",
    )

    for i, (answer, good, near) in enumerate(FINQA):
        truth = finqa_truth(answer)
        src = f"FinQA-style answer {answer!r}"
        ds = "table__finqa"
        add(
            f"{reasoning(rng)}\nTherefore, the answer is \\boxed{{{good}}}.",
            truth,
            ds,
            "realistic",
            f"{src}; correct, boxed",
        )
        add(
            f"{reasoning(rng)}\nSo the result is \\boxed{{{near}}}.",
            truth,
            ds,
            "realistic",
            f"{src}; near miss",
        )
        for template in (i % 6, (i + 3) % 6):
            if template == 0:
                add(
                    f"<think>\n{reasoning(rng, 5)}\nMaybe \\boxed{{{near}}}?\n</think>\n\n"
                    f"The answer is $\\boxed{{{good}}}$.",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; </think>, wrong box in reasoning, right box after",
                )
            elif template == 1:
                add(
                    f"{reasoning(rng)}\nFirst estimate: \\boxed{{{good}}}. Rechecking the table...\n"
                    f"Final: \\boxed{{{near}}}",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; right box then a wrong last box",
                )
            elif template == 2:
                add(
                    f"**Step 1.** Find the values.\n{reasoning(rng)}\n\n"
                    f"**Answer:** $\\boxed{{\\text{{{good}}}}}$",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; answer wrapped in \\text{{}}",
                    "tabular.unwrap-text",
                    1.0,
                )
            elif template == 3:
                add(f"{good}", truth, ds, "realistic", f"{src}; bare answer without a box")
            elif template == 4:
                add(
                    f"{reasoning(rng)}\nThe answer is {good}.",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; answer in a sentence, no box",
                )
            else:
                add(
                    f"{reasoning(rng)}\n\\boxed{{{good} \\text{{ million}}}}",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; unit text inside the box",
                )

    for i, (truth, good, wrong) in enumerate(HITAB):
        src = f"HiTab-style answer {truth!r}"
        ds = "table__hitab"
        add(f"{reasoning(rng)}\nThus \\boxed{{{good}}}", truth, ds, "realistic", f"{src}; correct")
        add(f"{reasoning(rng)}\nThus \\boxed{{{wrong}}}", truth, ds, "realistic", f"{src}; wrong")
        for template in (i % 4, (i + 2) % 4):
            if template == 0:
                add(
                    f"<think>{reasoning(rng, 4)}</think>\nFinal answer: \\boxed{{{good}}}\n",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; </think> then the box",
                )
            elif template == 1:
                add(
                    f"Based on the table, {reasoning(rng, 2)}\n\nAnswer: \\boxed{{{good.upper()}}}",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; upper-cased",
                )
            elif template == 2:
                add(
                    f"{reasoning(rng)}\n\\boxed{{ {good} }}.",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; spaces inside the box",
                )
            else:
                add(
                    f"{reasoning(rng)}\n\\boxed{{\\textbf{{{good}}}}}",
                    truth,
                    ds,
                    "realistic",
                    f"{src}; \\textbf{{}} wrapper",
                    "tabular.unwrap-text",
                    1.0,
                )

    for truth, good in MULTIHIERTT:
        src = f"MultiHiertt-style answer {truth!r}"
        ds = "table__multihier"
        add(
            f"{reasoning(rng, 4)}\nThe answer is \\boxed{{{good}}}.",
            truth,
            ds,
            "realistic",
            f"{src}; correct",
        )
        add(
            f"{reasoning(rng, 4)}\nThe answer is \\boxed{{{good}0}}.",
            truth,
            ds,
            "realistic",
            f"{src}; a digit appended",
        )
        add(
            f"{reasoning(rng, 2)}\n\\[\\boxed{{{good}}}\\]\nI hope this is right.",
            truth,
            ds,
            "realistic",
            f"{src}; display math",
        )

    # Specific forms, each with its own note.
    specials = [
        ("\\boxed{\\frac{1}{2}}", "0.5", "table__hitab", "realistic", "\\frac answer", None, None),
        (
            "\\boxed{\\frac{3}{4}}",
            0.75,
            "table__finqa",
            "realistic",
            "\\frac answer",
            "tabular.frac-value",
            1.0,
        ),
        (
            "\\boxed{\\dfrac{5}{8}}",
            0.625,
            "table__finqa",
            "realistic",
            "\\dfrac answer",
            "tabular.frac-value",
            1.0,
        ),
        ("\\boxed{x = 5}", "5", "table__multihier", "realistic", "short lhs 'x =' in the box", None, None),
        ("\\boxed{0.5}", "50%", "table__hitab", "realistic", "fraction for a percent truth", None, None),
        ("\\boxed{50\\%}", "50%", "table__hitab", "realistic", "percent for a percent truth", None, None),
        ("\\boxed{1.2e3}", "1200", "table__multihier", "realistic", "scientific notation", None, None),
        (
            "\\boxed{1,234,567}",
            "1,234,567",
            "table__hitab",
            "realistic",
            "thousands on both sides",
            None,
            None,
        ),
        ("\\boxed{12.5 million}", "12.5", "table__finqa", "realistic", "unit word in the box", None, None),
        (
            "\\boxed{approximately 12.5}",
            "12.5",
            "table__hitab",
            "realistic",
            "word before the number",
            None,
            None,
        ),
        ("\\boxed{12.50}", "12.5", "table__hitab", "realistic", "trailing zero", None, None),
        ("\\boxed{yes}", "yes", "table__hitab", "realistic", "yes/no answer", None, None),
        ("\\boxed{no}", "yes", "table__hitab", "realistic", "yes/no answer, wrong", None, None),
        ("\\boxed{1,5}", 1.5, "table__finqa", "realistic", "decimal comma", None, None),
        (
            "\\boxed{-12.3\\%}",
            finqa_truth("-12.3%"),
            "table__finqa",
            "realistic",
            "negative percent",
            None,
            None,
        ),
        ("\\boxed{\\$ 1,234}", "1234", "table__multihier", "realistic", "dollar with a space", None, None),
        ("\\boxed{2 * 3.5}", "7", "table__multihier", "realistic", "arithmetic left in the box", None, None),
        ("\\boxed{1236.5}", "1234", "table__hitab", "realistic", "outside 1e-3", None, None),
        ("\\boxed{1234.9}", "1234.0", "table__hitab", "realistic", "inside 1e-3", None, None),
        ("\\boxed{0}", "0", "table__hitab", "realistic", "zero", None, None),
        ("\\boxed{0.0}", "0", "table__hitab", "realistic", "zero as 0.0", None, None),
        ("\\boxed{0.001}", "0", "table__hitab", "realistic", "near zero is not zero", None, None),
        ("\\boxed{45 | 55 | 60}", "45|55", "table__hitab", "realistic", "one answer too many", None, None),
        ("\\boxed{45, 55}", "45|55", "table__hitab", "realistic", "comma instead of |", None, None),
        ("\\boxed{45}|\\boxed{55}", "45|55", "table__hitab", "realistic", "one box per answer", None, None),
        (
            "\\boxed{$5|10}",
            "10|5",
            "table__hitab",
            "realistic",
            "multi-answer paired after a string sort",
            "tabular.multi-answer-matching",
            1.0,
        ),
        ("\\boxed{5|10}", "10|5", "table__hitab", "realistic", "multi-answer reordered", None, None),
    ]
    adversarial = [
        ("", "12.5", "table__hitab", "empty response", None, None),
        ("\\boxed{}", "0", "table__hitab", "empty box", None, None),
        (
            "\\boxed{3, 4}",
            finqa_truth("34"),
            "table__finqa",
            "two numbers read as 34",
            "tabular.strict-thousands",
            0.0,
        ),
        ("\\boxed{1,2}", "12", "table__hitab", "two numbers read as 12", "tabular.strict-thousands", 0.0),
        (
            "\\boxed{3,4}",
            finqa_truth("34"),
            "table__finqa",
            "3,4 read as 34",
            "tabular.strict-thousands",
            0.0,
        ),
        ("\\boxed{12,50}", "1250", "table__hitab", "12,50 read as 1250", "tabular.strict-thousands", 0.0),
        (
            "\\boxed{12 | 13}",
            "13",
            "table__hitab",
            "hedge: two answers to one question",
            "tabular.refuse-hedge",
            0.0,
        ),
        ("\\boxed{5|8}", "13", "table__hitab", "hedge: 5|8 is 13 bitwise", "tabular.refuse-hedge", 0.0),
        ("\\boxed{12.5 or 13}", "13", "table__hitab", "hedge with 'or'", None, None),
        ("\\boxed{12.5, 13}", "13", "table__hitab", "hedge with a comma", None, None),
        (
            "<think>\nThe value is 38.7 so \\boxed{38.7}\nLet me double check the",
            "38.7",
            "table__hitab",
            "unclosed <think> (truncated) with a box inside",
            "tabular.answer-after-think",
            0.0,
        ),
        (
            "<think>\nThe value is 38.7 so \\boxed{38.7}\n</think>\nI am not sure.",
            "38.7",
            "table__hitab",
            "box only inside the reasoning",
            None,
            None,
        ),
        (
            "You are given some text and tables. Use the information in the given context to answer the "
            "following question.\n| year | 2019 | 2020 |\n| --- | --- | --- |\n| revenue | 12.5 | 13 |\n"
            f"{INSTRUCTION_FINQA}",
            "12.5",
            "table__finqa",
            "copied prompt",
            None,
            None,
        ),
        (f"{INSTRUCTION_HITAB}", "3|4", "table__hitab", "copied instruction", None, None),
        ("\\boxed{A B C D}", "12", "table__hitab", "option letters", None, None),
        ("I cannot determine the answer from the table.", "12", "table__hitab", "refusal", None, None),
        ("12", "12", "table__hitab", "bare correct number as the whole response", None, None),
        ("The answer is 12 or 13.", "12", "table__hitab", "hedge in prose, no box", None, None),
        ("\\boxed{(12)}", "-12", "table__hitab", "accounting negative", None, None),
        ("\\boxed{(12)}", "12", "table__hitab", "parenthesised number", None, None),
        ("\\boxed{1200}", "12", "table__hitab", "truth*100 is accepted by the grader", None, None),
        ("\\boxed{0.12}", "12", "table__hitab", "truth/100 is accepted by the grader", None, None),
    ]
    for response, truth, ds, kind, what, decision, promise in specials:
        add(f"{reasoning(rng, 2)}\n{response}", truth, ds, kind, f"special: {what}", decision, promise)
    for response, truth, ds, what, decision, promise in adversarial:
        add(response, truth, ds, "adversarial", f"adversarial: {what}", decision, promise)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a Reasoning360 checkout (the repository root)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    module = load_reference(args.reference, "tablereason")
    lines = []
    for n, case in enumerate(build(), start=1):
        result = module.compute_score(case["response"], case["ground_truth"])
        reference_score = float(bool(result["score"]))
        record = {
            "id": f"{FAMILY}-{n}",
            "scorer": "tabular",
            "response": case["response"],
            "ground_truth": case["ground_truth"],
            "extra_info": case["extra_info"],
            "reference": {"repo": REPO, "commit": COMMIT, "function": FUNCTION},
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
