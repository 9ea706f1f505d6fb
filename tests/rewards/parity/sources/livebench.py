"""Parity cases for the ``livebench`` scorer, labelled by LiveBench's own per-task scorers.

Reference: https://github.com/LiveBench/LiveBench at commit b0fb577be60ea5ba6e3e677a84af127c893af0ef,
``livebench/process_results/`` (reasoning: web_of_lies_v2, web_of_lies_v3, zebra_puzzle, spatial; writing
(LiveBench's "language" category): connections, plot_unscrambling, typos; data_analysis: cta, tablejoin,
tablereformat), called the way ``livebench/gen_ground_truth_judgment.py:play_a_match_gt`` calls them:
``<think>...</think>`` blocks removed from the answer first, ``zebra_puzzle`` and ``connections`` scored by
the old (bold-text) evaluator for questions released before 2024-11-25 and by the ``<solution>``-tag
evaluator from then on, ``tablereformat`` read as "v1" before 2025-04-25 and "v2" after, any exception
scored 0. The release date is ``extra_info["date"]``; the question text ``extra_info["prompt"]`` (a list of
turns, as the GURU data keeps it).

The GURU suite's router (https://github.com/LLM360/Reasoning360 at commit
13158341d2a0dfe5f3bb80e7126ff21de0d16676, ``verl/utils/reward_score/livebench/__init__.py:compute_score``)
runs copies of the same functions on the June-July 2024 questions and always picks the old zebra and
connections evaluators (which is what the date rule picks for those questions). Where it differs from
LiveBench it is a defect, and LiveBench's behaviour is the label: it never strips ``<think>`` blocks, and it
routes the task name ``tableformat`` (a typo), so every ``tablereformat`` question scores 0 there. Pass
``--reasoning360 <checkout>`` to also run that router and print the cases on which the two differ.

Score mapping: LiveBench's scores are already in [0, 1] (1/0 or partial credit), except that the new
``connections`` evaluator counts a repeated correct group once per repeat and can exceed 1: the score is
clipped to [0, 1], as GURU's mean over items would cap a single item's credit.

Run (from the rlpipe checkout, in an environment with pandas, numpy and lxml for ``pandas.read_html``):

    python tests/rewards/parity/sources/livebench.py /path/to/LiveBench [--reasoning360 /path/to/Reasoning360]

It writes ``tests/rewards/parity/cases/livebench.jsonl`` (decisions carried over from the cases below).
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

FAMILY = "livebench"
REPO = "LiveBench/LiveBench"
COMMIT = "b0fb577be60ea5ba6e3e677a84af127c893af0ef"
OUT = Path(__file__).resolve().parents[1] / "cases" / f"{FAMILY}.jsonl"
OLD = "2024-06-24"  # the GURU suite's LiveBench questions: releases 2024-06-24 and 2024-07-26
SPATIAL_DATE = "2024-07-26"
NEW = "2024-11-25"
V2_DATE = "2025-04-25"

FUNCTIONS = {
    "web_of_lies_v2": "reasoning/web_of_lies_v2/utils.py:web_of_lies_process_results",
    "web_of_lies_v3": "reasoning/web_of_lies_v3/utils.py:web_of_lies_v3_process_results",
    "zebra_puzzle_old": "reasoning/zebra_puzzle/utils.py:zebra_puzzle_process_results_old",
    "zebra_puzzle": "reasoning/zebra_puzzle/utils.py:zebra_puzzle_process_results",
    "spatial": "reasoning/spatial/utils.py:spatial_process_results",
    "connections_old": "writing/connections/utils.py:connections_process_results_old",
    "connections": "writing/connections/utils.py:connections_process_results",
    "typos": "writing/typos/utils.py:typos_process_results",
    "plot_unscrambling": "writing/plot_unscrambling/utils.py:plot_unscrambling_process_results",
    "cta": "data_analysis/cta/utils.py:cta_process_results",
    "tablejoin": "data_analysis/tablejoin/utils.py:joinmap_process_results",
    "tablereformat": "data_analysis/tablereformat/utils.py:table_process_results",
}
CATEGORY = {
    "web_of_lies_v2": "reasoning",
    "web_of_lies_v3": "reasoning",
    "zebra_puzzle": "reasoning",
    "spatial": "reasoning",
    "connections": "language",
    "typos": "language",
    "plot_unscrambling": "language",
    "cta": "data_analysis",
    "tablejoin": "data_analysis",
    "tablereformat": "data_analysis",
}

# --------------------------------------------------------------------------------------------------
# prompts (shortened, in the shape of the LiveBench questions)

WOL_PROMPT = (
    "In this question, assume each person either always tells the truth or always lies. The person at "
    "the city hall says the person at the amusement park lies. The person at the botanical garden says "
    "the person at the city hall tells the truth. The person at the amusement park tells the truth. Does "
    "the person at the botanical garden tell the truth? Does the person at the city hall tell the truth? "
    "Does the person at the amusement park tell the truth? Think step by step, and then put your answer "
    "in **bold** as a list of three words, yes or no (for example, **yes, no, yes**). If you don't know, "
    "guess."
)
WOL3_PROMPT = WOL_PROMPT.replace(
    "put your answer in **bold** as a list of three words, yes or no (for example, **yes, no, yes**)",
    "put your answer in <solution></solution> tags as a list of three words, yes or no "
    "(for example, <solution>yes, no, yes</solution>)",
)
ZEBRA_OLD_PROMPT = (
    "There are 3 people standing in a line numbered 1 through 3 in a left to right order. Each person has "
    "a set of attributes: Food, Pet, Sport. The person who likes kiwi is somewhere to the left of the "
    "person who plays golf. The person who has a fish does not eat kiwi. ... At what position is the "
    "person who has a fish? Return your answer as a single word, in the following format: ***X***, where "
    "X is the answer."
)
ZEBRA_NEW_PROMPT = (
    "There are 4 people standing in a line numbered 1 through 4 in a left to right order. ... Answer the "
    "following questions: 1. At what position is the person who likes kiwi? 2. What color does the person "
    "at the first position like? 3. What pet does the person who plays golf have? 4. At what position is "
    "the person who has a fish? Think step by step and explain your reasoning, then output your answers "
    "in order in the format: <solution>answer1, answer2, answer3, ...</solution>."
)
SPATIAL_PROMPT = (
    "Suppose I have a physical, solid, regular pentagon with vertices ABCDE, and I make two cuts through "
    "AC and BD. Of the resulting pieces, how many triangles are there? Think step by step, and then put "
    "your answer in **bold** as a single integer (for example, **0**). If you don't know, guess."
)
SPATIAL_SHAPE_PROMPT = (
    "Suppose I have a physical, solid square pyramid with base ABCD and apex E. If I make a cut through "
    "the plane defined by points ACE, what are the resulting shapes? Think step by step, and then put "
    "your answer in **bold** as a single word, for example **sphere**."
)
CONN_WORDS_16 = [
    "bream",
    "carp",
    "perch",
    "tench",
    "ruby",
    "python",
    "swift",
    "rust",
    "mercury",
    "venus",
    "mars",
    "saturn",
    "bass",
    "drum",
    "piano",
    "organ",
]
CONN_GT_16 = ", ".join(CONN_WORDS_16)
CONN_WORDS_12 = [
    "ace",
    "king",
    "queen",
    "jack",
    "rook",
    "pawn",
    "bishop",
    "knight",
    "red",
    "blue",
    "green",
    "pink",
]
CONN_GT_12 = ", ".join(CONN_WORDS_12)
CONN_OLD_PROMPT = (
    "You are given 16 words/phrases below. Find four groups of four items that share something in common. "
    "Here are a few examples of groups: bass, flounder, salmon, trout (all four are fish); ant, drill, "
    "island, opal (all four are two-word phrases that start with 'fire'). Categories will be more specific "
    "than e.g., '5-letter-words', 'names', or 'verbs'. There is exactly one solution. Think step-by-step, "
    "and then give your answer in **bold** as a list of the 16 items separated by commas, ordered by group "
    "(for example, **bass, founder, salmon, trout, ant, drill, island, opal, ...**). If you don't know the "
    "answer, make your best guess. The items are: organ, rust, bream, mars, drum, ruby, venus, perch, "
    "swift, bass, carp, saturn, python, piano, mercury, tench."
)
CONN_NEW_PROMPT = CONN_OLD_PROMPT.replace(
    "give your answer in **bold** as a list of the 16 items separated by commas, ordered by group (for "
    "example, **bass, founder, salmon, trout, ant, drill, island, opal, ...**)",
    "give your answer in <solution></solution> tags as a list of the 16 items separated by commas, "
    "ordered by group (for example, <solution>bass, founder, salmon, trout, ant, drill, island, opal, "
    "...</solution>)",
)
TYPO_GT = (
    "We study the problem of learning a sparse linear model from noisy observations. Our main result is "
    "an efficient algorithm whose sample complexity matches the known lower bound up to logarithmic factors."
)
TYPO_INPUT = (
    "We studdy the problem of learning a sparse linear modle from noisy observations. Our main result is "
    "an efficent algorithm whose sample complexity matches the known lower bound up to logaritmic factors."
)
TYPOS_PROMPT = (
    "Please output this exact text, with no changes at all except for fixing the misspellings. Please "
    "leave all other stylistic decisions like commas and US vs British spellings as in the original "
    f"text.\n\n{TYPO_INPUT}"
)
PLOT_SENTENCES = [
    "Anna, a young botanist, arrives at a remote research station in the Arctic",
    "She discovers that the previous team vanished without a trace",
    "A storm cuts the station off from the mainland for three weeks",
    "Anna finds a journal describing a plant that blooms only in darkness",
    "The radio operator, Ben, begins to act strangely after touching the flower",
    "Anna burns the greenhouse and escapes with Ben on the first supply plane",
]
PLOT_GT = ". ".join(PLOT_SENTENCES) + "."
PLOT_SCRAMBLED = [PLOT_SENTENCES[i] for i in (2, 0, 4, 1, 5, 3)]
PLOT_PROMPT = (
    "The following plot summary of a movie has had the sentences randomly reordered. Rewrite the plot "
    "summary with the sentences correctly ordered. Begin the plot summary with <PLOT_SUMMARY>.\n\nThe "
    "sentences are:\n\n" + "\n".join(s + "." for s in PLOT_SCRAMBLED)
)
CTA_CLASSES = ["inspection_date", "permit_number", "latitude", "address", "status", "job_type"]
CTA_PROMPT = (
    "Pick the column's class based on the provided column sample. Choose exactly one of the listed "
    "classes. Please respond only with the name of the class. \n Column sample: [['2023-05-12T00:00:00'], "
    "['2023-06-01T00:00:00'], ['2022-11-30T00:00:00'], ['2023-01-09T00:00:00'], ['2023-03-21T00:00:00']] "
    "\n Classes: ['" + "' '".join(CTA_CLASSES) + "'] \n Output: \n"
)
TJ_PROMPT = (
    "Please create a valid join mapping between CSV Table A and CSV Table B. Each column in A maps to 0 or "
    "1 columns in B. Return your response as a Python dictionary, formatted as {col_name_in_df_a : "
    "col_name_in_df_b}. Please return only the dictionary. \n\n CSV Table A: id,name,zip,date_opened\n"
    "1,Blue Cafe,10001,2020-01-02\n\n CSV Table B: k9Xb,QpLm,zzT1\n10001,Blue Cafe,5.0 out of 5 stars\n"
    "\n Output: \n"
)
TJ_GT = "{'name': 'QpLm', 'zip': 'k9Xb'}"
TJ_GT3 = "{'name': 'QpLm', 'zip': 'k9Xb', 'date_opened': 'zzT1'}"


def tr_prompt(src: str, dst: str, table: str) -> str:
    return (
        f"Please convert the Input Table from {src} format to {dst} format. Please respond only with the "
        f"table. \n Input Table: {table}\n Output: \n"
    )


def tr_prompt_v2(src: str, dst: str, table: str) -> str:
    return (
        "Please convert the Input Table from one format to another.\nSource Format: "
        f"{src}\nTarget Format: {dst}\n\nInput Table:\n{table}\n\nPlease respond only with the table."
    )


ROWS = [("Ann", 30, "Oslo"), ("Bob", 4.5, "Lima"), ("Cai", 12, "Pune")]
TSV = "name\tage\tcity\n" + "\n".join(f"{n}\t{a}\t{c}" for n, a, c in ROWS)
CSV = "name,age,city\n" + "\n".join(f"{n},{a},{c}" for n, a, c in ROWS)
JSONL = "\n".join(json.dumps({"name": n, "age": a, "city": c}) for n, a, c in ROWS)
JSON_INDEX = json.dumps({str(i): {"name": n, "age": a, "city": c} for i, (n, a, c) in enumerate(ROWS)})
JSON_RECORDS = json.dumps([{"name": n, "age": a, "city": c} for n, a, c in ROWS])
HTML = (
    '<table border="1" class="dataframe">\n  <thead>\n    <tr style="text-align: right;">\n'
    "      <th>name</th>\n      <th>age</th>\n      <th>city</th>\n    </tr>\n  </thead>\n  <tbody>\n"
    + "".join(
        f"    <tr>\n      <td>{n}</td>\n      <td>{a}</td>\n      <td>{c}</td>\n    </tr>\n"
        for n, a, c in ROWS
    )
    + "  </tbody>\n</table>"
)
MARKDOWN = "| name | age | city |\n|:-----|----:|:-----|\n" + "\n".join(
    f"| {n} | {a} | {c} |" for n, a, c in ROWS
)

REASONING = (
    "Let me work through this carefully. First I list what each statement implies, then I check the "
    "consistency of every assumption, and finally I compare the remaining possibilities.\n\n"
)


def think(body: str) -> str:
    return f"<think>\n{REASONING}{body}\n</think>\n\n"


def hedge(wrong: str, right: str) -> str:
    """A wrong and the right answer offered together in every answer slot (the shape of rlpipe's
    pre-flight "hedge" response)."""
    both = f"{wrong} or {right}"
    return (
        f"I am not sure: it is either {both}.\n<answer>{both}</answer>\nAnswer: {both}\n"
        f"\\boxed{{{wrong}, {right}}}\n{both}"
    )


# --------------------------------------------------------------------------------------------------
# the cases: (task, response, ground_truth, date, prompt, kind, source[, decision, rlpipe_score])


def _cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(task, response, truth, date, prompt, kind, source, decision=None, rlpipe=None):
        out.append(
            {
                "task": task,
                "response": response,
                "ground_truth": truth,
                "date": date,
                "prompt": prompt,
                "kind": kind,
                "source": source,
                "decision": decision,
                "rlpipe_score": rlpipe,
            }
        )

    # ---- web_of_lies_v2 (bold list of three words; <solution>, \boxed{} and plain fallbacks)
    t, p, d = "web_of_lies_v2", WOL_PROMPT, OLD
    gt = "no, yes, no"
    add(
        t, "**yes, no, yes**", "yes, no, yes", d, p, "collected", "web_of_lies_v2 prompt's own example answer"
    )
    add(
        t,
        REASONING + "So the botanical garden lies, city hall is truthful, the park lies.\n\n**no, yes, no**",
        gt,
        d,
        p,
        "realistic",
        "reasoning then bold list",
    )
    add(
        t,
        REASONING + "Therefore:\n\n**yes, yes, no**",
        gt,
        d,
        p,
        "realistic",
        "reasoning then wrong bold list",
    )
    add(
        t,
        think("City hall tells the truth.")
        + "Botanical garden: **No**\nCity hall: **Yes**\nAmusement park: **No**",
        gt,
        d,
        p,
        "realistic",
        "one bold word per person",
    )
    add(t, think("ok") + "**Answer: no, yes, no**", gt, d, p, "realistic", "bold label and list")
    add(
        t,
        REASONING + "If the park tells the truth then **city hall lies**... contradiction. "
        "Final answer: **No, Yes, No.**",
        gt,
        d,
        p,
        "realistic",
        "capitalised bold list, trailing period",
    )
    add(t, REASONING + "Final answer: no, yes, no", gt, d, p, "realistic", "plain list, no bold")
    add(t, REASONING + "The answer is $\\boxed{no, yes, no}$.", gt, d, p, "realistic", "boxed list")
    add(t, REASONING + "$$\\boxed{\\text{no, yes, no}}$$", gt, d, p, "realistic", "boxed text list")
    add(t, REASONING + "<solution>no, yes, no</solution>", gt, d, p, "realistic", "solution tags")
    add(
        t,
        REASONING + "<solution>No, Yes, No</solution>",
        gt,
        d,
        p,
        "adversarial",
        "capitalised solution tags",
    )
    add(
        t,
        think("maybe **yes, no, yes**") + "**no, yes, no**",
        gt,
        d,
        p,
        "realistic",
        "draft in think, final bold",
    )
    add(
        t,
        REASONING + "At first I thought **yes, no, yes**, but re-checking gives **no, yes, no**.",
        gt,
        d,
        p,
        "realistic",
        "corrected answer, last bold wins",
    )
    add(t, REASONING + "**no, yes**", gt, d, p, "adversarial", "two of three answers")
    add(t, REASONING + "**no, yes, no, yes**", gt, d, p, "adversarial", "four answers, last three graded")
    add(t, "", gt, d, p, "adversarial", "empty response")
    add(t, "I don't know.", gt, d, p, "adversarial", "refusal")
    add(
        t,
        "**yes or no**, **no**, **yes or no**",
        gt,
        d,
        p,
        "adversarial",
        "hedged bold words",
        "livebench.refuse-hedge",
        0.0,
    )
    add(
        t,
        p,
        "yes, no, yes",
        d,
        p,
        "adversarial",
        "copied prompt (its example equals the truth)",
        "livebench.refuse-copied-prompt",
        0.0,
    )
    add(
        t,
        "<think>\n" + REASONING + "So the answer is **no, yes, no**",
        gt,
        d,
        p,
        "adversarial",
        "answer only inside unclosed <think>",
        "livebench.unclosed-think",
        0.0,
    )
    add(
        t,
        REASONING + "So the answers are: yes, no, yes for the first reading; on reflection no, yes, no.",
        gt,
        d,
        p,
        "adversarial",
        "two plain lists",
    )
    add(t, REASONING + "**no**, **yes**, **no**", gt, d, p, "realistic", "three bold words")
    add(t, REASONING + "**Final answer:** no, yes, no", gt, d, p, "realistic", "bold label then plain list")

    # ---- web_of_lies_v3 (<solution> tags, partial credit)
    t, p, d = "web_of_lies_v3", WOL3_PROMPT, NEW
    gt = "yes, no, yes"
    add(t, "<solution>yes, no, yes</solution>", gt, d, p, "collected", "web_of_lies_v3 prompt's own example")
    add(t, think("step") + "<solution>yes, no, yes</solution>", gt, d, p, "realistic", "think then solution")
    add(t, REASONING + "<solution>yes, no, no</solution>", gt, d, p, "realistic", "two of three right")
    add(t, REASONING + "<solution>no, yes, no</solution>", gt, d, p, "realistic", "all wrong")
    add(t, REASONING + "<solution>yes,no,yes</solution>", gt, d, p, "adversarial", "no spaces after commas")
    add(t, REASONING + "<solution>Yes, No, Yes</solution>", gt, d, p, "adversarial", "capitalised")
    add(t, REASONING + "<solution>yes, no</solution>", gt, d, p, "adversarial", "two answers only")
    add(t, REASONING + "\\boxed{yes, no, yes}", gt, d, p, "realistic", "boxed")
    add(t, REASONING + "\\boxed{\\text{yes, no, yes}}", gt, d, p, "realistic", "boxed text")
    add(t, REASONING + "So: yes, no, yes", gt, d, p, "realistic", "plain list")
    add(t, REASONING + "**yes, no, yes**", gt, d, p, "realistic", "bold list (found by the plain search)")
    add(
        t,
        REASONING + "<solution>\nyes, no, yes\n</solution>",
        gt,
        d,
        p,
        "realistic",
        "multi-line solution tag",
    )
    add(t, "", gt, d, p, "adversarial", "empty response")
    add(
        t,
        REASONING + "<solution>yes, no, yes</solution> or maybe <solution>no, no, no</solution>",
        gt,
        d,
        p,
        "adversarial",
        "two solution blocks, last graded",
    )
    add(
        t,
        p,
        gt,
        d,
        p,
        "adversarial",
        "copied prompt (its example equals the truth)",
        "livebench.refuse-copied-prompt",
        0.0,
    )
    add(
        t,
        REASONING + "<solution>yes, no, unknown</solution>",
        "yes, no, unknown",
        d,
        p,
        "realistic",
        "unknown answer",
    )

    # ---- zebra_puzzle, before 2024-11-25 (***X*** single answer)
    t, p, d = "zebra_puzzle", ZEBRA_OLD_PROMPT, OLD
    add(
        t,
        REASONING + "The fish owner is at position 3.\n\n***3***",
        "3",
        d,
        p,
        "realistic",
        "bold-italic answer",
    )
    add(t, REASONING + "***three***", "3", d, p, "adversarial", "number word for a digit truth")
    add(t, REASONING + "***3***", "three", d, p, "adversarial", "digit for a number-word truth")
    add(
        t,
        REASONING + "***horror***",
        "horror movies",
        d,
        p,
        "collected",
        "zebra_puzzle_process_results_old ' movies' suffix rule",
    )
    add(t, REASONING + "***2***", "3", d, p, "realistic", "wrong answer")
    add(t, REASONING + "So the answer is 3", "3", d, p, "realistic", "plain last word")
    add(
        t,
        REASONING + "So the answer is 3.\n\nLet me know if you need more detail.",
        "3",
        d,
        p,
        "adversarial",
        "plain answer followed by chat",
    )
    add(t, REASONING + "**3**", "3", d, p, "realistic", "double-star bold, last word")
    add(t, REASONING + "***Kiwi***", "kiwi", d, p, "realistic", "capitalised answer")
    add(t, think("position 2? no") + "***3***", "3", d, p, "realistic", "think then answer")
    add(
        t,
        REASONING + "***2*** or ***3***",
        "3",
        d,
        p,
        "adversarial",
        "two bold answers on the final line",
        "livebench.refuse-hedge",
        0.0,
    )
    add(t, "", "3", d, p, "adversarial", "empty response")
    add(
        t,
        p,
        "x",
        d,
        p,
        "adversarial",
        "copied prompt (its example equals the truth)",
        "livebench.refuse-copied-prompt",
        0.0,
    )
    add(
        t,
        REASONING + "***fish***\n\nThe person at position ***3*** has the fish.",
        "3",
        d,
        p,
        "realistic",
        "restated answer",
    )
    add(t, REASONING + "***3 ***", "3", d, p, "adversarial", "space inside the markers")
    add(
        t,
        "<think>\n" + REASONING + "***3***",
        "3",
        d,
        p,
        "adversarial",
        "answer only inside unclosed <think>",
        "livebench.unclosed-think",
        0.0,
    )

    # ---- zebra_puzzle, from 2024-11-25 (<solution>a, b, c</solution>, partial credit)
    t, p, d = "zebra_puzzle", ZEBRA_NEW_PROMPT, NEW
    gt = "2, blue, fish, 4"
    add(t, REASONING + "<solution>2, blue, fish, 4</solution>", gt, d, p, "realistic", "solution tags")
    add(t, REASONING + "<solution>2, blue, cat, 4</solution>", gt, d, p, "realistic", "three of four right")
    add(t, REASONING + "<solution>2, Blue, Fish, 4</solution>", gt, d, p, "realistic", "capitalised")
    add(
        t,
        REASONING + "<solution>position 2, blue, fish, position 4</solution>",
        gt,
        d,
        p,
        "realistic",
        "'position' words",
    )
    add(
        t,
        REASONING + "<solution>2, light blue, fish, 4</solution>",
        gt,
        d,
        p,
        "adversarial",
        "truth inside a longer item",
    )
    add(
        t,
        REASONING + "<solution>2, blue, cat or fish, 4</solution>",
        gt,
        d,
        p,
        "adversarial",
        "hedged item",
        "livebench.refuse-hedge",
        0.375,
    )
    add(
        t,
        REASONING + "<solution>12, blue, fish, 14</solution>",
        gt,
        d,
        p,
        "adversarial",
        "digit inside a larger number",
        "livebench.zebra-whole-word",
        0.25,
    )
    add(t, REASONING + "\\boxed{2, blue, fish, 4}", gt, d, p, "realistic", "boxed")
    add(t, REASONING + "Final answers:\n2, blue, fish, 4", gt, d, p, "realistic", "plain last line")
    add(
        t,
        REASONING + "<solution>2, blue</solution> and <solution>fish, 4</solution>",
        gt,
        d,
        p,
        "adversarial",
        "answers split over two blocks",
    )
    add(
        t,
        REASONING + "<solution>\n2, blue, fish, 4\n</solution>",
        gt,
        d,
        p,
        "adversarial",
        "multi-line block",
        "livebench.multiline-solution",
        1.0,
    )
    add(t, "", gt, d, p, "adversarial", "empty response")
    add(t, REASONING + "<solution>2, blue, fish</solution>", gt, d, p, "adversarial", "one answer missing")
    add(t, REASONING + "<solution>2, red, dog, 1</solution>", gt, d, p, "realistic", "one of four right")
    add(
        t,
        REASONING + "<solution>2, blue-green, fish, 4</solution>",
        "2, blue green, fish, 4",
        d,
        p,
        "adversarial",
        "hyphen versus space",
    )

    # ---- spatial (bold answer among the last three bold spans; \boxed{} fallback)
    t, p, d = "spatial", SPATIAL_PROMPT, SPATIAL_DATE
    add(t, "**0**", "0", d, p, "collected", "spatial prompt's own example answer")
    add(
        t,
        REASONING + "The cuts meet inside the pentagon, giving **3** triangles.",
        "3",
        d,
        p,
        "realistic",
        "bold integer",
    )
    add(t, REASONING + "So there are **three** triangles.", "3", d, p, "realistic", "number word")
    add(
        t,
        REASONING + "**Answer:** **3**\n\n**Explanation**",
        "3",
        d,
        p,
        "realistic",
        "answer among last bold",
    )
    add(t, REASONING + "**4**", "3", d, p, "realistic", "wrong integer")
    add(t, "3", "3", d, p, "realistic", "bare answer equal to the truth")
    add(t, REASONING + "The answer is $\\boxed{3}$", "3", d, p, "realistic", "boxed integer")
    add(t, REASONING + "$\\boxed{\\textbf{3}}$", "3", d, p, "realistic", "boxed bold integer")
    add(
        t,
        REASONING + "**2** or **3** or **4**",
        "3",
        d,
        p,
        "adversarial",
        "three bold candidates",
        "livebench.refuse-hedge",
        0.0,
    )
    add(
        t,
        REASONING + "It could be **2**, **3**",
        "2",
        d,
        p,
        "adversarial",
        "two bold candidates",
        "livebench.refuse-hedge",
        0.0,
    )
    add(t, "", "3", d, p, "adversarial", "empty response")
    add(
        t,
        "<think>\n" + REASONING + "**3**",
        "3",
        d,
        p,
        "adversarial",
        "answer only inside unclosed <think>",
        "livebench.unclosed-think",
        0.0,
    )
    add(t, REASONING + "**Final answer: 3**", "3", d, p, "adversarial", "label inside the bold span")
    q = SPATIAL_SHAPE_PROMPT
    add(
        t,
        REASONING + "The cut produces **two tetrahedra**.",
        "tetrahedra",
        d,
        q,
        "collected",
        "spatial_process_results comment: 'two tetrahedra' == 'tetrahedra'",
    )
    add(
        t,
        REASONING + "Each face is an **equilateral triangle**",
        "triangle",
        d,
        q,
        "collected",
        "spatial_process_results comment: 'equilateral triangle' == 'triangle'",
    )
    add(
        t,
        REASONING + "**circle square triangle**",
        "triangle",
        d,
        q,
        "collected",
        "spatial_process_results comment: 'circle square triangle' != 'triangle'",
    )
    add(t, REASONING + "**Triangle**", "triangle", d, q, "realistic", "capitalised shape")
    add(t, REASONING + "**sphere**", "triangle", d, q, "realistic", "wrong shape")
    add(t, REASONING + "\\boxed{\\text{triangle}}", "triangle", d, q, "realistic", "boxed text shape")
    add(
        t,
        q,
        "sphere",
        d,
        q,
        "adversarial",
        "copied prompt (its example equals the truth)",
        "livebench.refuse-copied-prompt",
        0.0,
    )

    # ---- connections, before 2024-11-25 (bold list of 16 words, best bold span graded)
    t, p, d = "connections", CONN_OLD_PROMPT, OLD
    w = CONN_WORDS_16
    good = ", ".join(w)
    shuffled = ", ".join(w[4:8] + w[0:4] + w[12:16] + w[8:12])
    half = ", ".join(w[0:4] + w[4:8] + [w[8], w[12], w[9], w[13], w[10], w[14], w[11], w[15]])
    add(t, REASONING + f"**{good}**", CONN_GT_16, d, p, "realistic", "bold list of 16")
    add(t, REASONING + f"**{shuffled}**", CONN_GT_16, d, p, "realistic", "groups in another order")
    add(t, REASONING + f"**{half}**", CONN_GT_16, d, p, "realistic", "two groups right")
    add(t, REASONING + f"**{good.upper()}**", CONN_GT_16, d, p, "realistic", "upper case")
    add(
        t,
        REASONING + "\n".join(f"**{', '.join(w[i : i + 4])}**" for i in range(0, 16, 4)),
        CONN_GT_16,
        d,
        p,
        "realistic",
        "one bold span per group",
    )
    add(
        t,
        REASONING + f"Fish: bream, carp...\n\n**Final answer:**\n**{good}**",
        CONN_GT_16,
        d,
        p,
        "realistic",
        "bold label then bold list",
    )
    add(
        t,
        REASONING + f"**{good}**\n\nOn reflection:\n**{half}**",
        CONN_GT_16,
        d,
        p,
        "adversarial",
        "two complete answers, the first better",
        "livebench.connections-last-answer",
        0.5,
    )
    add(
        t,
        REASONING + f"**{half}**\n\nOn reflection:\n**{good}**",
        CONN_GT_16,
        d,
        p,
        "realistic",
        "two complete answers, the last better",
    )
    add(t, REASONING + good, CONN_GT_16, d, p, "adversarial", "plain list, no bold")
    add(t, "", CONN_GT_16, d, p, "adversarial", "empty response")
    add(t, p, CONN_GT_16, d, p, "adversarial", "copied prompt")
    add(t, REASONING + f"**{', '.join(CONN_WORDS_12)}**", CONN_GT_12, d, p, "realistic", "12 items")
    add(
        t,
        REASONING + f"**{', '.join(CONN_WORDS_12[:4] + CONN_WORDS_12[8:] + CONN_WORDS_12[4:8])}**",
        CONN_GT_12,
        d,
        p,
        "realistic",
        "12 items, groups reordered",
    )
    add(t, REASONING + "**" + ",".join(w) + "**", CONN_GT_16, d, p, "realistic", "no spaces after commas")
    add(t, REASONING + "**" + ", ".join(w[:15]) + "**", CONN_GT_16, d, p, "adversarial", "one word missing")
    add(
        t,
        "<think>\n" + REASONING + f"**{good}**",
        CONN_GT_16,
        d,
        p,
        "adversarial",
        "answer only inside unclosed <think>",
        "livebench.unclosed-think",
        0.0,
    )

    # ---- connections, from 2024-11-25 (<solution> tags)
    t, p, d = "connections", CONN_NEW_PROMPT, NEW
    groups = [
        ["apple", "pear", "plum", "fig"],
        ["red", "blue", "green", "pink"],
        ["cat", "dog", "cow", "hen"],
        ["one", "two", "six", "ten"],
    ]
    g_truth = ",".join(x for g in groups for x in g)
    src = "third-party test of LiveBench's connections_process_results (GROUPS apple/red/cat/one): "
    for name, gs in [
        ("distinct groups, in order", [groups[0], groups[1], groups[2], groups[3]]),
        ("distinct groups, reversed", [groups[3], groups[2], groups[1], groups[0]]),
        (
            "two groups mixed",
            [groups[0], groups[1], ["cat", "dog", "one", "two"], ["cow", "hen", "six", "ten"]],
        ),
        ("unknown words", [["zero", "zeta", "zed", "zip"]] * 4),
        ("five groups, the last repeated", [groups[0], groups[1], groups[2], groups[3], groups[3]]),
        ("all groups twice", [groups[0], groups[1], groups[2], groups[3]] * 2),
    ]:
        add(
            t,
            "<solution>" + ", ".join(x for g in gs for x in g) + "</solution>",
            g_truth,
            d,
            p,
            "collected",
            src + name,
        )
    for name, gs, rl in [
        ("one group repeated four times", [groups[0]] * 4, 0.25),
        ("two groups repeated twice", [groups[0], groups[0], groups[1], groups[1]], 0.5),
    ]:
        add(
            t,
            "<solution>" + ", ".join(x for g in gs for x in g) + "</solution>",
            g_truth,
            d,
            p,
            "collected",
            src + name,
            "livebench.refuse-repeated-group",
            rl,
        )
    fruit = "Apple,Banana,Pear,Grape,Red,Blue,Green,Yellow"
    src2 = "third-party documentation of LiveBench's connections_process_results: "
    add(t, f"<solution>{fruit}</solution>", fruit, d, p, "collected", src2 + "all correct")
    add(
        t,
        "<solution>Apple,Banana,Pear,Orange,Red,Blue,Green,Yellow</solution>",
        fruit,
        d,
        p,
        "collected",
        src2 + "one group wrong",
    )
    add(
        t,
        "<solution>Red,Apple,Blue,Banana,Green,Pear,Yellow,Grape</solution>",
        fruit,
        d,
        p,
        "collected",
        src2 + "interleaved",
    )
    add(
        t, think("fish...") + f"<solution>{good}</solution>", CONN_GT_16, d, p, "realistic", "think then tags"
    )
    add(t, REASONING + f"<solution>\n{good}\n</solution>", CONN_GT_16, d, p, "realistic", "multi-line tags")
    add(t, REASONING + f"\\boxed{{{good}}}", CONN_GT_16, d, p, "realistic", "boxed list")
    add(t, REASONING + f"**{good}**", CONN_GT_16, d, p, "adversarial", "bold list on a tagged question")
    add(t, "", CONN_GT_16, d, p, "adversarial", "empty response")
    add(t, REASONING + f"<solution>{half}</solution>", CONN_GT_16, d, p, "realistic", "two groups right")

    # ---- typos (ground truth must occur in the answer)
    t, p, d = "typos", TYPOS_PROMPT, OLD
    src3 = "third-party documentation of LiveBench's typos_process_results: "
    add(t, "<solution>extraordinary</solution>", "extraordinary", d, p, "collected", src3 + "solution tag")
    add(t, "<solution>extraordinry</solution>", "extraordinary", d, p, "collected", src3 + "misspelt")
    add(t, "The answer is --- hello --- done", "hello", d, p, "collected", src3 + "--- marker ---")
    add(t, "The word is hello.", "hello", d, p, "collected", src3 + "substring")
    add(t, TYPO_GT, TYPO_GT, d, p, "realistic", "exact corrected text")
    add(t, "Here is the corrected text:\n\n" + TYPO_GT, TYPO_GT, d, p, "realistic", "chat preface")
    add(t, think("studdy -> study, modle -> model") + TYPO_GT, TYPO_GT, d, p, "realistic", "think then text")
    add(t, TYPO_GT.replace("efficient", "efficent"), TYPO_GT, d, p, "realistic", "one typo left")
    add(t, TYPO_INPUT, TYPO_GT, d, p, "adversarial", "input copied unchanged")
    add(t, TYPO_GT.replace(". Our", ".\nOur"), TYPO_GT, d, p, "adversarial", "line break between sentences")
    add(t, TYPO_GT.replace(". Our", ".\n\nOur"), TYPO_GT, d, p, "adversarial", "blank line between sentences")
    add(t, TYPO_GT.replace("main result", "main  result"), TYPO_GT, d, p, "adversarial", "double space")
    add(t, f"<solution>{TYPO_GT}</solution>", TYPO_GT, d, p, "realistic", "solution tags")
    add(t, f"<solution>\n{TYPO_GT}\n</solution>", TYPO_GT, d, p, "realistic", "multi-line solution tags")
    add(t, "", TYPO_GT, d, p, "adversarial", "empty response")
    add(t, p, TYPO_GT, d, p, "adversarial", "copied prompt")
    add(t, TYPO_GT.lower(), TYPO_GT, d, p, "adversarial", "lower-cased")
    add(t, "Corrected: --- " + TYPO_GT + " --- (3 fixes)", TYPO_GT, d, p, "realistic", "--- markers ---")

    # ---- plot_unscrambling (sentences split on '.', order by edit distance)
    t, p, d = "plot_unscrambling", PLOT_PROMPT, OLD
    hero = "The hero wakes up. He fights the dragon. He wins the gold."
    src4 = "third-party documentation of LiveBench's plot_unscrambling_process_results: "
    for name, body in [
        ("in order", "The hero wakes up. He fights the dragon. He wins the gold."),
        ("last two swapped", "The hero wakes up. He wins the gold. He fights the dragon."),
        ("reversed", "He wins the gold. He fights the dragon. The hero wakes up."),
        ("first two swapped", "He fights the dragon. The hero wakes up. He wins the gold."),
    ]:
        add(t, f"<PLOT_SUMMARY>{body}</PLOT_SUMMARY>", hero, d, p, "collected", src4 + name)
    add(
        t,
        "<PLOT_SUMMARY>B. A. C.</PLOT_SUMMARY>",
        "A. B. C.",
        d,
        p,
        "collected",
        src4 + "walkthrough B. A. C.",
    )

    def plot(order: list[int], sep: str = " ") -> str:
        return sep.join(PLOT_SENTENCES[i] + "." for i in order)

    add(
        t, "<PLOT_SUMMARY>" + plot(list(range(6))) + "</PLOT_SUMMARY>", PLOT_GT, d, p, "realistic", "in order"
    )
    add(
        t,
        think("Anna arrives first") + "<PLOT_SUMMARY>\n" + plot(list(range(6)), "\n") + "\n</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "think, one sentence per line",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([0, 2, 1, 3, 4, 5]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "one swap",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([1, 0, 2, 3, 5, 4]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "two swaps",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([0, 1, 2, 3]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "adversarial",
        "two sentences dropped",
    )
    add(t, "<PLOT_SUMMARY>" + plot(list(range(6))), PLOT_GT, d, p, "realistic", "unclosed summary tag")
    add(t, "Here is the plot in order:\n\n" + plot(list(range(6))), PLOT_GT, d, p, "realistic", "no tags")
    add(
        t,
        "<PLOT_SUMMARY>"
        + plot(list(range(6))).replace("Arctic", "arctic").replace("three weeks", "3 weeks")
        + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "light paraphrase",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([5, 4, 3, 2, 1, 0]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "reversed",
    )
    add(t, "", PLOT_GT, d, p, "adversarial", "empty response")
    add(
        t,
        p,
        PLOT_GT,
        d,
        p,
        "adversarial",
        "copied prompt (scrambled order)",
        "livebench.refuse-copied-prompt",
        0.0,
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([2, 0, 4, 1, 5, 3]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "adversarial",
        "scrambled order returned unchanged",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot(list(range(6))) + "</PLOT_SUMMARY>\n\n**End of Plot Summary**",
        PLOT_GT,
        d,
        p,
        "realistic",
        "end marker after the tag",
    )
    add(
        t,
        REASONING + "<PLOT_SUMMARY>" + plot(list(range(6))) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "reasoning before the tag",
    )

    # ---- cta (class name at the end of the answer; \boxed{} allowed)
    t, p, d = "cta", CTA_PROMPT, OLD
    gt = "inspection_date"
    add(t, "inspection_date", gt, d, p, "realistic", "bare class")
    add(t, "inspection_date\n", gt, d, p, "realistic", "bare class and newline")
    add(t, "`inspection_date`", gt, d, p, "realistic", "backticks")
    add(t, "'inspection_date'", gt, d, p, "realistic", "quotes")
    add(t, "Inspection_Date.", gt, d, p, "realistic", "capitalised, full stop")
    add(t, think("the values are ISO dates") + "inspection_date", gt, d, p, "realistic", "think then class")
    add(
        t,
        "The values are timestamps, so the class is: inspection_date",
        gt,
        d,
        p,
        "realistic",
        "sentence ending in the class",
    )
    add(t, "Answer: **inspection_date**", gt, d, p, "realistic", "bold class after a label")
    add(t, "\\boxed{\\text{inspection\\_date}}", gt, d, p, "realistic", "boxed class")
    add(
        t,
        "inspection_date\n\nThe column holds dates of inspections.",
        gt,
        d,
        p,
        "adversarial",
        "class followed by an explanation",
    )
    add(t, "permit_number", gt, d, p, "realistic", "wrong class")
    add(t, "status or inspection_date", gt, d, p, "adversarial", "two classes", "livebench.refuse-hedge", 0.0)
    add(
        t,
        "'" + "' '".join(CTA_CLASSES[::-1]) + "'",
        "inspection_date",
        d,
        p,
        "adversarial",
        "every class listed, the truth last",
        "livebench.refuse-hedge",
        0.0,
    )
    add(t, "date", "inspection_date", d, p, "adversarial", "fragment of the class")
    add(
        t,
        "last_inspection_date",
        gt,
        d,
        p,
        "adversarial",
        "class as a suffix of another name",
        "livebench.cta-whole-name",
        0.0,
    )
    add(t, "", gt, d, p, "adversarial", "empty response")
    add(t, p, gt, d, p, "adversarial", "copied prompt")
    add(t, "inspection date", gt, d, p, "adversarial", "space instead of underscore")

    # ---- tablejoin (Python dict, F1 over pairs, rounded to 2 decimals)
    t, p, d = "tablejoin", TJ_PROMPT, OLD
    add(t, "{'name': 'QpLm', 'zip': 'k9Xb'}", TJ_GT, d, p, "realistic", "bare dict")
    add(t, '```python\n{"name": "QpLm", "zip": "k9Xb"}\n```', TJ_GT, d, p, "realistic", "python fence")
    add(
        t,
        'Here is the mapping:\n```json\n{"name": "QpLm", "zip": "k9Xb"}\n```',
        TJ_GT,
        d,
        p,
        "realistic",
        "json fence after text",
    )
    add(
        t,
        "Here is the mapping: {'name': 'QpLm', 'zip': 'k9Xb'}",
        TJ_GT,
        d,
        p,
        "adversarial",
        "dict inline after text",
    )
    add(t, "{'name': 'QpLm'}", TJ_GT, d, p, "realistic", "one pair missing")
    add(t, "{'name': 'QpLm', 'zip': 'zzT1'}", TJ_GT, d, p, "realistic", "one pair wrong")
    add(t, "{'name': 'QpLm', 'zip': 'k9Xb', 'id': 'zzT1'}", TJ_GT, d, p, "realistic", "one extra pair")
    add(t, "{'name': 'QpLm', 'zip': 'k9Xb', 'id': None}", TJ_GT, d, p, "realistic", "None value dropped")
    add(
        t,
        '```json\n{"name": "QpLm", "zip": "k9Xb", "id": null}\n```',
        TJ_GT,
        d,
        p,
        "realistic",
        "null value dropped",
    )
    add(t, "{'name': 'QpLm', 'zip': 'k9Xb', 'date_opened': 'zzT1'}", TJ_GT3, d, p, "realistic", "three pairs")
    add(t, "{'name': 'QpLm', 'zip': 'k9Xb'}", TJ_GT3, d, p, "realistic", "two of three pairs")
    add(t, "<solution>{'name': 'QpLm', 'zip': 'k9Xb'}</solution>", TJ_GT, d, p, "realistic", "solution tags")
    add(t, "\\boxed{\\{'name': 'QpLm', 'zip': 'k9Xb'\\}}", TJ_GT, d, p, "adversarial", "boxed dict")
    add(
        t,
        think("name matches QpLm") + "{'name': 'QpLm', 'zip': 'k9Xb'}",
        TJ_GT,
        d,
        p,
        "realistic",
        "think then dict",
    )
    add(
        t,
        "```python\n{'name': 'k9Xb'}\n```\n\nCorrection:\n```python\n{'name': 'QpLm', 'zip': 'k9Xb'}\n```",
        TJ_GT,
        d,
        p,
        "realistic",
        "two fences, last graded",
    )
    add(t, "{}", TJ_GT, d, p, "adversarial", "empty dict")
    add(t, "", TJ_GT, d, p, "adversarial", "empty response")
    add(t, p, TJ_GT, d, p, "adversarial", "copied prompt")
    add(
        t,
        "{'name': 'QpLm', 'zip': 'k9Xb', 'id': 'a', 'date_opened': 'b'}",
        TJ_GT,
        d,
        p,
        "realistic",
        "two extra pairs (rounded F1)",
    )
    add(t, "[('name', 'QpLm'), ('zip', 'k9Xb')]", TJ_GT, d, p, "adversarial", "pairs, not a dict")

    # ---- tablereformat (the table read by pandas in the requested format, cells compared)
    t, d = "tablereformat", OLD

    def tr(
        src: str, dst: str, table: str, truth: str, response: str, kind: str, source: str, **kw: Any
    ) -> None:
        add(t, response, truth, d, tr_prompt(src, dst, table), kind, source, **kw)

    tr("TSV", "JSONL", TSV, JSONL, JSONL, "realistic", "tsv->jsonl exact")
    tr("TSV", "JSONL", TSV, JSONL, "```jsonl\n" + JSONL + "\n```", "realistic", "tsv->jsonl fenced")
    tr(
        "TSV",
        "JSONL",
        TSV,
        JSONL,
        "Here is the table in JSONL format:\n" + JSONL,
        "collected",
        "table_process_results remove_initial_phrase: 'Here is the table in JSONL format:'",
    )
    tr("TSV", "JSONL", TSV, JSONL, JSONL.replace("30", "31"), "realistic", "tsv->jsonl wrong cell")
    tr("TSV", "JSONL", TSV, JSONL, "\n".join(JSONL.splitlines()[:2]), "realistic", "tsv->jsonl row missing")
    tr(
        "TSV",
        "JSONL",
        TSV,
        JSONL,
        "\n".join(JSONL.splitlines()[::-1]),
        "adversarial",
        "tsv->jsonl rows reversed",
    )
    tr(
        "TSV",
        "JSONL",
        TSV,
        JSONL,
        JSONL + "\n\nLet me know if you need anything else!",
        "realistic",
        "tsv->jsonl trailing chat",
    )
    tr("TSV", "CSV", TSV, CSV, CSV, "realistic", "tsv->csv exact")
    tr("TSV", "CSV", TSV, CSV, "```csv\n" + CSV + "\n```", "realistic", "tsv->csv fenced")
    tr(
        "TSV",
        "CSV",
        TSV,
        CSV,
        "Sure! Converted table:\n\n" + CSV + "\n\nAll rows kept.",
        "realistic",
        "tsv->csv text around",
    )
    tr(
        "TSV",
        "CSV",
        TSV,
        CSV,
        CSV.replace("age,city", "city,age")
        .replace("30,Oslo", "Oslo,30")
        .replace("4.5,Lima", "Lima,4.5")
        .replace("12,Pune", "Pune,12"),
        "realistic",
        "tsv->csv columns swapped",
    )
    tr("TSV", "CSV", TSV, CSV, CSV.replace("4.5", "4.50"), "realistic", "tsv->csv 4.50 for 4.5")
    tr("CSV", "JSON", CSV, JSON_INDEX, JSON_INDEX, "realistic", "csv->json index exact")
    tr(
        "CSV",
        "JSON",
        CSV,
        JSON_INDEX,
        "```json\n" + json.dumps(json.loads(JSON_INDEX), indent=2) + "\n```",
        "realistic",
        "csv->json pretty-printed",
    )
    tr("CSV", "JSON", CSV, JSON_INDEX, JSON_RECORDS, "realistic", "csv->json as records")
    tr("CSV", "JSON", CSV, JSON_INDEX, JSON_INDEX.replace("Lima", "Lim"), "realistic", "csv->json wrong cell")
    tr("CSV", "HTML", CSV, HTML, HTML, "realistic", "csv->html exact")
    tr("CSV", "HTML", CSV, HTML, "```html\n" + HTML + "\n```", "realistic", "csv->html fenced")
    tr(
        "CSV",
        "HTML",
        CSV,
        HTML,
        "<table><tr><th>name</th><th>age</th><th>city</th></tr>"
        + "".join(f"<tr><td>{n}</td><td>{a}</td><td>{c}</td></tr>" for n, a, c in ROWS)
        + "</table>",
        "realistic",
        "csv->html compact",
    )
    tr("CSV", "HTML", CSV, HTML, HTML.replace("Pune", "Delhi"), "realistic", "csv->html wrong cell")
    tr("CSV", "TSV", CSV, TSV, TSV, "realistic", "csv->tsv exact")
    tr("CSV", "TSV", CSV, TSV, TSV.replace("\t", "    "), "adversarial", "csv->tsv spaces for tabs")
    tr("JSONL", "MARKDOWN", JSONL, MARKDOWN, MARKDOWN, "realistic", "jsonl->markdown exact")
    tr("JSONL", "TSV", JSONL, TSV, "", "adversarial", "empty response")
    tr("JSONL", "CSV", JSONL, CSV, "I cannot convert this table.", "adversarial", "refusal")
    tr("TSV", "JSONL", TSV, JSONL, tr_prompt("TSV", "JSONL", TSV), "adversarial", "copied prompt")
    add(t, CSV, CSV, V2_DATE, tr_prompt_v2("TSV", "CSV", TSV), "realistic", "v2 prompt tsv->csv exact")
    add(
        t,
        "```json\n" + JSON_INDEX + "\n```",
        JSON_INDEX,
        V2_DATE,
        tr_prompt_v2("CSV", "JSON", CSV),
        "realistic",
        "v2 prompt csv->json fenced",
    )

    # ---- more edge cases, per subtask (prompt None: a row without the question text)
    t, p, d = "web_of_lies_v2", WOL_PROMPT, OLD
    gt = "no, yes, no"
    add(
        t,
        REASONING + "maybe **yes, no, yes**\n</think>\n\n**no, yes, no**",
        gt,
        d,
        p,
        "realistic",
        "closing </think> only (template opened it)",
    )
    add(t, REASONING + "\\boxed no, yes, no", gt, d, p, "adversarial", "\\boxed with a space")
    add(t, REASONING + "**The answers are: no, yes, no.**", gt, d, p, "realistic", "sentence in bold")
    add(
        t, p + "\n\n" + REASONING + "**no, yes, no**", gt, d, p, "realistic", "question restated, then answer"
    )
    add(
        t,
        p,
        "yes, no, yes",
        d,
        None,
        "adversarial",
        "copied prompt, no question text in extra_info",
        "livebench.refuse-copied-prompt",
        0.0,
    )
    add(t, REASONING + "\\boxed{no, yes, no", gt, d, p, "adversarial", "unclosed box")
    t, p, d = "zebra_puzzle", ZEBRA_OLD_PROMPT, OLD
    add(
        t,
        REASONING + "The answer is ***3***, at position three.",
        "3",
        d,
        p,
        "realistic",
        "answer mid-sentence",
    )
    add(t, REASONING + "***3***.", "3", d, None, "realistic", "no question text, answer with period")
    add(t, REASONING + "***fish***", "fish", d, None, "realistic", "no question text, word answer")
    t, p, d = "zebra_puzzle", ZEBRA_NEW_PROMPT, NEW
    gt = "2, blue, fish, 4"
    add(
        t,
        REASONING + "<solution>2, blue, fish, 4</solution>\n\nExplanation: the fish owner is last.",
        gt,
        d,
        p,
        "realistic",
        "explanation after the block",
    )
    add(t, REASONING + "\\boxed{\\text{2, blue, fish, 4}}", gt, d, p, "realistic", "boxed text")
    add(
        t,
        REASONING + "<solution>2, blue, fish, 4</solution>",
        gt,
        None,
        None,
        "realistic",
        "no date, no question text (format from the truth)",
        "livebench.undated-format",
        1.0,
    )
    t, p, d = "spatial", SPATIAL_PROMPT, SPATIAL_DATE
    add(t, REASONING + "\\boxed 3", "3", d, p, "adversarial", "\\boxed with a space")
    add(t, REASONING + "So **3**.", "3", d, p, "realistic", "bold then period")
    add(
        t,
        REASONING + "**3**\n\nLet me double-check: yes, **3** pieces.",
        "3",
        d,
        p,
        "realistic",
        "same answer bolded twice",
    )
    add(t, REASONING + "\\boxed{3", "3", d, p, "adversarial", "unclosed box")
    t, p, d = "connections", CONN_OLD_PROMPT, OLD
    add(
        t,
        REASONING + "".join(f"**Group {i + 1}:** {', '.join(w[4 * i : 4 * i + 4])}\n" for i in range(4)),
        CONN_GT_16,
        d,
        p,
        "adversarial",
        "bold group labels, plain words",
    )
    add(t, REASONING + f"**{good}**", CONN_GT_16, None, None, "realistic", "no date, no question text")
    t, p, d = "typos", TYPOS_PROMPT, OLD
    add(
        t,
        "Sure, here it is:\n\n" + TYPO_GT + "\n\nI fixed: studdy, modle, efficent, logaritmic.",
        TYPO_GT,
        d,
        p,
        "realistic",
        "text then a list of fixes",
    )
    add(t, TYPO_INPUT + "\n\nCorrected:\n" + TYPO_GT, TYPO_GT, d, p, "realistic", "original then corrected")
    t, p, d = "plot_unscrambling", PLOT_PROMPT, OLD
    add(
        t,
        "<PLOT_SUMMARY>" + plot(list(range(6))) + " Years later, Anna returns.</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "realistic",
        "one invented sentence added",
    )
    add(
        t,
        "<PLOT_SUMMARY>" + plot([0, 1, 2, 3, 4, 5, 5]) + "</PLOT_SUMMARY>",
        PLOT_GT,
        d,
        p,
        "adversarial",
        "last sentence repeated",
        "livebench.plot-repeats",
        0.0,
    )
    t, p, d = "cta", CTA_PROMPT, OLD
    gt = "inspection_date"
    add(t, "inspection_date, permit_number", gt, d, p, "adversarial", "two classes, the truth first")
    add(
        t,
        "permit_number, inspection_date",
        gt,
        d,
        None,
        "adversarial",
        "two classes, no question text",
        "livebench.refuse-hedge",
        0.0,
    )
    add(t, "Class: inspection_date", gt, d, None, "realistic", "label, no question text")
    t, p, d = "tablejoin", TJ_PROMPT, OLD
    add(t, "```\n{'name': 'QpLm', 'zip': 'k9Xb'}\n```", TJ_GT, d, p, "realistic", "plain fence")
    add(t, "{'name': 'QpLm', 'zip': 10001}", TJ_GT, d, p, "adversarial", "a value of the wrong type")
    add(
        t,
        "{'name': 'QpLm', 'zip': 'k9Xb'} \n\nThis maps the names and zip codes.",
        TJ_GT,
        d,
        p,
        "adversarial",
        "dict then explanation",
    )
    t, d = "tablereformat", OLD
    tr(
        "JSONL",
        "MARKDOWN",
        JSONL,
        MARKDOWN,
        "\n".join(MARKDOWN.splitlines()[:-1]),
        "realistic",
        "jsonl->markdown row missing",
    )
    tr("TSV", "JSONL", TSV, JSONL, JSONL.replace("\n", "\n\n"), "adversarial", "tsv->jsonl blank lines")
    tr("TSV", "CSV", TSV, CSV, CSV.replace("Ann", '"Ann"'), "realistic", "tsv->csv quoted cell")
    tr(
        "CSV",
        "HTML",
        CSV,
        HTML,
        HTML.replace("<th>age</th>", "<th>years</th>"),
        "realistic",
        "csv->html renamed column",
    )
    tr("CSV", "JSON", CSV, JSON_INDEX, JSONL, "adversarial", "csv->json answered as jsonl")
    # ---- hedges and one-line non-answers on every subtask
    H = "livebench.refuse-hedge"
    add(
        "web_of_lies_v2",
        hedge("none of the above", "no, yes, no"),
        "no, yes, no",
        OLD,
        WOL_PROMPT,
        "adversarial",
        "hedge in every answer slot",
    )
    add(
        "web_of_lies_v2",
        hedge("yes, no, yes", "no, yes, no"),
        "no, yes, no",
        OLD,
        WOL_PROMPT,
        "adversarial",
        "hedge between two lists",
    )
    add(
        "web_of_lies_v3",
        hedge("no, no, no", "yes, no, yes"),
        "yes, no, yes",
        NEW,
        WOL3_PROMPT,
        "adversarial",
        "hedge between two lists",
        H,
        0.0,
    )
    add(
        "zebra_puzzle",
        hedge("4", "3"),
        "3",
        OLD,
        ZEBRA_OLD_PROMPT,
        "adversarial",
        "hedge in every answer slot",
        H,
        0.0,
    )
    add(
        "zebra_puzzle",
        REASONING + "The fish owner is at position 2 or 3",
        "3",
        OLD,
        ZEBRA_OLD_PROMPT,
        "adversarial",
        "plain two-way answer",
        H,
        0.0,
    )
    add(
        "zebra_puzzle",
        hedge("1, red, cat, 3", "2, blue, fish, 4"),
        "2, blue, fish, 4",
        NEW,
        ZEBRA_NEW_PROMPT,
        "adversarial",
        "hedge in every answer slot",
    )
    add(
        "spatial",
        hedge("4", "3"),
        "3",
        SPATIAL_DATE,
        SPATIAL_PROMPT,
        "adversarial",
        "hedge in every answer slot",
    )
    add(
        "spatial",
        REASONING + "**2**, **3** or **4**",
        "4",
        SPATIAL_DATE,
        SPATIAL_PROMPT,
        "adversarial",
        "three bold candidates, the truth last",
        H,
        0.0,
    )
    add(
        "connections",
        hedge("none of the above", CONN_GT_16),
        CONN_GT_16,
        OLD,
        CONN_OLD_PROMPT,
        "adversarial",
        "hedge in every answer slot",
    )
    add(
        "connections",
        hedge("none of the above", CONN_GT_16),
        CONN_GT_16,
        NEW,
        CONN_NEW_PROMPT,
        "adversarial",
        "hedge in every answer slot",
    )
    add(
        "typos",
        hedge("none of the above", TYPO_GT),
        TYPO_GT,
        OLD,
        TYPOS_PROMPT,
        "adversarial",
        "hedge in every answer slot",
        H,
        0.0,
    )
    add(
        "typos",
        f"Either {TYPO_INPUT} or {TYPO_GT}",
        TYPO_GT,
        OLD,
        TYPOS_PROMPT,
        "adversarial",
        "original or corrected",
        H,
        0.0,
    )
    add(
        "plot_unscrambling",
        hedge("none of the above", PLOT_GT),
        PLOT_GT,
        OLD,
        PLOT_PROMPT,
        "adversarial",
        "hedge in every answer slot",
        "livebench.plot-repeats",
        0.0,
    )
    add(
        "plot_unscrambling",
        "<PLOT_SUMMARY>"
        + plot([2, 0, 4, 1, 5, 3])
        + "</PLOT_SUMMARY>\n<PLOT_SUMMARY>"
        + plot(list(range(6)))
        + "</PLOT_SUMMARY>",
        PLOT_GT,
        OLD,
        PLOT_PROMPT,
        "adversarial",
        "two summaries in one greedy block",
        "livebench.plot-repeats",
        0.0,
    )
    add(
        "plot_unscrambling",
        "I cannot determine the order.",
        PLOT_GT,
        OLD,
        PLOT_PROMPT,
        "adversarial",
        "one-line refusal",
        "livebench.plot-unmatched",
        0.0,
    )
    add(
        "plot_unscrambling",
        "Solve the problem below and give the answer.",
        "The hero wakes up. He fights the dragon. He wins the gold.",
        OLD,
        PLOT_PROMPT,
        "adversarial",
        "unrelated sentence",
        "livebench.plot-unmatched",
        0.0,
    )
    add(
        "cta",
        hedge("none of the above", "inspection_date"),
        "inspection_date",
        OLD,
        CTA_PROMPT,
        "adversarial",
        "hedge in every answer slot",
        H,
        0.0,
    )
    add("tablejoin", hedge("{}", TJ_GT), TJ_GT, OLD, TJ_PROMPT, "adversarial", "hedge in every answer slot")
    add(
        "tablereformat",
        hedge("none of the above", CSV),
        CSV,
        OLD,
        tr_prompt("TSV", "CSV", TSV),
        "adversarial",
        "hedge in every answer slot",
    )
    return out


# --------------------------------------------------------------------------------------------------
# running the reference


def _load_livebench(root: Path) -> dict[str, Any]:
    # a package stub: this generator's own file is also called livebench.py
    pkg = types.ModuleType("livebench")
    pkg.__path__ = [str(root / "livebench")]
    sys.modules["livebench"] = pkg
    base = "livebench.process_results."
    mods = {}
    for key, spec in FUNCTIONS.items():
        path, func = spec.split(":")
        module = importlib.import_module(base + path[: -len(".py")].replace("/", "."))
        mods[key] = getattr(module, func)
    zebra = importlib.import_module(base + "reasoning.zebra_puzzle.utils")
    conn = importlib.import_module(base + "writing.connections.utils")
    mods["zebra_for"] = zebra.get_zebra_puzzle_evaluator
    mods["connections_for"] = conn.get_connections_puzzle_evaluator
    return mods


def _clip(value: Any) -> float:
    return min(1.0, max(0.0, float(value)))


def livebench_score(mods: dict[str, Any], case: dict[str, Any]) -> tuple[float, str]:
    """LiveBench's score as play_a_match_gt computes it, and the function that gave it."""
    task, truth = case["task"], case["ground_truth"]
    date = case["date"] or OLD  # undated rows: the GURU router's choice (the old evaluators, v1 tables)
    question = case["prompt"] or ""
    answer = re.sub(r"<think>.*?<\/think>", "", case["response"], flags=re.DOTALL)
    if task == "zebra_puzzle":
        fn = mods["zebra_for"](date)
    elif task == "connections":
        fn = mods["connections_for"](date)
    else:
        fn = mods[task]
    name = f"livebench/process_results/{FUNCTIONS[task].split(':')[0]}:{fn.__name__}"
    try:
        if task == "tablereformat":
            value = fn(question, truth, answer, "v2" if date >= V2_DATE else "v1", False)
        elif task == "tablejoin":
            value = fn(question, truth, answer, False)
        else:
            value = fn(truth, answer, False)
    except Exception:  # noqa: BLE001 - play_a_match_gt scores any exception 0
        value = 0
    return _clip(value), name


