"""Parity cases for GURU's STEM multiple choice (GPQA-diamond, SuperGPQA) and rlpipe's ``mc`` (``guru_stem``).

Reference: LLM360/Reasoning360 at commit 13158341d2a0dfe5f3bb80e7126ff21de0d16676, function
``verl/utils/reward_score/supergpqa.py:compute_score``: the repository's router sends both
``stem__gpqa*`` (unless the name says ``no_box``) and ``stem__supergpqa*`` there. It returns
``{"score": 0|1, "acc": 0|1}``; the case's ``reference_score`` is ``score``.

When the reference extracts nothing usable (no box and no ``Final Answer:`` / ``The answer is:`` line,
or no option letter inside what it extracted) it scores a RANDOM letter. This generator detects that
path with the reference's own ``extract_solution``, seeds Python's ``random`` with the case id before
calling it (so the file is reproducible), and marks every such case with the written decision
``mc.no-random-fallback`` and the deterministic score rlpipe gives instead.

Ground truths are what the GURU rows hold: one letter (A-D for GPQA-diamond, A-J for SuperGPQA);
``extra_info`` carries the row's ``data_source``. The questions below are made up in the two prompts'
formats (GPQA: ``A) text`` lines; SuperGPQA: ``(A): text`` lines, both ending with the instruction to
box the letter).

Run (from the project root, with a Reasoning360 checkout fetched by yourself; nothing of it is copied
into the project)::

    python tests/rewards/parity/sources/guru_stem.py /path/to/Reasoning360

The reference module is imported from the checkout with stub parent packages (the repository's
``verl/__init__.py`` would pull in torch and ray). The output is deterministic. A template may promise
a written decision (``decision`` + the score rlpipe gives instead); the promise is recorded only where
the reference's score differs from it (random-fallback cases always carry theirs).
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
FAMILY = "guru_stem"
FUNCTION = "verl/utils/reward_score/supergpqa.py:compute_score"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"
LETTERS = "ABCDEFGHIJ"
INSTRUCTION = (
    "Please reason step by step, and put your final answer option within \\boxed{}. Only put the letter in "
    "the box, e.g. \\boxed{A}. There is only one correct answer."
)


def load_reference(root: Path, name: str):
    """Import ``verl.utils.reward_score.<name>`` from a checkout without running the packages' __init__."""
    for package in ("verl", "verl.utils", "verl.utils.reward_score"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root.joinpath(*package.split(".")))]
            sys.modules[package] = module
    return importlib.import_module(f"verl.utils.reward_score.{name}")


QUESTIONS = [
    ("Which particle mediates the electromagnetic force?", ["gluon", "photon", "W boson", "graviton"]),
    ("What is the hybridisation of carbon in ethyne?", ["sp3", "sp2", "sp", "dsp2"]),
    ("Which enzyme unwinds the DNA double helix?", ["ligase", "primase", "helicase", "topoisomerase"]),
    ("What is the SI unit of magnetic flux?", ["tesla", "weber", "henry", "gauss"]),
    ("Which planet has the shortest day?", ["Earth", "Mars", "Saturn", "Jupiter"]),
    ("How many unpaired electrons does Fe3+ (high spin) have?", ["3", "4", "5", "6"]),
    (
        "Which quantity is conserved in an elastic collision but not an inelastic one?",
        [
            "momentum",
            "kinetic energy",
            "mass",
            "charge",
        ],
    ),
    (
        "Which organelle is the site of oxidative phosphorylation?",
        [
            "nucleus",
            "Golgi apparatus",
            "mitochondrion",
            "ribosome",
        ],
    ),
    ("What is the ground-state term symbol of oxygen?", ["3P2", "1D2", "3P0", "1S0"]),
    ("Which reagent converts a primary alcohol to an aldehyde?", ["KMnO4", "PCC", "LiAlH4", "NaBH4"]),
    ("Which of these is a fermion?", ["photon", "Higgs boson", "electron", "gluon"]),
    (
        "What is the order of the reaction if doubling [A] quadruples the rate?",
        ["zero", "first", "second", "third"],
    ),
]
SUPER_QUESTIONS = [
    (
        "Which of the following is the main cause of the seasons on Earth?",
        [
            "distance to the Sun",
            "axial tilt",
            "solar flares",
            "ocean currents",
            "the Moon's orbit",
            "cloud cover",
            "volcanic activity",
            "magnetic field",
            "Earth's rotation speed",
            "atmospheric pressure",
        ],
    ),
    (
        "In a competitive market, the long-run equilibrium price equals",
        [
            "marginal revenue only",
            "average variable cost",
            "the minimum of average total cost",
            "marginal utility",
            "the maximum of marginal cost",
            "fixed cost",
            "total revenue",
            "average fixed cost",
            "consumer surplus",
            "the monopoly price",
        ],
    ),
    (
        "Which data structure gives O(1) average lookup by key?",
        [
            "linked list",
            "binary heap",
            "stack",
            "queue",
            "hash table",
            "sorted array",
            "B-tree",
            "trie",
            "skip list",
            "red-black tree",
        ],
    ),
    (
        "Which legal principle means 'let the decision stand'?",
        [
            "habeas corpus",
            "mens rea",
            "pro bono",
            "res judicata",
            "ultra vires",
            "amicus curiae",
            "stare decisis",
            "in camera",
            "prima facie",
            "sub judice",
        ],
    ),
]
THINKING = [
    "Let me recall the relevant facts.",
    "Option by option: the first one can be ruled out because it contradicts the definition.",
    "Hmm, wait. I need to be careful about the units here.",
    "The key principle is conservation; applying it eliminates two of the choices.",
    "Between the remaining options, only one is consistent with the data.",
    "Let me double-check by considering a limiting case.",
]


