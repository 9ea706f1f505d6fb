"""Extraction helpers: nested braces, think blocks, multi-line answer tags, fences."""

from rlpipe.rewards.extract import (
    all_boxed,
    answer_region,
    boxed_answers,
    boxed_spans,
    fenced_blocks,
    last_answer_tag,
    last_box_group,
    last_boxed,
    strip_text_macro,
)


def test_last_boxed_keeps_nested_braces() -> None:
    assert last_boxed(r"so \boxed{\frac{1}{\sqrt{2}}} done") == r"\frac{1}{\sqrt{2}}"
    assert last_boxed(r"\boxed{1} then \boxed{\{1,2\}}") == r"\{1,2\}"


def test_last_boxed_ignores_unclosed_and_handles_space_form() -> None:
    assert last_boxed(r"\boxed{3} and then \boxed{\frac{1}{2}") == "3"
    assert last_boxed(r"answer: \boxed 7") == "7"
    assert last_boxed("no box here") is None
    assert all_boxed(r"\fbox{a} \boxed{b}") == ["a", "b"]


def test_answer_region_after_think() -> None:
    assert answer_region("<think>x \\boxed{1}</think> final") == " final"
    assert answer_region("<think>a</think>b</think>c") == "c"
    assert answer_region("<think> never closed \\boxed{1}") is None
    assert answer_region("plain") == "plain"


def test_answer_tag_is_multiline_and_last() -> None:
    text = "<answer>old</answer> <ANSWER>\n[[1, 2],\n [3, 4]]\n</ANSWER> trailing"
    assert last_answer_tag(text) == "[[1, 2],\n [3, 4]]"
    assert last_answer_tag("<answer>unclosed") is None


def test_fenced_blocks_and_text_macro() -> None:
    blocks = fenced_blocks("```python\na=1\n```\ntext\n```\nb=2\n```")
    assert blocks == [("python", "a=1\n"), ("", "b=2\n")]
    assert strip_text_macro(r"\text{B}") == "B"
    assert strip_text_macro(r"\text{a} + \text{b}") == r"\text{a} + \text{b}"


def test_boxed_answers_are_top_level_and_complete() -> None:
    # a box nested in another is part of it; an unclosed box is skipped; the spaced form counts
    assert boxed_answers(r"\boxed{\boxed{5}} and \boxed{6}") == [r"\boxed{5}", "6"]
    assert boxed_answers(r"\boxed{1} \boxed{\frac{1}{2} then \boxed 7") == ["1", "7"]
    text = r"so $\boxed{\{1,2\}}$."
    ((start, end, content),) = boxed_spans(text)
    assert text[start:end] == r"\boxed{\{1,2\}}" and content == r"\{1,2\}"


def test_last_box_group_joins_boxes_by_comma_and_or() -> None:
    assert last_box_group(r"The solutions are $x = \boxed{2}$ and $x = \boxed{3}$.") == ["2", "3"]
    assert last_box_group(r"$\boxed{7}$ or $\boxed{8}$") == ["7", "8"]
    assert last_box_group(r"\boxed{(1,2)}, \boxed{(3,4)}") == ["(1,2)", "(3,4)"]
    assert last_box_group("\\boxed{(1,2)}\n\\boxed{(3,4)}") == ["(1,2)", "(3,4)"]
    assert last_box_group(r"\(\boxed{1}\) \text{ and } \(x_{2} = \boxed{-2}\)") == ["1", "-2"]
    assert last_box_group(r"$$\boxed{2}, \boxed{3}, \boxed{5}$$") == ["2", "3", "5"]


def test_last_box_group_drops_superseded_boxes() -> None:
    # other words between two boxes: the earlier one was an intermediate result or a corrected answer
    assert last_box_group(r"\boxed{7}. Wait, actually \boxed{8}") == ["8"]
    assert last_box_group(r"\boxed{1} papers and \boxed{2} bins") == ["2"]
    assert last_box_group(r"we get $\boxed{12}$, so the area is $\boxed{6}$") == ["6"]
    assert last_box_group("nothing boxed") == []
    assert last_box_group(r"\boxed{3} and then \boxed{\frac{1}{2}") == ["3"]
