"""IFEval: one passing and one failing response per instruction type, plus strict vs loose."""

import logging

import pytest

from rlpipe.rewards import score
from rlpipe.rewards.ifeval import CHECKERS, follows, instructions
from rlpipe.rewards.ifeval_checkers import count_sentences, word_tokens

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
        "One. Two. Three.",
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
    # the checkers IFEval defines outside its registry, and its test file's other ids
    (
        "keywords:key_sentences",
        {"key_sentences": ["Cats are fun.", "Dogs bark."], "num_sentences": 1},
        "Cats are fun. They sleep a lot.",
        "Cats are fun. Dogs bark.",
    ),
    (
        "detectable_content:rephrase_paragraph",
        {"original_paragraph": "the cat sat on the mat", "low": 2, "high": 4},
        "the dog sat on a rug",
        "the cat sat on the mat",
    ),
    (
        "detectable_format:rephrase",
        {"original_message": "I am *happy* today."},
        "I am *glad* today.",
        "I am glad today.",
    ),
    (
        "detectable_format:rephrasing",
        {"original_message": "I am *happy* today."},
        "I am *content* today.",
        "I was *content* today.",
    ),
    (
        "multi-turn:constrained_start",
        {"starter": " My response is: "},
        "  My response is: fine.",
        "Well, my response is: fine.",
    ),
    ("keywords:include_keywords", {"keywords": ["river"]}, "A River.", "A lake."),
    ("keywords:keyword_frequency", {"keyword": " cat ", "frequency": 2}, "Cat, cat.", "cat"),
    ("length_constraint:number_paragraphs", {"num_paragraphs": 2}, "a\n***\nb", "a b"),
    ("length_constraint:number_words", {"num_words": 2, "relation": "at least"}, "a b", "a"),
    ("detectable_format:exact_number_bullet_points", {"num_bullets": 1}, "* a", "* a\n* b"),
    ("detectable_format:minimum_number_highlighted_sections", {"num_highlights": 1}, "*a*", "a"),
]
REGISTRY = 25  # IFEval's instructions_registry


def test_every_ifeval_instruction_is_covered() -> None:
    assert {c[0] for c in CASES} == set(CHECKERS)
    assert len(CHECKERS) == REGISTRY + 11


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
    # a checker that cannot run is not followed (this test used to expect 1: the case alone was checked)
    assert score("ifeval_strict", EN.upper(), None, capital) == 0.0
    assert score("ifeval_strict", EN, None, capital) == 0.0


def test_frequency_keyword_is_stripped_as_ifeval_does() -> None:
    info = {
        "instruction_id_list": ["keywords:frequency"],
        "kwargs": [{"keyword": "  keyword ", "frequency": 3, "relation": "at least"}],
    }
    assert score("ifeval_strict", "keyword, Keyword, KEYWORD", None, info) == 1.0


def test_sentences_and_capital_words_follow_nltk() -> None:
    """Punkt keeps abbreviations, initials and ellipses inside a sentence; word_tokenize keeps
    hyphenated words and acronyms whole and splits clitics."""
    assert count_sentences("Dr. Smith met J. R. R. Tolkien in the U.S. economy. Wait... what? Yes!") == 3
    assert count_sentences("e.g. the cat sat. 1. First item\n2. Second") == 5
    assert count_sentences("He lives in the U.S. The weather is fine.") == 2
    assert count_sentences("") == 0
    capitals = [w for w in word_tokens("DON'T use AI-generated U.S. data, NASA's team said") if w.isupper()]
    assert capitals == ["DO", "N'T", "U.S.", "NASA"]


def test_degenerate_answers_are_refused() -> None:
    language = {"instruction_id_list": ["language:response_language"], "kwargs": [{"language": "de"}]}
    assert score("ifeval_strict", "12345 67890", None, language) == 0.0  # refuse-undetectable-language
    options = {"instruction_id_list": ["detectable_format:constrained_response"], "kwargs": [{}]}
    assert score("ifeval_strict", "My answer is yes. My answer is no.", None, options) == 0.0
    assert score("ifeval_strict", "My answer is no. Truly: My answer is no.", None, options) == 1.0
    repeat = {
        "instruction_id_list": ["combination:repeat_prompt"],
        "kwargs": [{"prompt_to_repeat": "Write a poem."}],
    }
    assert score("ifeval_strict", "Write a poem.", None, repeat) == 0.0  # refuse-copied-prompt
    assert score("ifeval_strict", "Write a poem. Roses are red.", None, repeat) == 1.0
    prompt = "write about the sea in lowercase without commas"
    copied = {
        "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
        "kwargs": [{}, {}],
        "prompt": prompt,
    }
    assert score("ifeval_strict", prompt, None, copied) == 0.0
    assert score("ifeval_strict", "the sea is wide and the sea is deep and blue", None, copied) == 1.0
    assert score("ifeval_strict", "<think>\nthe sea is wide and deep", None, copied) == 0.0  # unclosed