def reasoning(rng: random.Random, n: int = 3) -> str:
    return "\n".join(rng.choice(THINKING) for _ in range(n))


def gpqa_prompt(question: str, options: list[str]) -> str:
    lines = "".join(f"{LETTERS[i]}) {o}\n" for i, o in enumerate(options))
    return f"{question}\n{lines}{INSTRUCTION}"


def super_prompt(question: str, options: list[str]) -> str:
    lines = "".join(f"({LETTERS[i]}): {o}\n" for i, o in enumerate(options))
    return f"{question}\nOptions are:\n{lines}\n{INSTRUCTION}"


def build() -> list[dict]:
    rng = random.Random(2405)
    cases: list[dict] = []

    def add(response, truth, source_name, kind, source, decision=None, promise=None, rlpipe=None):
        cases.append(
            {
                "response": response,
                "ground_truth": truth,
                "extra_info": {"data_source": source_name, "split": "test"},
                "kind": kind,
                "source": source,
                "promise": (decision, promise) if decision else None,
                "rlpipe": rlpipe,  # rlpipe's deterministic score where the reference would guess
            }
        )

    # Collected: the prompts' own example and format instructions.
    add("\\boxed{A}", "A", "stem__supergpqa", "collected", "supergpqa.py prompt example e.g. \\boxed{A}")
    add("\\boxed{A}", "B", "stem__supergpqa", "collected", "supergpqa.py prompt example, other truth")
    add(
        "Answer: C", "C", "stem__gpqa_diamond", "collected", "gpqa_diamond.py simple-evals format", rlpipe=1.0
    )
    add("Final Answer: C\n", "C", "stem__gpqa_diamond", "collected", "supergpqa.py 'Final Answer:' pattern")
    add("The answer is: D\n", "D", "stem__gpqa_diamond", "collected", "supergpqa.py 'The answer is:' pattern")

    def one_question(
        q_index: int, question: str, options: list[str], truth: str, data_source: str, fmt
    ) -> None:
        n = len(options)
        t = LETTERS.index(truth)
        wrong = LETTERS[(t + 1) % n]
        text = options[t]
        src = f"{data_source} made-up question {q_index}"
        prompt = fmt(question, options)
        think = reasoning(rng, 4)
        t_all = q_index % 8
        add(
            f"{think}\nThe correct choice is {text}, which is option {truth}.\n\nTherefore, the answer is "
            f"\\boxed{{{truth}}}.",
            truth,
            data_source,
            "realistic",
            f"{src}; boxed letter",
        )
        add(
            f"{think}\nSo the answer is \\boxed{{{wrong}}}.",
            truth,
            data_source,
            "realistic",
            f"{src}; wrong letter",
        )
        variants = [
            (
                f"<think>\n{reasoning(rng, 6)}\n</think>\n\n**Final answer:** $\\boxed{{{truth}}}$",
                None,
                None,
                None,
            ),
            (f"{think}\nAnswer: \\boxed{{({truth})}}", None, None, None),
            (f"{think}\n\\boxed{{\\text{{{truth}}}}}", None, None, None),
            (f"{think}\n\\boxed{{{truth}. {text}}}", None, None, None),
            (
                f"{think}\nFirst guess \\boxed{{{wrong}}}, but rechecking... \\boxed{{{truth}}}",
                None,
                None,
                None,
            ),
            (f"{think}\nI first thought \\boxed{{{truth}}}, but no: \\boxed{{{wrong}}}", None, None, None),
            (f"{think}\nFinal Answer: {truth}\n", None, None, None),
            (f"{think}\n\\boxed{{{truth}}}<|im_end|>", None, None, None),
        ]
        for v in (t_all, (t_all + 4) % len(variants)):
            response, decision, promise, rl = variants[v]
            add(response, truth, data_source, "realistic", f"{src}; variant {v}", decision, promise, rl)
        phrasing = [
            f"My choice is {truth}.",
            f"I think {truth} is correct.",
            f"Option {truth} is the best choice.",
            f"I'll go with {truth}.",
            f"The correct option is ({truth}).",
            f"**Answer: {truth}**",
            f"Thus, the answer is {truth}.",
            f"({truth}) is the right answer.",
        ]
        for k in (q_index, q_index + 5):
            add(
                f"{reasoning(rng, 3)}\n{phrasing[k % len(phrasing)]}",
                truth,
                data_source,
                "realistic",
                f"{src}; ordinary phrasing without a box",
                rlpipe=1.0,
            )
        add(
            f"{think}\n{phrasing[(q_index + 3) % len(phrasing)].replace(truth, wrong)}",
            truth,
            data_source,
            "realistic",
            f"{src}; ordinary phrasing, wrong letter",
            rlpipe=0.0,
        )
        adversarial = [
            ("", "empty response", None, None, 0.0),
            (prompt, "copied prompt (its example box is \\boxed{A})", "mc.refuse-copied-prompt", 0.0, 0.0),
            (
                f"{think}\n\\boxed{{{' '.join(LETTERS[:n])}}}",
                "every option in the box",
                "mc.refuse-hedge",
                0.0,
                None,
            ),
            (
                f"{think}\n\\boxed{{{min(truth, wrong)} or {max(truth, wrong)}}}",
                "two letters in the box",
                "mc.refuse-hedge",
                0.0,
                None,
            ),
            (
                f"<think>\n{think}\nSo \\boxed{{{truth}}}.\n</think>\nI am not sure about this one.",
                "box only inside the reasoning",
                "mc.answer-after-think",
                0.0,
                None,
            ),
            (
                f"<think>\n{think}\nSo \\boxed{{{truth}}}.\nLet me verify",
                "unclosed <think> (truncated) with a box",
                "mc.answer-after-think",
                0.0,
                None,
            ),
            (f"{think}\nAnswer: {wrong} or {truth}", "hedge in prose", None, None, 0.0),
            (f"{think}\nIt could be {truth} or {wrong}; hard to say.", "undecided, no box", None, None, 0.0),
        ]
        for k in (q_index, q_index + 3):
            response, what, decision, promise, rl = adversarial[k % len(adversarial)]
            add(response, truth, data_source, "adversarial", f"{src}; {what}", decision, promise, rl)

    truths = "CABDBCDAACBD"
    for i, (question, options) in enumerate(QUESTIONS):
        one_question(i, question, options, truths[i], "stem__gpqa_diamond", gpqa_prompt)
    super_truths = ["B", "C", "E", "G", "A", "J", "D", "F"]
    for i, (question, options) in enumerate(SUPER_QUESTIONS * 2):
        one_question(i + len(QUESTIONS), question, options, super_truths[i], "stem__supergpqa", super_prompt)

    # Every adversarial kind on every GPQA question's truth letter A (the copied prompt pays there).
    for i, (question, options) in enumerate(QUESTIONS[:8]):
        prompt = gpqa_prompt(question, options)
        add(
            prompt,
            "A",
            "stem__gpqa_diamond",
            "adversarial",
            f"stem__gpqa_diamond made-up question {i}; copied prompt, truth A",
            "mc.refuse-copied-prompt",
            0.0,
        )
    # Reference quirks: letters inside words, option text with capital letters, boxes in reasoning.
    specials = [
        ("\\boxed{Carbon}", "C", "a word in the box", "mc.leading-letter", 0.0, None),
        (
            "\\boxed{D. Electron Affinity}",
            "D",
            "option text with an earlier capital letter",
            "mc.leading-letter",
            1.0,
            None,
        ),
        ("\\boxed{B) Both A and C}", "B", "option text naming other letters", "mc.leading-letter", 1.0, None),
        (
            "Final Answer: Based on the data, C\n",
            "C",
            "a word before the letter",
            "mc.leading-letter",
            0.0,
            None,
        ),
        ("Final Answer: The correct option is C\n", "C", "sentence after Final Answer", None, None, None),
        ("\\boxed{\\textbf{(C)}}", "C", "bold letter in parentheses", None, None, None),
        ("$\\boxed{C}$.", "C", "box in math mode", None, None, None),
        ("\\boxed{Option C}", "C", "'Option C' in the box", None, None, None),
        ("\\boxed{c}", "C", "lower-case letter", None, None, 1.0),
        ("\\boxed{E}", "E", "SuperGPQA letter E", None, None, None),
        ("\\boxed{J}", "J", "SuperGPQA letter J", None, None, None),
        ("\\boxed{K}", "J", "letter outside A-J", None, None, 0.0),
        ("\\boxed{A, C}", "A", "two letters, comma", "mc.refuse-hedge", 0.0, None),
        ("\\boxed{A/B}", "A", "two letters, slash", "mc.refuse-hedge", 0.0, None),
        ("\\boxed{A B C D E F G H I J}", "A", "every SuperGPQA option", "mc.refuse-hedge", 0.0, None),
        (
            "<think>\nIt is \\boxed{B}.\n</think>\nOn reflection, the answer is C.",
            "C",
            "box in reasoning, phrase after </think>",
            "mc.answer-after-think",
            1.0,
            None,
        ),
        ("I choose D because the others violate parity.", "D", "'I choose D'", None, None, 1.0),
        ("Answer: A\n\nB is incorrect because...", "A", "answer then a discussion of B", None, None, 1.0),
        ("The answer is (B), not (C).", "B", "answer with a contrast", None, None, 1.0),
        (
            "A reasonable approach is to compute the energy. The answer is C.",
            "C",
            "article 'A'",
            None,
            None,
            1.0,
        ),
        ("Final Answer: \\boxed{C}\n", "C", "Final Answer with a box", None, None, None),
        ("\\boxed{C}</s>garbage \\boxed{D}", "C", "text after a stop word", None, None, None),
    ]
    for response, truth, what, decision, promise, rl in specials:
        add(response, truth, "stem__supergpqa", "adversarial", f"special: {what}", decision, promise, rl)
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="a Reasoning360 checkout (the repository root)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    module = load_reference(args.reference, "supergpqa")
    lines = []
    for n, case in enumerate(build(), start=1):
        case_id = f"{FAMILY}-{n}"
        extracted = module.extract_solution(case["response"])
        guesses = extracted is None or not any(letter in extracted for letter in LETTERS)
        random.seed(case_id)
        reference_score = float(module.compute_score(case["response"], case["ground_truth"])["score"])
        record = {
            "id": case_id,
            "scorer": "mc",
            "response": case["response"],
            "ground_truth": case["ground_truth"],
            "extra_info": case["extra_info"],
            "reference": {"repo": REPO, "commit": COMMIT, "function": FUNCTION},
            "reference_score": reference_score,
            "kind": case["kind"],
            "source": case["source"],
            "decision": None,
        }
        if guesses:
            if case["rlpipe"] is None:
                raise SystemExit(
                    f"{case_id}: the reference guesses here; the template must state rlpipe's score"
                )
            record["source"] += " (reference guesses a random letter; seeded with the case id)"
            record["decision"], record["rlpipe_score"] = "mc.no-random-fallback", case["rlpipe"]
        elif case["promise"] and abs(case["promise"][1] - reference_score) > 1e-9:
            record["decision"], record["rlpipe_score"] = case["promise"]
        lines.append(json.dumps(record, ensure_ascii=False))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