def _load_reasoning360(root: Path) -> Any:
    """Reasoning360's router without importing verl's heavy package __init__ files."""
    for name in ("verl", "verl.utils", "verl.utils.reward_score"):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = pkg
    return importlib.import_module("verl.utils.reward_score.livebench").compute_score


def reasoning360_score(compute: Any, case: dict[str, Any]) -> float:
    try:
        out = compute(case["response"], case["ground_truth"], {"task": case["task"]})
        return _clip(out["score"])
    except Exception:  # noqa: BLE001
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("livebench", type=Path, help="a LiveBench checkout (the repository root)")
    parser.add_argument("--reasoning360", type=Path, help="a Reasoning360 checkout, to compare its router")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    mods = _load_livebench(args.livebench)
    r360 = _load_reasoning360(args.reasoning360) if args.reasoning360 else None
    import contextlib
    import io

    lines = []
    for n, case in enumerate(_cases(), start=1):
        with contextlib.redirect_stdout(io.StringIO()):
            ref, function = livebench_score(mods, case)
            other = reasoning360_score(r360, case) if r360 else None
        if other is not None and abs(other - ref) > 1e-9:
            print(f"{FAMILY}-{n} {case['task']} {case['source']!r}: LiveBench {ref}, Reasoning360 {other}")
        extra = {"task": case["task"], "category": CATEGORY[case["task"]]}
        if case["date"] is not None:
            extra["date"] = case["date"]
        if case["prompt"] is not None:
            extra["prompt"] = [case["prompt"]]
        row = {
            "id": f"{FAMILY}-{n}",
            "scorer": "livebench",
            "response": case["response"],
            "ground_truth": case["ground_truth"],
            "extra_info": extra,
            "reference": {"repo": REPO, "commit": COMMIT, "function": function},
            "reference_score": ref,
            "kind": case["kind"],
            "source": f"{case['task']}: {case['source']}",
            "decision": case["decision"],
        }
        if case["decision"]:
            row["rlpipe_score"] = case["rlpipe_score"]
        lines.append(json.dumps(row, ensure_ascii=False))
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
