"""Extraction helpers: nested braces, think blocks, multi-line answer tags, fences."""

from rlpipe.rewards.extract import (
    all_boxed,
    answer_region,
    fenced_blocks,
    last_answer_tag,
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
