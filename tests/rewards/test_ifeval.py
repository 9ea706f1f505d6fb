"""IFEval: one passing and one failing response per instruction type, plus strict vs loose."""

import logging

import pytest

from rlpipe.rewards import score
from rlpipe.rewards.ifeval import CHECKERS, follows, instructions

EN = "The weather today is pleasant and the sky is clear over the quiet little town"

CASES = [
    ("keywords:existence", {"keywords": ["apple", "pie"]}, "I like Apple pie.", "I like apple tart."),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "at least"}, "cat CAT", "one cat"),
    ("keywords:frequency", {"keyword": "cat", "frequency": 2, "relation": "less than"}, "one cat", "cat cat"),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "badge is fine", "that is Bad."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "Zz", "z"),
    ("language:response_language", {"language": "de"}, "Das Wetter ist heute sehr schön und warm.", EN),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "less than"},
        "One. Two.",
        "A. B. C.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 2, "relation": "at least"},
        "Dr. Who ran. Ok!",
        "Hi.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "first\n***\nsecond",
        "one\n***\n***\ntwo",
    ),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "a b c d e", "a b c d"),
    ("length_constraints:number_words", {"num_words": 3, "relation": "less than"}, "a b", "a b c"),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        'Intro here.\n\n"Then, more.',
        "Intro here.\n\nAnd then more.",
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "[name] at [address]", "[name] only"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Body.\n\nP.S. hi", "Body. PS hi"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Body.\nP.P.S. bye", "Body.\nP.S. bye"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n* b", "* a\n* b\n- c"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes, definitely."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", "*one* **"),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nfoo\nSection 2\nbar",
        "Section 1\nfoo",
    ),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', '{"a": 1'),
    ("detectable_format:title", {}, "<<My Title>>\ntext", "<< >> no title"),
    ("combination:two_responses", {}, "first\n******\nsecond", "same\n******\nsame"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Say hi."}, "say hi. Hi!", "Hi! Say hi."),
    (
        "startend:end_checker",
        {"end_phrase": "Any questions?"},
        "Done. Any questions?",
        "Any questions? Done.",
    ),
    ("startend:quotation", {}, '"quoted text"', 'quoted "text"'),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "VERY IMPORTANT note",
        "Very Important NOTE",
    ),
    ("change_case:english_capital", {}, EN.upper(), EN),
    ("change_case:english_lowercase", {}, EN.lower(), EN),
    ("punctuation:no_comma", {}, "no commas here", "a, b"),
]


def test_every_ifeval_instruction_is_covered() -> None:
    assert {c[0] for c in CASES} == set(CHECKERS)
    assert len(CHECKERS) == 25


@pytest.mark.parametrize(
    ("iid", "kwargs", "good", "bad"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_instruction(iid: str, kwargs: dict, good: str, bad: str) -> None:
    info = {"instruction_id_list": [iid], "kwargs": [kwargs]}
    assert score("ifeval_strict", good, None, info) == 1.0
    assert score("ifeval_strict", bad, None, info) == 0.0


def test_prompt_level_requires_all() -> None:
    info = {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"], "kwargs": [{}, {}]}
    assert score("ifeval_strict", '"hello there"', None, info) == 1.0
    assert score("ifeval_strict", '"hello, there"', None, info) == 0.0


def test_loose_drops_first_and_last_lines_and_stars() -> None:
    info = {"instruction_id_list": ["startend:end_checker"], "kwargs": [{"end_phrase": "Bye."}]}
    response = "Sure! Here it is:\nBody text. Bye.\nHope this helps!"
    assert score("ifeval_strict", response, None, info) == 0.0
    assert score("ifeval_loose", response, None, info) == 1.0
    title = {"instruction_id_list": ["startend:quotation"], "kwargs": [{}]}
    assert score("ifeval_loose", '**"quoted"**', None, title) == 1.0
    assert score("ifeval_strict", '**"quoted"**', None, title) == 0.0


def test_nth_paragraph_markdown_needs_loose() -> None:
    iid = "length_constraints:nth_paragraph_first_word"
    info = {
        "instruction_id_list": [iid],
        "kwargs": [{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}],
    }
    assert score("ifeval_strict", "Intro.\n\n**Then** more.", None, info) == 0.0
    assert score("ifeval_loose", "Intro.\n\n**Then** more.", None, info) == 1.0
    assert score("ifeval_strict", "Intro.\n\nThen more.\n\nExtra.", None, info) == 0.0  # 3 paragraphs


def test_kwargs_sources_and_nulls() -> None:
    kwargs = [{"num_words": 3.0, "relation": "less than", "keyword": None}]
    assert instructions(kwargs, {"instruction_id_list": ["length_constraints:number_words"]}) == [
        ("length_constraints:number_words", {"num_words": 3, "relation": "less than"})
    ]
    truth = '{"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}'
    assert score("ifeval_strict", "fine", truth) == 1.0
    assert score("ifeval_strict", "<think>a, b</think>fine", truth) == 1.0  # reasoning is not graded


def test_unknown_instruction_is_not_followed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert not follows("text", "made_up:instruction", {})
        info = {"instruction_id_list": ["made_up:other"], "kwargs": [{}]}
        assert score("ifeval_loose", "anything", None, info) == 0.0
    assert "made_up:instruction" in caplog.text
    assert score("ifeval_strict", "anything", None, {}) == 0.0  # no instructions at all


def test_without_langdetect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "langdetect", None)  # import now raises ImportError
    language = {"instruction_id_list": ["language:response_language"], "kwargs": [{"language": "en"}]}
    assert score("ifeval_strict", EN, None, language) == 0.0  # cannot be verified: not followed
    capital = {"instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]}
    assert score("ifeval_strict", EN.upper(), None, capital) == 1.0  # case is still checked
    assert score("ifeval_strict", EN, None, capital) == 0.0
