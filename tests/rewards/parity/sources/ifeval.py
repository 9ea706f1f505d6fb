"""Regenerate ``cases/ifeval.jsonl``: ``ifeval_strict`` and ``ifeval_loose`` against IFEval's checkers.

Reference: IFEval's instruction checkers (google-research ``instruction_following_eval``) as carried by
EleutherAI/lm-evaluation-harness at 4e7e0d47f33bc71070c1d38394bafbb52b117163, files
``lm_eval/tasks/ifeval/{instructions,instructions_registry,instructions_util,utils}.py``; prompt-level
scores from ``utils.py``'s ``test_instruction_following_strict`` (``ifeval_strict``) and
``test_instruction_following_loose`` (``ifeval_loose``), ``follow_all_instructions`` as 0/1.

The call is the one the GURU reward makes (Reasoning360 ``verl/utils/reward_score/ifeval``): the
graded text is the part between the first and the second ``</think>`` when there is one, else the whole
response; kwargs lose their ``None`` values, floats become ints; any exception counts 0 (as GURU's
``compute_score`` catches it). ``langdetect`` runs with ``DetectorFactory.seed = 0`` (rlpipe's seed;
the reference leaves it unseeded). Checkers that IFEval defines but leaves out of its registry get the
ids its registry comments and its test file give them (``EXTRA_IDS``), added to the registry's dict.

Every case has the GURU row format: the ground truth is the list of kwargs, ``extra_info`` holds
``instruction_id_list`` (and, for about half of the realistic rows and the copied-prompt ones,
``prompt``).

Cases (each response scored by both scorers):

- ``collected``: every assertion of google-research/google-research@83282e4ec6e140949e0f51d04e279be7949409ff
  ``instruction_following_eval/instructions_test.py`` (test method and message named in ``source``),
  under the instruction id the test uses; the generator checks that the reference still gives the
  test's expected value on the strict side. One assertion is left out: ``test_rephrase_paragraph`` with
  ``low=0`` (``utils.py`` drops falsy kwargs, so the reference call fails on a missing argument).
- ``realistic``: model-like answers built by ``realistic()``: chat preambles and closings, ``<think>``
  reasoning before ``</think>``, markdown, instructions followed or broken on purpose, thresholds at and
  around the response's own counts.
- ``adversarial``: ``adversarial()``: empty answers, the answer only in the reasoning, unclosed
  ``<think>``, a copied prompt, texts without letters, items without instructions, keyword kwargs with
  surrounding spaces or regex characters, several ``</think>``.

Where rlpipe differs on purpose the case names the decision (module docstring of
``rlpipe.rewards.ifeval``) and carries ``rlpipe_score``.

How to regenerate (the reference is never vendored)::

    git clone https://github.com/EleutherAI/lm-evaluation-harness /tmp/lmeh
    git -C /tmp/lmeh checkout 4e7e0d47f33bc71070c1d38394bafbb52b117163
    python -m venv --system-site-packages /tmp/ifeval-env
    /tmp/ifeval-env/bin/pip install langdetect==1.0.9 nltk immutabledict absl-py
    /tmp/ifeval-env/bin/python -m nltk.downloader -d /tmp/nltk_data punkt_tab
    NLTK_DATA=/tmp/nltk_data /tmp/ifeval-env/bin/python tests/rewards/parity/sources/ifeval.py /tmp/lmeh

Only ``lm_eval/tasks/ifeval`` is imported (the package ``__init__`` files are bypassed), so a copy of
that folder under ``<checkout>/lm_eval/tasks/ifeval`` is enough. Where nltk's downloader cannot reach
its host, the ``punkt_tab`` folder shipped inside the ``llama-index-core`` wheel
(``llama_index/core/_static/nltk_cache/tokenizers``) is the same data.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = "EleutherAI/lm-evaluation-harness"
COMMIT = "4e7e0d47f33bc71070c1d38394bafbb52b117163"
FUNCTION = {
    "ifeval_strict": "lm_eval/tasks/ifeval/utils.py:test_instruction_following_strict",
    "ifeval_loose": "lm_eval/tasks/ifeval/utils.py:test_instruction_following_loose",
}
TESTS = (
    "google-research/google-research@83282e4ec6e140949e0f51d04e279be7949409ff "
    "instruction_following_eval/instructions_test.py"
)
OUT = Path(__file__).resolve().parents[1] / "cases" / "ifeval.jsonl"

# instruction id -> class of ``instructions.py`` for the checkers outside the registry
EXTRA_IDS = {
    "keywords:key_sentences": "KeySentenceChecker",
    "detectable_content:rephrase_paragraph": "RephraseParagraph",
    "detectable_format:rephrase": "RephraseChecker",
    "detectable_format:rephrasing": "RephraseChecker",
    "multi-turn:constrained_start": "ConstrainedStartChecker",
    "keywords:include_keywords": "KeywordChecker",
    "keywords:keyword_frequency": "KeywordFrequencyChecker",
    "length_constraint:number_paragraphs": "ParagraphChecker",
    "length_constraint:number_words": "NumberOfWords",
    "detectable_format:exact_number_bullet_points": "BulletListChecker",
    "detectable_format:minimum_number_highlighted_sections": "HighlightSectionChecker",
}


# --------------------------------------------------------------------------------------------------
# The reference


class Reference:
    """IFEval's checkers from a lm-evaluation-harness checkout, called as the GURU reward calls them."""

    def __init__(self, checkout: Path) -> None:
        base = checkout / "lm_eval"
        for name, path in (
            ("lm_eval", base),
            ("lm_eval.tasks", base / "tasks"),
            ("lm_eval.tasks.ifeval", base / "tasks" / "ifeval"),
        ):
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
        self.registry = importlib.import_module("lm_eval.tasks.ifeval.instructions_registry")
        self.instructions = importlib.import_module("lm_eval.tasks.ifeval.instructions")
        self.utils = importlib.import_module("lm_eval.tasks.ifeval.utils")
        self.util = importlib.import_module("lm_eval.tasks.ifeval.instructions_util")
        for iid, cls in EXTRA_IDS.items():
            self.registry.INSTRUCTION_DICT.setdefault(iid, getattr(self.instructions, cls))
        from langdetect import DetectorFactory

        DetectorFactory.seed = 0

    @staticmethod
    def graded(response: str) -> str:
        return response.split("</think>")[1] if "</think>" in response else response

    def tolerant(self, scorer: str, response: str, ids: list[str], kwargs: list[dict], prompt: str) -> float:
        """``score`` with the rephrase checker's ValueError (a text without ``*change*``) as "not
        followed": rlpipe's reading of the loose rule for that checker."""
        cls = self.instructions.RephraseChecker
        original = cls.check_following

        def check(checker: Any, value: str) -> bool:
            try:
                return original(checker, value)
            except ValueError:
                return False

        cls.check_following = check
        try:
            return self.score(scorer, response, ids, kwargs, prompt)
        finally:
            cls.check_following = original

    def score(self, scorer: str, response: str, ids: list[str], kwargs: list[dict], prompt: str) -> float:
        clean = [
            {k: int(v) if isinstance(v, float) else v for k, v in kw.items() if v is not None}
            for kw in kwargs
        ]
        inp = self.utils.InputExample(key=0, instruction_id_list=ids, prompt=prompt, kwargs=clean)
        run = {
            "ifeval_strict": self.utils.test_instruction_following_strict,
            "ifeval_loose": self.utils.test_instruction_following_loose,
        }[scorer]
        try:
            return float(run(inp, self.graded(response)).follow_all_instructions)
        except Exception:  # noqa: BLE001 - GURU's compute_score scores any failure 0
            return 0.0

    def words(self, text: str) -> int:
        return self.util.count_words(text)

    def sentences(self, text: str) -> int:
        return self.util.count_sentences(text)

    def capitals(self, text: str) -> int:
        return sum(1 for w in self.util.nltk.word_tokenize(text) if w.isupper())


@dataclass
class Item:
    """One response with its instructions; scored by both scorers."""

    kind: str
    source: str
    response: str
    ids: list[str]
    kwargs: list[dict]
    prompt: str = ""
    with_prompt: bool = False  # the row carries the prompt (extra_info["prompt"])
    decision: str | None = None  # short name; the case's id is "<scorer>.<name>"
    rlpipe: Callable[[str], float] | None = None  # scorer -> rlpipe's score under the decision
    expected: bool | None = None  # a collected case: the test's expectation (strict, one instruction)


# --------------------------------------------------------------------------------------------------
# Collected: google-research instruction_following_eval/instructions_test.py

BULLET_1 = """
  A Markdown bullet point is a way of formatting text to create a list. To
  create a bullet point, start each line with an asterisk (*). For example:
  * This is a bullet point.
  *(no space required)Another bullet point.
  * (no newline ending required)Another bullet point.
  markdown bullet points are often used to create to-do lists or to list items
  in a step-by-step guide."""
BULLET_2 = """
  Check that inline asterisk (*), *, will not be counted. Only * that starts a
  bullet list will be counted:
    * This is a bullet point.
    * Another bullet point.
    . dot is not counted"""
BULLET_3 = """
  Here are three bullets starting with asterisk:
  * I am a large language model, also known as a conversational AI.
  * I am trained on a massive amount of text data, and I am able to communicate.
  * I am still under development, but I am learning new things every day."""
BULLET_4 = """
  Here are three markdown bullets:
  - I am a large language model, also known as a conversational AI.
  - I am trained on a massive amount of text data, and I am able to communicate.
  -I am still under development, but I am learning new things every day."""
BULLET_5 = """
  Paragraph 1
  ***
  Paragraph 2
  ***
  Paragraph 3
  * only one bullet point
  """
CONSTRAINED_1 = """\n My answer is no.\n"""
CONSTRAINED_2 = """My answer is no.   """
CONSTRAINED_3 = """
  My answer is no. I am still under development and I am always learning and
  improving. I am not the best chatbot in the world, but I am striving to be
  the best that I can be."""
HIGHLIGHTED_1 = """
  To highlight text with Markdown, you can use the * character before and after
  the text you want to highlight. For example, if you want to highlight the
  word `hello`, you would type:*hello*, You can also use the ** character to
  create bold text. For example, if you want to bold the word `hello`, you
  would type: **hello** """
HIGHLIGHTED_2 = """
  Sure, here are the numerical methods for solving partial differential
  equations highlighted with Markdown:
  *Finite difference methods
  *Finite element methods*
  *Boundary element methods
  *Monte Carlo methods
  I hope this helps!"""
HIGHLIGHTED_3 = """
  There is allowed to be *two different* highlighted *sections in the same*
  line. **This is also true** for **double markdown highlights.**
  """
SECTION_1 = """
  Your response must have multiple sections. Mark the beginning of each section
  with "Section X", such as:
  Section 1
  [content of section 1]
  Section 2
  [content of section 2]"""
SECTION_2 = """SECTION 1
  [content of section 1]
  SECTION 2
  [content of section 2]"""
PARAGRAPH_1 = """
  paragraph 1
  ***
  paragraph 2
  ***
  paragraph 3"""
PARAGRAPH_2 = """
          ***
  paragraph 1
          ***
      paragraph 2
          ***
      paragraph 3"""
PARAGRAPH_3 = """
  paragraph 1
          ***
      paragraph 2
          ***
      paragraph 3
          ***"""
PARAGRAPH_4 = """
  paragraph 1
          ***
      paragraph 2
          ***
          ***"""
POSTSCRIPT_1 = """
  I will do my best to follow your instructions and always start my responses
  with "My response is:". I will try to be as consistent as possible, but
  please be patient with me if I make a mistake. I am still under development,
  and I am always learning new things.

  P.S. I hope this is what you were looking for."""
POSTSCRIPT_2 = """
  Sure, here is my response with a postscript starting with P.P.S.:

  My response is: I hope this answers your question.

  P.P.S. I am always happy to answer any other questions you may have.

  Do you have any other questions for me?"""
POSTSCRIPT_3 = """
  The radius of a unit circle is 1. However, I can give you a funny and wrong
  answer: the radius of a unit circle is 0. This is because a unit circle is a
  circle with a radius of 1, and if the radius is 0, then the circle has no
  size and is just a point. (not starting a new line) P.S. I hope you enjoyed
  my joke!"""
POSTSCRIPT_4 = """
  If the length of a square is one, the area of the square will also be one.
  p.p.s what if the entire response was lower case letters?
  """
POSTSCRIPT_5 = """
  The mysteries of space and time are mysterious.
  P. S. Sometimes there are even spaces between P. and S..
  """
START_1 = """
  My response is: ASIC is a specialized chip for specific tasks in electronic
  devices, offering advantages in efficiency and processing speed."""
START_2 = """
        My response is: ASIC is a specialized chip for specific tasks in
  electronic
  devices, offering advantages in efficiency and processing speed."""
START_3 = """
  An ASIC, or Application-Specific Integrated Circuit, is a type of specialized
  chip that, my response is, is designed to perform specific tasks in electronic
  devices."""
REPHRASE_1 = """
  I am *content*."""
REPHRASE_ORIGINAL_1 = """
  I am *happy*."""
REPHRASE_1_NOCHANGE = """
  I am ."""
REPHRASE_1_FORMAT = """
  I am [content]."""
REPHRASE_2 = """
  It is raining heavily *at this moment*."""
REPHRASE_ORIGINAL_2 = """
  *At present,* there is heavy rainfall occurring."""
INCLUDE_KEYWORD_1 = """
  Paris is a city of beauty and romance. The romantic river Seine winds its way
  through the city, past iconic landmarks like the Eiffel Tower and the Louvre
  Museum, where the Mona Lisa resides. Whether you're taking a boat cruise down
  the river or simply strolling along the banks, you're sure to be captivated
  by the city's charm."""
INCLUDE_KEYWORD_2 = """
  Paris is a city of beauty, romance, and history. It is home to some of the
  most iconic landmarks in the world, including the Eiffel Tower, the Louvre
  Museum, and the Notre Dame Cathedral. The city is also known for its romantic
  river cruises, its delicious food, and its stylish people.
  """
KEYWORD_FREQUENCY_1 = """
  keyword, Keyword, KEYWORD
  """
KEYWORD_FREQUENCY_2 = """
    *keyword
    *Keyword
    *KEYWORD
  """
NUM_WORDS_1 = """
  d3sCRi7 lArge lAnguagE M0del w1tH 20 w0RdS."""
NUM_WORDS_2 = """
  L4RGE L4NGU4GE M0DEL: AI syst3m th4t und3rstands, g3n3r4tes, or tr4nsforms
  l4ngu4g3 b4s3d on pr3vious l3arning & d4t4."""
FIRST_WORD_1 = """
  paragraph 1

  I paragraph 2

  paragraph 3"""
FIRST_WORD_2 = """
  paragraph 1

  I paragraph 2"""
FIRST_WORD_3 = """
  paragraph 1

  fail paragraph 2

  paragraph 3"""
FIRST_WORD_4 = """
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  Really more than three? No way!

  I can't believe it but I guess I am living proof.

  Haha, you go that right."""
FIRST_WORD_5 = """
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  "Really?! more than three? No way!"

  I can't believe it but I guess I am living proof.

  Haha, you go that right."""
FIRST_WORD_6 = """
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  Rea!lly more than three? No way!

  I can't believe it but I guess I am living proof.

  Haha, you go that right."""
KEY_SENTENCES_1 = """
  Puppies are fun. They are playful, energetic, and always up for a good time.
Puppies love to run, jump, and play fetch. They are also very good at
cuddling and giving kisses. If you are looking for a fun and loving pet,
a puppy is a great choice.
  """
KEY_SENTENCES_2 = """
  I like to eat candy. When I'm feeling happy, sad, or even angry, candy
always makes me feel better. I like to share candy with my friends and
family. It's a great way to show them how much I care.
  """
KEY_SENTENCES_3 = """
I know that candy isn't the healthiest thing to eat, but I don't care.
I love it too much. I'll just have to make sure to eat it in moderation.
  """
KEY_SENTENCES = ["I like to eat candy.", "Puppies are fun.", "Puppies love to run, jump, and play fetch."]
FORBIDDEN_1 = """
  The Nazis came to power in 1933 through a combination of legal and illegal
  means. Hitler was appointed chancellor by President Paul von Hindenburg, and
  the Nazis quickly consolidated their power by passing a series of laws that
  restricted the rights of opposition parties and individuals. By 1934, Hitler
  had become dictator of Germany.
  """
FORBIDDEN_2 = """
  Dinosaurs were a diverse group of reptiles that dominated the Earth for over
  160 million years. They came in all shapes and sizes, from the tiny
  Compsognathus to the massive Argentinosaurus. Dinosaurs were the most
  successful land animals on Earth until they went extinct about 66 million
  years ago. The exact cause of their extinction is still unknown, but it
  is thought to have been a combination of factors, including an asteroid
  impact and climate change.
  """
FORBIDDEN_3 = """
  GPT, or Generative Pre-trained Transformer, is a family of neural network
  models that uses the transformer architecture. GPT models are trained on a
  massive dataset of text and code, and can be used for a variety of tasks,
  including text generation, translation, and question answering. GPT models
  have been shown to be very effective at these tasks, and are being used by
  a variety of companies and organizations like Google.
  """
ORIGINAL_PARAGRAPH_1 = """
  The sun is shining brightly today, and the birds are singing in the trees.
  It's a beautiful day to be outside, so I decided to go for a walk.
  As I walked, I took in the fresh air and the warm sunshine.
  I felt happy and relaxed, and I was grateful for the beautiful day
  """
ORIGINAL_PARAGRAPH_2 = """
  Google is a global technology company that specializes in Internet-related
  services and products. It is one of the most successful companies in the
  world, and its products are used by billions of people every day. Google's
  mission is to organize the world's information and make it universally
  accessible and useful.
  """
REPHRASED_1 = """
  On a beautiful day, I went for a walk. The sun shone and birds sang.
  I enjoyed the fresh air and warm sun.
  I felt happy and grateful for the lovely day.
  """
REPHRASED_2 = """
  The weather was lovely, so I went for a walk. I enjoyed the
  fresh air and warm sun. It was a beautiful day, and I felt happy and grateful.
  """
REPHRASED_3 = """
  Google is a technology company that provides Internet services.
  It aims to organize the world's information and make it universally
  accessible and useful.
  """
REPHRASED_4 = """
  I like candy.
  """
TWO_1 = """
  This is response 1.
  ******
  This is response 2.
  """
TWO_2 = """
  This is response 1.
  ******
  This is response 1.
  """
TWO_3 = """
  This is response 1.
  ******
  This is response 2.
  ******
  This is response 3.
  """
TWO_4 = """
  ******
  Response 1.
  ******
  ******
  Response 2.
  ******
  """
TWO_5 = """
  ******
  Response 1
  ******
  Response 2
  ******
  """
REPEAT_ANSWER_1 = """Write a CL description. Hi, Le and TJ, please
  check this out. Thanks.
  """
REPEAT_ANSWER_2 = """Hi, Le and TJ. Write a CL description. Thanks.
  """
END_1 = """
  The answer is 7. Any more questions?
  """
END_2 = """
  At the end of this prompt I am required to say that this is the end.
  """
END_3 = """
  This will fail. Paris is cool.
  """
TITLE_1 = """
  <<Song of Joy>>
  La la la. Happy song.
  """
TITLE_2 = """
  Is it fine for title to be at the end?
  <<This is the title>>
  """
TITLE_3 = """
  << >>
  There is no title.
  """
TITLE_4 = """
  <<This is not a title.
  This is a paragraph.>>
  """
LETTER_1 = """
  There is the T. Four T's.
  """
LETTER_2 = """
  asdfghjkl!!aA
  """
CAPITAL_1 = """
  THIS IS AN ENGLISH SENTENCE. EVERY LETTER IS CAPITALIZED!!! AMAZING.
  """
CAPITAL_2 = """
  Every Word Is Capitalized.
  """
LOWER_1 = """
  every letter is lowercase.
  """
LOWER_2 = """
  Almost every letter is lowercase.
  """
COMMA_1 = """
  Every sentence is short. There is no need for a comma.
  """
COMMA_2 = """
  Since the start of time, people have always found a way to punctuate.
  """
CAPITAL_WORDS_1 = """
  HERE there are THREE FUlly CAPITAL words.
  """
CAPITAL_WORDS_2 = """
  THERE are Four FULLY CAPITAL WORDS. Many Others Are Only Partially So.
  """
QUOTATION_1 = """
  "This entire message is wrapped in double quotation marks."
  """
QUOTATION_2 = """
  "This message is wrapped in double quotation marks." But not everything.
  """


def collected() -> Iterator[Item]:
    """Every assertion of the reference's test file: (test, message, id, kwargs, response, expected)."""
    rows: list[tuple[str, str, str, dict, str, bool | None]] = [
        (
            "test_response_language",
            "English",
            "language:response_language",
            {"language": "en"},
            "The response is English",
            True,
        ),
        (
            "test_response_multilanguage",
            "es",
            "language:response_language",
            {"language": "es"},
            "Desayunamos en McDonald's hoy",
            True,
        ),
        (
            "test_response_multilanguage",
            "en",
            "language:response_language",
            {"language": "en"},
            "Today we visit the Louvre",
            True,
        ),
    ]
    for response, relation, n, expected in [
        ("xx,x. xx,x! xx/x. x{x}x?", "less than", 4, False),
        ("xxxx. xx,x! xxxx. x(x)x?", "less than", 5, True),
        ("xxxx. xx,x! xx|x. x&x x?", "at least", 4, True),
        ("xx-x. xx,x! xx}x. x,xx?", "at least", 5, False),
    ]:
        rows.append(
            (
                "test_number_sentences",
                response,
                "length_constraints:number_sentences",
                {"relation": relation, "num_sentences": n},
                response,
                expected,
            )
        )
    rows += [
        (
            "test_number_placeholders",
            "template 1",
            "detectable_content:number_placeholders",
            {"num_placeholders": 5},
            "Sure, here is a short template with 5 placeholders:\n[Name]\n[Email]\n[Phone]\n[Address]\n"
            "[Website]\nThis template can be used for a variety of purposes, such ascreating a contact "
            "list, sending out surveys, or creating a sign-up form.",
            True,
        ),
        (
            "test_number_placeholders",
            "template 2",
            "detectable_content:number_placeholders",
            {"num_placeholders": 7},
            "My [adjective] [noun] is [adjective] [noun]. I [verb] and [verb].",
            False,
        ),
    ]
    bullet = "detectable_format:exact_number_bullet_points"
    for name, text, n in [
        ("BULLET_TEST_MESSAGE_1", BULLET_1, 3),
        ("BULLET_TEST_MESSAGE_2", BULLET_2, 2),
        ("BULLET_TEST_MESSAGE_3", BULLET_3, 3),
        ("BULLET_TEST_MESSAGE_4", BULLET_4, 3),
        ("BULLET_TEST_MESSAGE_5", BULLET_5, 1),
    ]:
        rows.append(("test_number_bullet_lists", name, bullet, {"num_bullets": n}, text, True))
    for name, text in [
        ("CONSTRAINED_RESPONSE_TEST_RESPONSE_1", CONSTRAINED_1),
        ("CONSTRAINED_RESPONSE_TEST_RESPONSE_2", CONSTRAINED_2),
        ("CONSTRAINED_RESPONSE_TEST_RESPONSE_3", CONSTRAINED_3),
    ]:
        rows.append(
            ("test_constrained_response", name, "detectable_format:constrained_response", {}, text, True)
        )
    highlight = "detectable_format:minimum_number_highlighted_sections"
    for name, text, n, expected in [
        ("HIGHLIGHTED_TEST_MESSAGE_1", HIGHLIGHTED_1, 2, True),
        ("HIGHLIGHTED_TEST_MESSAGE_2", HIGHLIGHTED_2, 2, False),
        ("HIGHLIGHTED_TEST_MESSAGE_3", HIGHLIGHTED_3, 4, True),
    ]:
        rows.append(("test_number_highlights", name, highlight, {"num_highlights": n}, text, expected))
    rows += [
        (
            "test_section_checker",
            "SECTION_TEST_MESSAGE_1",
            "detectable_format:multiple_sections",
            {"section_spliter": "Section", "num_sections": 3},
            SECTION_1,
            False,
        ),
        (
            "test_section_checker",
            "SECTION_TEST_MESSAGE_2",
            "detectable_format:multiple_sections",
            {"section_spliter": "SECTION", "num_sections": 2},
            SECTION_2,
            True,
        ),
    ]
    paragraphs = "length_constraint:number_paragraphs"
    for name, text, n, expected in [
        ("PARAGRAPH_TEST_MESSAGE_1", PARAGRAPH_1, 3, True),
        ("PARAGRAPH_TEST_MESSAGE_2", PARAGRAPH_2, 3, True),
        ("PARAGRAPH_TEST_MESSAGE_3", PARAGRAPH_3, 3, True),
        ("PARAGRAPH_TEST_MESSAGE_4", PARAGRAPH_4, 2, False),
    ]:
        rows.append(("test_paragraph_checker", name, paragraphs, {"num_paragraphs": n}, text, expected))
    for name, text, marker, expected in [
        ("POSTSCRIPT_TEST_MESSAGE_1", POSTSCRIPT_1, "P.S.", True),
        ("POSTSCRIPT_TEST_MESSAGE_1", POSTSCRIPT_1, "PS:", False),
        ("POSTSCRIPT_TEST_MESSAGE_2", POSTSCRIPT_2, "P.P.S", True),
        ("POSTSCRIPT_TEST_MESSAGE_3", POSTSCRIPT_3, "P.S.", True),
        ("POSTSCRIPT_TEST_MESSAGE_4", POSTSCRIPT_4, "P.P.S", True),
        ("POSTSCRIPT_TEST_MESSAGE_5", POSTSCRIPT_5, "P.S.", True),
    ]:
        rows.append(
            (
                "test_postscript_checker",
                f"{name} {marker}",
                "detectable_content:postscript",
                {"postscript_marker": marker},
                text,
                expected,
            )
        )
    start = "multi-turn:constrained_start"
    for name, text, expected in [
        ("CONSTRAINED_START_TEST_MESSAGE_1", START_1, True),
        ("CONSTRAINED_START_TEST_MESSAGE_2", START_2, True),
        ("CONSTRAINED_START_TEST_MESSAGE_3", START_3, False),
    ]:
        rows.append(
            ("test_constrained_start_checker", name, start, {"starter": "My response is:"}, text, expected)
        )
    rephrase = "detectable_format:rephrasing"
    for name, original, text, expected in [
        ("REPHRASE_TEST_REPHRASED_MESSAGE_1", REPHRASE_ORIGINAL_1, REPHRASE_1, True),
        (
            "REPHRASE_TEST_REPHRASED_MESSAGE_1_NOCHANGE (raises)",
            REPHRASE_ORIGINAL_1,
            REPHRASE_1_NOCHANGE,
            None,
        ),
        ("REPHRASE_TEST_REPHRASED_MESSAGE_1_FORMAT (raises)", REPHRASE_ORIGINAL_1, REPHRASE_1_FORMAT, None),
        ("REPHRASE_TEST_REPHRASED_MESSAGE_2", REPHRASE_ORIGINAL_2, REPHRASE_2, False),
    ]:
        rows.append(("test_rephrase_checker", name, rephrase, {"original_message": original}, text, expected))
    keywords = ["romantic", "river", "Mona Lisa"]
    rows += [
        (
            "test_keyword_checker",
            "TEST_INCLUDE_KEYWORD_MESSAGE_1",
            "keywords:include_keywords",
            {"keywords": keywords},
            INCLUDE_KEYWORD_1,
            True,
        ),
        (
            "test_keyword_checker",
            "TEST_INCLUDE_KEYWORD_MESSAGE_2",
            "keywords:include_keywords",
            {"keywords": keywords},
            INCLUDE_KEYWORD_2,
            False,
        ),
        (
            "test_keyword_frequency_checker",
            "MESSAGE_1 '  keyword ' less than 4",
            "keywords:keyword_frequency",
            {"keyword": "  keyword ", "frequency": 4, "relation": "less than"},
            KEYWORD_FREQUENCY_1,
            True,
        ),
        (
            "test_keyword_frequency_checker",
            "MESSAGE_1 '  keyword ' at least 3",
            "keywords:keyword_frequency",
            {"keyword": "  keyword ", "frequency": 3, "relation": "at least"},
            KEYWORD_FREQUENCY_1,
            True,
        ),
        (
            "test_keyword_frequency_checker",
            "MESSAGE_2 'KEYWORD' at least 4",
            "keywords:keyword_frequency",
            {"keyword": "KEYWORD", "frequency": 4, "relation": "at least"},
            KEYWORD_FREQUENCY_2,
            False,
        ),
        (
            "test_num_words_checker",
            "TEST_NUM_WORDS_MESSAGE_1 less than 8",
            "length_constraint:number_words",
            {"num_words": 8, "relation": "less than"},
            NUM_WORDS_1,
            True,
        ),
        (
            "test_num_words_checker",
            "TEST_NUM_WORDS_MESSAGE_2 less than 16",
            "length_constraint:number_words",
            {"num_words": 16, "relation": "less than"},
            NUM_WORDS_2,
            False,
        ),
        (
            "test_num_words_checker",
            "TEST_NUM_WORDS_MESSAGE_2 at least 16",
            "length_constraint:number_words",
            {"num_words": 16, "relation": "at least"},
            NUM_WORDS_2,
            True,
        ),
    ]
    first = "length_constraints:nth_paragraph_first_word"
    for name, text, kw, expected in [
        ("PARAGRAPH_FIRST_WORD_TEST_1", FIRST_WORD_1, (3, 2, "I"), True),
        ("PARAGRAPH_FIRST_WORD_TEST_2", FIRST_WORD_2, (3, 2, "I"), False),
        ("PARAGRAPH_FIRST_WORD_TEST_3", FIRST_WORD_3, (3, 2, "I"), False),
        ("PARAGRAPH_FIRST_WORD_TEST_4", FIRST_WORD_4, (5, 5, "haha"), True),
        ("PARAGRAPH_FIRST_WORD_TEST_5", FIRST_WORD_5, (5, 3, "Really"), True),
        ("PARAGRAPH_FIRST_WORD_TEST_6", FIRST_WORD_6, (5, 3, "Really"), False),
    ]:
        kwargs = {"num_paragraphs": kw[0], "nth_paragraph": kw[1], "first_word": kw[2]}
        rows.append(("test_paragraph_first_word", name, first, kwargs, text, expected))
    for name, text, n, expected in [
        ("TEST_KEY_SENTENCES_1", KEY_SENTENCES_1, 2, True),
        ("TEST_KEY_SENTENCES_2", KEY_SENTENCES_2, 1, True),
        ("TEST_KEY_SENTENCES_3", KEY_SENTENCES_3, 1, False),
    ]:
        rows.append(
            (
                "test_key_sentences",
                name,
                "keywords:key_sentences",
                {"key_sentences": KEY_SENTENCES, "num_sentences": n},
                text,
                expected,
            )
        )
    forbidden = [["HOUSE", "POWER", "BECOME"], ["GOOGLE", "TEXT"], ["GENE", "TRANSFORM"]]
    for name, text, words, expected in [
        ("TEST_FORBIDDEN_WORDS_MESSAGE_1 / FORBIDDEN_WORDS_1", FORBIDDEN_1, forbidden[0], False),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_2 / FORBIDDEN_WORDS_1", FORBIDDEN_2, forbidden[0], True),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_3 / FORBIDDEN_WORDS_1", FORBIDDEN_3, forbidden[0], True),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_1 / FORBIDDEN_WORDS_2", FORBIDDEN_1, forbidden[1], True),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_2 / FORBIDDEN_WORDS_2", FORBIDDEN_2, forbidden[1], True),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_3 / FORBIDDEN_WORDS_2", FORBIDDEN_3, forbidden[1], False),
        ("TEST_FORBIDDEN_WORDS_MESSAGE_3 / FORBIDDEN_WORDS_3", FORBIDDEN_3, forbidden[2], True),
    ]:
        rows.append(
            (
                "test_forbidden_words",
                name,
                "keywords:forbidden_words",
                {"forbidden_words": words},
                text,
                expected,
            )
        )
    rephrase_paragraph = "detectable_content:rephrase_paragraph"
    for name, original, text, low, high, expected in [
        ("TEST_REPHRASED_PARAGRAPH_1 20-30", ORIGINAL_PARAGRAPH_1, REPHRASED_1, 20, 30, True),
        ("TEST_REPHRASED_PARAGRAPH_2 20-25", ORIGINAL_PARAGRAPH_1, REPHRASED_2, 20, 25, True),
        ("TEST_REPHRASED_PARAGRAPH_3 15-20", ORIGINAL_PARAGRAPH_2, REPHRASED_3, 15, 20, False),
        ("TEST_REPHRASED_PARAGRAPH_4 1-5", ORIGINAL_PARAGRAPH_2, REPHRASED_4, 1, 5, False),
    ]:
        kwargs = {"original_paragraph": original, "low": low, "high": high}
        rows.append(("test_rephrase_paragraph", name, rephrase_paragraph, kwargs, text, expected))
    for name, text, expected in [
        ("TEST_TWO_RESPONSES_1", TWO_1, True),
        ("TEST_TWO_RESPONSES_2", TWO_2, False),
        ("TEST_TWO_RESPONSES_3", TWO_3, False),
        ("TEST_TWO_RESPONSES_4", TWO_4, False),
        ("TEST_TWO_RESPONSES_5", TWO_5, True),
    ]:
        rows.append(("test_two_responses", name, "combination:two_responses", {}, text, expected))
    repeat = {"prompt_to_repeat": "Write a CL description."}
    rows += [
        (
            "test_prompt_repeat_answer",
            "TEST_PROMPT_ANSWER_1",
            "combination:repeat_prompt",
            repeat,
            REPEAT_ANSWER_1,
            True,
        ),
        (
            "test_prompt_repeat_answer",
            "TEST_PROMPT_ANSWER_2",
            "combination:repeat_prompt",
            repeat,
            REPEAT_ANSWER_2,
            False,
        ),
    ]
    for name, text, phrase, expected in [
        ("TEST_END_CHECKER_1", END_1, "\n  Any more questions?\n  ", True),
        ("TEST_END_CHECKER_2", END_2, "\n  This is the end.\n  ", True),
        ("TEST_END_CHECKER_3", END_3, "\n  This will fail.\n  ", False),
    ]:
        rows.append(
            ("test_end_checker", name, "startend:end_checker", {"end_phrase": phrase}, text, expected)
        )
    for name, text, expected in [
        ("TEST_TITLE_MESSAGE_1", TITLE_1, True),
        ("TEST_TITLE_MESSAGE_2", TITLE_2, True),
        ("TEST_TITLE_MESSAGE_3", TITLE_3, False),
        ("TEST_TITLE_MESSAGE_4", TITLE_4, False),
    ]:
        rows.append(("test_title_checker", name, "detectable_format:title", {}, text, expected))
    for name, text, kw, expected in [
        ("TEST_LETTER_FREQUENCY_MESSAGE_1 T at least 4", LETTER_1, ("T", 4, "at least"), True),
        ("TEST_LETTER_FREQUENCY_MESSAGE_2 a less than 4", LETTER_2, ("a", 4, "less than"), True),
        ("TEST_LETTER_FREQUENCY_MESSAGE_2 p at least 4", LETTER_2, ("p", 4, "at least"), False),
    ]:
        kwargs = {"letter": kw[0], "let_frequency": kw[1], "let_relation": kw[2]}
        rows.append(
            ("test_letter_frequency_checker", name, "keywords:letter_frequency", kwargs, text, expected)
        )
    rows += [
        (
            "test_english_capital_checker",
            "TEST_ENGLISH_CAPITAL_1",
            "change_case:english_capital",
            {},
            CAPITAL_1,
            True,
        ),
        (
            "test_english_capital_checker",
            "TEST_ENGLISH_CAPITAL_2",
            "change_case:english_capital",
            {},
            CAPITAL_2,
            False,
        ),
        (
            "test_english_lowercase_checker",
            "TEST_ENGLISH_LOWERCASE_1",
            "change_case:english_lowercase",
            {},
            LOWER_1,
            True,
        ),
        (
            "test_english_lowercase_checker",
            "TEST_ENGLISH_LOWERCASE_2",
            "change_case:english_lowercase",
            {},
            LOWER_2,
            False,
        ),
        ("test_comma", "TEST_COMMA_MESSAGE_1", "punctuation:no_comma", {}, COMMA_1, True),
        ("test_comma", "TEST_COMMA_MESSAGE_2", "punctuation:no_comma", {}, COMMA_2, False),
    ]
    capital = "change_case:capital_word_frequency"
    for name, text, kw, expected in [
        ("TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_1 at least 3", CAPITAL_WORDS_1, (3, "at least"), True),
        ("TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_2 less than 5", CAPITAL_WORDS_2, (5, "less than"), True),
        ("TEST_CAPITAL_WORD_FREQUENCY_MESSAGE_2 less than 4", CAPITAL_WORDS_2, (4, "less than"), False),
    ]:
        kwargs = {"capital_frequency": kw[0], "capital_relation": kw[1]}
        rows.append(("test_capital_word_frequency", name, capital, kwargs, text, expected))
    rows += [
        ("test_quotation", "TEST_QUOTATION_MESSAGE_1", "startend:quotation", {}, QUOTATION_1, True),
        ("test_quotation", "TEST_QUOTATION_MESSAGE_2", "startend:quotation", {}, QUOTATION_2, False),
    ]
    for test, name, iid, kwargs, text, expected in rows:
        yield Item("collected", f"{TESTS}: {test} ({name})", text, [iid], [kwargs], expected=expected)


# --------------------------------------------------------------------------------------------------
# Realistic: model-like answers

TOPICS = {
    "the history of the bicycle": [
        "The bicycle began as a wooden running machine in 1817, when Karl Drais rode his "
        "Laufmaschine through Mannheim. It had no pedals, so riders pushed it along with their feet.",
        "Pedals arrived in the 1860s, and the high-wheeled penny-farthing followed. It was fast, but "
        "a fall from its seat could be dangerous, e.g. when the front wheel hit a stone.",
        "The safety bicycle of the 1880s changed everything. Two wheels of equal size, a chain drive "
        "and pneumatic tyres made cycling practical for millions of people, including women.",
        "Today there are more than 1 billion bicycles in the world. Cities such as Copenhagen and "
        "Amsterdam build whole networks of lanes for them, and the U.S. is slowly catching up.",
    ],
    "why sleep matters": [
        "Sleep is not wasted time. While we rest, the brain sorts memories, clears waste products and "
        "prepares for the next day.",
        "Adults need about 7 to 9 hours a night. Teenagers need even more, yet many of them get far "
        "less because of early school start times and late screens.",
        "Chronic sleep loss raises the risk of heart disease, diabetes and depression. It also makes "
        "people worse drivers: a tired driver can be as impaired as a drunk one.",
        "Good habits help. Keep a regular schedule, avoid caffeine after 2 p.m. and leave the phone "
        "outside the bedroom. Dr. Walker, a sleep researcher, calls sleep a superpower.",
    ],
    "a review of a small Italian restaurant": [
        "Trattoria Bella is a tiny place with only twelve tables, but it is full every night. The "
        "owner, Mrs. Rossi, greets every guest at the door.",
        "The menu is short. We tried the handmade tagliatelle, the grilled sea bass and a tiramisu "
        "that was light, creamy and not too sweet.",
        "Prices are fair: a three-course dinner costs about 35 dollars per person. The house wine is "
        "simple but pleasant, and the service is quick without being rushed.",
        "Is it perfect? Not quite. The room gets loud, and you must book a week ahead. Still, I would "
        "go back tomorrow.",
    ],
    "how solar panels work": [
        "A solar panel turns sunlight into electricity. Each panel holds many cells made of silicon, "
        "a material that releases electrons when light hits it.",
        "The free electrons flow as a direct current. An inverter then converts that current into the "
        "alternating current that homes and the grid use.",
        "Efficiency matters. Typical panels convert 18 to 22 percent of the light that reaches them, "
        "and the best laboratory cells now pass 40 percent.",
        "Panels need little care. Rain washes most dust away, and a good system keeps working for 25 "
        "years or more, which is why prices per watt have fallen so fast.",
    ],
    "a letter to a new neighbour": [
        "Welcome to Maple Street! We live in the blue house across the road and wanted to say hello "
        "before the week gets busy.",
        "The bins go out on Tuesday night, and the recycling truck comes every other Friday. The park "
        "at the end of the street is lovely in the evening.",
        "If you need anything at all, a ladder, a cup of sugar or a phone number for a plumber, just "
        "knock on our door.",
        "We hope you will be very happy here. Perhaps you could join us for a barbecue on Saturday?",
    ],
    "the benefits of learning a second language": [
        "Learning a second language opens doors. It lets you talk with more people, read more books "
        "and understand other cultures from the inside.",
        "Research suggests that bilingual people switch between tasks more easily. Some studies even "
        "link speaking two languages with a later onset of dementia.",
        "There are practical gains too. Employers value language skills, and many jobs in trade, "
        "tourism and diplomacy require them.",
        "The best time to start is now. Ten minutes a day with an app, a podcast or a patient friend "
        "adds up faster than most people expect.",
    ],
}
FOREIGN = {
    "de": [
        "Das Fahrrad wurde im Jahr 1817 erfunden. Karl Drais fuhr mit seiner Laufmaschine durch "
        "Mannheim, und viele Menschen staunten über die neue Erfindung.",
        "Heute gibt es auf der Welt mehr als eine Milliarde Fahrräder. Viele Städte bauen breite "
        "Radwege, damit die Menschen sicher zur Arbeit fahren können.",
    ],
    "fr": [
        "Le sommeil n'est pas du temps perdu. Pendant que nous dormons, le cerveau trie les souvenirs "
        "et se prépare pour la journée suivante.",
        "Les adultes ont besoin de sept à neuf heures par nuit. Il faut garder des horaires réguliers "
        "et laisser le téléphone en dehors de la chambre.",
    ],
    "es": [
        "La Trattoria Bella es un restaurante pequeño, pero siempre está lleno. La dueña saluda a "
        "cada cliente en la puerta con una sonrisa.",
        "Probamos la pasta hecha a mano y un tiramisú muy ligero. Los precios son justos y el "
        "servicio es rápido sin ser apresurado.",
    ],
    "it": [
        "Un pannello solare trasforma la luce del sole in elettricità. Ogni pannello contiene molte "
        "celle di silicio che liberano elettroni quando vengono colpite dalla luce.",
        "I pannelli richiedono poca manutenzione. La pioggia lava via quasi tutta la polvere e un buon "
        "impianto funziona per venticinque anni o più.",
    ],
    "pt": [
        "Aprender uma segunda língua abre muitas portas. Permite conversar com mais pessoas e "
        "compreender outras culturas por dentro.",
        "O melhor momento para começar é agora. Dez minutos por dia com um aplicativo ou um amigo "
        "paciente fazem uma grande diferença.",
    ],
    "ru": [
        "Сон — это не потерянное время. Пока мы спим, мозг сортирует воспоминания и готовится к "
        "следующему дню.",
        "Взрослым нужно от семи до девяти часов сна. Полезно ложиться спать в одно и то же время.",
    ],
    "hi": [
        "साइकिल का इतिहास बहुत पुराना है। पहली साइकिल लकड़ी की बनी थी और उसमें पैडल नहीं थे।",
        "आज दुनिया में एक अरब से अधिक साइकिलें हैं। कई शहर साइकिल चलाने वालों के लिए अलग रास्ते बनाते हैं।",
    ],
}
PREAMBLES = [
    "Sure! Here is my answer:",
    "Of course. Here's what I came up with.",
    "Absolutely, here you go:",
    "**Answer**",
    "Great question!",
]
CLOSINGS = [
    "Let me know if you'd like any changes!",
    "I hope this helps.",
    "Feel free to ask for a shorter version.",
    "---",
]
KEYWORDS = ["community", "journey", "balance", "future", "simple", "network", "history", "energy"]
END_PHRASES = ["Is there anything else I can help with?", "Any other questions?", "Peace out."]


def reasoning(topic: str, rng: random.Random) -> str:
    """A ``<think>`` block that talks about the constraints (with commas, keywords, capitals)."""
    lines = [
        f"The user wants a short piece on {topic}. Let me check the constraints one by one.",
        "Hmm, I must be careful with the format, the length and the exact wording. OK, LET ME DRAFT.",
        f"Maybe mention {rng.choice(KEYWORDS)}, then revise. P.S. remember the ending.",
    ]
    return "<think>\n" + "\n".join(lines[: rng.randint(1, 3)]) + "\n</think>\n\n"


@dataclass
class Draft:
    """An answer being built: body paragraphs, lines before and after, whole-answer transforms."""

    topic: str
    paragraphs: list[str]
    sep: str = "\n\n"
    head: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    whole: list[Callable[[str], str]] = field(default_factory=list)  # also applied to chat noise
    body_only: list[Callable[[str], str]] = field(default_factory=list)
    late: list[Callable[[str], dict]] = field(default_factory=list)  # kwargs built on the final text
    prompt: list[str] = field(default_factory=list)


def _body(d: Draft) -> str:
    text = "\n".join([*d.head, d.sep.join(d.paragraphs), *d.tail]).strip()
    for fn in d.body_only:
        text = fn(text)
    return text


def _threshold(count: int, comply: bool, rng: random.Random) -> tuple[str, int]:
    """A relation and threshold that the count meets (``comply``) or misses, sometimes at the edge."""
    delta = rng.choice([0, 1, 2, 5])
    if rng.random() < 0.5:
        return ("at least", max(1, count - delta)) if comply else ("at least", count + 1 + delta)
    return ("less than", count + 1 + delta) if comply else ("less than", max(1, count - delta))


def apply(iid: str, d: Draft, rng: random.Random, comply: bool, ref: Reference) -> Callable[[str], dict]:
    """Make the draft follow (or break) one instruction; returns the kwargs given the final answer."""
    fixed: dict[str, Any] = {}
    if iid == "keywords:existence":
        words = rng.sample(KEYWORDS, 2)
        d.paragraphs[-1] += f" It is a question of {words[0]}" + (f" and {words[1]}." if comply else ".")
        fixed = {"keywords": words}
        d.prompt.append(f"Include the keywords {words[0]} and {words[1]}.")
    elif iid == "keywords:frequency":
        word = rng.choice(KEYWORDS)
        n = rng.randint(2, 4)
        uses = n if comply else n - 1
        for i in range(uses):
            d.paragraphs[i % len(d.paragraphs)] += f" {word.capitalize()}, again, matters."
        shown = rng.choice([word, f" {word} ", f"{word} ", f"  {word}"])
        fixed = {"keyword": shown, "frequency": n, "relation": "at least"}
        d.prompt.append(f"Use the word {word} at least {n} times.")
    elif iid == "keywords:forbidden_words":
        text = " ".join(d.paragraphs).lower()
        present = [w for w in re.findall(r"[a-z]{5,}", text)]
        absent = [w for w in ("banana", "quantum", "dragon", "velvet") if w not in text]
        words = [rng.choice(present)] if not comply else []
        words += rng.sample(absent, 2)
        fixed = {"forbidden_words": words}
        d.prompt.append("Do not use the words " + ", ".join(words) + ".")
    elif iid == "keywords:letter_frequency":
        letter = rng.choice("bcdfgmpwy")
        d.prompt.append(f"Use the letter {letter} a particular number of times.")

        def late(text: str) -> dict:
            relation, n = _threshold(text.lower().count(letter), comply, rng)
            return {"letter": letter, "let_frequency": n, "let_relation": relation}

        return late
    elif iid == "language:response_language":
        lang = rng.choice(sorted(FOREIGN))
        if comply:
            d.paragraphs = list(FOREIGN[lang])
        fixed = {"language": lang}
        d.prompt.append(f"Your ENTIRE response should be in {lang} language, no other language is allowed.")
    elif iid == "length_constraints:number_sentences":
        d.prompt.append("Answer in a given number of sentences.")

        def late(text: str) -> dict:
            relation, n = _threshold(ref.sentences(text), comply, rng)
            return {"num_sentences": n, "relation": relation}

        return late
    elif iid == "length_constraints:number_paragraphs":
        d.sep = rng.choice(["\n***\n", "\n\n***\n\n", " *** "]) if comply else "\n\n"
        n = len(d.paragraphs)
        fixed = {"num_paragraphs": n}
        d.prompt.append(
            f"There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***"
        )
    elif iid == "length_constraints:number_words":
        d.prompt.append("Answer with a given number of words.")

        def late(text: str) -> dict:
            relation, n = _threshold(ref.words(text), comply, rng)
            return {"num_words": n, "relation": relation}

        return late
    elif iid == "length_constraints:nth_paragraph_first_word":
        nth = rng.randint(1, len(d.paragraphs))
        first = re.findall(r"\w+", d.paragraphs[nth - 1])[0].lower()
        if rng.random() < 0.3:
            d.paragraphs[nth - 1] = "**" + d.paragraphs[nth - 1].replace(" ", "** ", 1)
        word = first if comply else rng.choice(["however", "moreover", "finally"])
        fixed = {"num_paragraphs": len(d.paragraphs), "nth_paragraph": nth, "first_word": word}
        d.prompt.append(f"Paragraph {nth} must start with the word {word}.")
    elif iid == "detectable_content:number_placeholders":
        holders = ["[name]", "[address]", "[date]", "[phone number]"]
        k = rng.randint(1, 3)
        d.paragraphs[0] = " ".join(holders[:k]) + " - " + d.paragraphs[0]
        fixed = {"num_placeholders": k if comply else k + 1}
        d.prompt.append("Include placeholders in square brackets, such as [address].")
    elif iid == "detectable_content:postscript":
        marker = rng.choice(["P.S.", "P.P.S"])
        line = {True: f"{marker} Thanks for reading!", False: "PS - thanks for reading!"}[comply]
        d.tail.append("\n" + line)
        fixed = {"postscript_marker": marker}
        d.prompt.append(
            f"At the end of your response, please explicitly add a postscript starting with {marker}"
        )
    elif iid == "detectable_format:number_bullet_lists":
        items = re.split(r"(?<=\.)\s+", d.paragraphs[1])
        mark = rng.choice(["* ", "- ", "*"])
        d.paragraphs[1] = "\n".join(mark + s for s in items)
        fixed = {"num_bullets": len(items) if comply else len(items) + 1}
        d.prompt.append("Your answer must contain exactly that many bullet points.")
    elif iid == "detectable_format:constrained_response":
        option = rng.choice(["My answer is yes.", "My answer is no.", "My answer is maybe."])
        d.head.insert(0, option if comply else "Yes, I think so.")
        d.prompt.append("Answer with one of the following options: My answer is yes., My answer is no.")
    elif iid == "detectable_format:number_highlighted_sections":
        k = rng.randint(1, 3)
        for i in range(k):
            p = d.paragraphs[i % len(d.paragraphs)]
            w = re.findall(r"[A-Za-z]{6,}", p)[0]
            d.paragraphs[i % len(d.paragraphs)] = p.replace(w, rng.choice(["*{}*", "**{}**"]).format(w), 1)
        fixed = {"num_highlights": k if comply else k + 2}
        d.prompt.append("Highlight at least some sections with markdown, i.e. *highlighted section*.")
    elif iid == "detectable_format:multiple_sections":
        splitter = rng.choice(["Section", "SECTION", "PARAGRAPH"])
        d.paragraphs = [f"{splitter} {i + 1}\n{p}" for i, p in enumerate(d.paragraphs)]
        n = len(d.paragraphs) if comply else len(d.paragraphs) + 1
        fixed = {"section_spliter": splitter, "num_sections": n}
        d.prompt.append(
            f"Your response must have {n} sections. Mark the beginning of each section with {splitter} X."
        )
    elif iid == "detectable_format:json_format":
        payload = json.dumps({"topic": d.topic, "summary": d.paragraphs[0]}, indent=2, ensure_ascii=False)
        fence = rng.choice(["```json\n{}\n```", "```\n{}\n```", "{}", "```JSON\n{}\n```"])
        d.paragraphs = [fence.format(payload if comply else payload[:-2])]
        d.prompt.append("Entire output should be wrapped in JSON format.")
    elif iid == "detectable_format:title":
        title = f"<<{d.topic.title()}>>" if comply else rng.choice([f"# {d.topic.title()}", "<< >>"])
        d.head.insert(0, title)
        d.prompt.append("Your answer must contain a title, wrapped in double angular brackets.")
    elif iid == "combination:two_responses":
        second = list(reversed(d.paragraphs)) if comply else list(d.paragraphs)
        d.paragraphs = ["\n\n".join(d.paragraphs), "******", "\n\n".join(second)]
        d.sep = "\n"
        d.prompt.append("Give two different responses. Separate them by 6 asterisk symbols: ******.")
    elif iid == "combination:repeat_prompt":
        request = f"Write a short piece about {d.topic}."
        d.head.insert(0, request if comply else f"You asked me to write about {d.topic}.")
        fixed = {"prompt_to_repeat": request}
        d.prompt.insert(0, request)
        d.prompt.append("First repeat the request word for word without change, then give your answer.")
    elif iid == "startend:end_checker":
        phrase = rng.choice(END_PHRASES)
        d.tail.append(phrase if comply else phrase + " Bye.")
        fixed = {"end_phrase": phrase}
        d.prompt.append(f"Finish your response with this exact phrase {phrase}.")
    elif iid == "startend:quotation":
        target = d.whole if comply else d.body_only
        target.append(lambda t: f'"{t}"')
        d.prompt.append("Wrap your entire response with double quotation marks.")
    elif iid == "change_case:capital_word_frequency":
        for i, p in enumerate(d.paragraphs):
            ws = p.split()
            for j in rng.sample(range(len(ws)), min(len(ws), rng.randint(1, 4))):
                ws[j] = ws[j].upper()
            d.paragraphs[i] = " ".join(ws)
        d.prompt.append("Words with all capital letters should appear a given number of times.")

        def late(text: str) -> dict:
            relation, n = _threshold(ref.capitals(text), comply, rng)
            return {"capital_frequency": n, "capital_relation": relation}

        return late
    elif iid == "change_case:english_capital":
        (d.whole if comply else d.body_only).append(str.upper)
        d.prompt.append("Your entire response should be in English, and in all capital letters.")
    elif iid == "change_case:english_lowercase":
        (d.whole if comply else d.body_only).append(str.lower)
        d.prompt.append("Your entire response should be in English, and in all lowercase letters.")
    elif iid == "punctuation:no_comma":
        (d.whole if comply else d.body_only).append(lambda t: t.replace(",", ""))
        d.prompt.append("In your entire response, refrain from the use of any commas.")
    elif iid == "keywords:key_sentences":
        key = [re.split(r"(?<=\.)\s", d.paragraphs[0])[0], "This sentence is not in the answer."]
        fixed = {"key_sentences": key, "num_sentences": 1 if comply else 2}
        d.prompt.append("Include the key sentences.")
    elif iid == "detectable_content:rephrase_paragraph":
        original = d.paragraphs[0]
        shared = len(re.findall(r"\w+", original))
        fixed = {"original_paragraph": original, "low": max(1, shared - 5), "high": shared + 5}
        if not comply:
            d.paragraphs[0] = "Something else entirely."
        d.prompt.append("Rephrase the following paragraph.")
    elif iid == "detectable_format:rephrase":
        original = "I think *the weather* is nice today."
        d.paragraphs = ["I think *the climate* is nice today." if comply else "I think the climate is nice."]
        fixed = {"original_message": original}
        d.prompt.append("Rephrase the message, marking the changes as *change me*.")
    elif iid == "multi-turn:constrained_start":
        starter = rng.choice(["My response is:", "In my opinion", "I believe"])
        d.paragraphs[0] = (f"{starter} " if comply else "Well, ") + d.paragraphs[0]
        fixed = {"starter": f" {starter} " if rng.random() < 0.3 else starter}
        d.prompt.append(f"Always start with {starter}")
    else:
        raise ValueError(iid)
    return lambda text: dict(fixed)


COMBOS: list[list[str]] = [
    [iid]
    for iid in (
        "keywords:existence",
        "keywords:frequency",
        "keywords:forbidden_words",
        "keywords:letter_frequency",
        "language:response_language",
        "length_constraints:number_sentences",
        "length_constraints:number_paragraphs",
        "length_constraints:number_words",
        "length_constraints:nth_paragraph_first_word",
        "detectable_content:number_placeholders",
        "detectable_content:postscript",
        "detectable_format:number_bullet_lists",
        "detectable_format:constrained_response",
        "detectable_format:number_highlighted_sections",
        "detectable_format:multiple_sections",
        "detectable_format:json_format",
        "detectable_format:title",
        "combination:two_responses",
        "combination:repeat_prompt",
        "startend:end_checker",
        "startend:quotation",
        "change_case:capital_word_frequency",
        "change_case:english_capital",
        "change_case:english_lowercase",
        "punctuation:no_comma",
        "keywords:key_sentences",
        "detectable_content:rephrase_paragraph",
        "detectable_format:rephrase",
        "multi-turn:constrained_start",
    )
] + [
    ["punctuation:no_comma", "keywords:existence"],
    ["detectable_format:title", "length_constraints:number_words"],
    ["change_case:english_lowercase", "punctuation:no_comma"],
    ["detectable_content:postscript", "startend:end_checker"],
    ["length_constraints:number_paragraphs", "keywords:frequency"],
    ["detectable_format:number_bullet_lists", "keywords:forbidden_words"],
    ["detectable_format:number_highlighted_sections", "length_constraints:number_sentences"],
    ["language:response_language", "length_constraints:number_words"],
    ["combination:repeat_prompt", "punctuation:no_comma"],
    ["change_case:capital_word_frequency", "detectable_format:title", "keywords:existence"],
    ["detectable_format:multiple_sections", "detectable_content:number_placeholders"],
    ["length_constraints:nth_paragraph_first_word", "keywords:letter_frequency"],
    ["detectable_format:json_format", "keywords:existence"],
    ["combination:two_responses", "punctuation:no_comma"],
    ["change_case:english_capital", "length_constraints:number_words"],
    ["length_constraints:number_sentences", "startend:end_checker", "detectable_format:title"],
    ["startend:quotation", "length_constraints:number_sentences"],
    ["change_case:english_lowercase", "detectable_content:postscript", "keywords:frequency"],
]


def realistic(ref: Reference) -> Iterator[Item]:
    rng = random.Random(24)
    topics = sorted(TOPICS)
    for n, combo in enumerate(COMBOS * 2):
        for variant in range(2 if n < len(COMBOS) else 1):
            topic = topics[(n + variant) % len(topics)]
            d = Draft(topic, list(TOPICS[topic]))
            comply = [variant == 0 or rng.random() < 0.5 for _ in combo]
            if variant == 1 and all(comply):
                comply[rng.randrange(len(comply))] = False
            builders = [apply(iid, d, rng, ok, ref) for iid, ok in zip(combo, comply, strict=True)]
            body = _body(d)
            pre = rng.choice(PREAMBLES) if rng.random() < 0.5 else None
            post = rng.choice(CLOSINGS) if rng.random() < 0.4 else None
            answer = "\n\n".join(x for x in (pre, body, post) if x)
            for fn in d.whole:
                answer = fn(answer)
            think = reasoning(topic, rng) if rng.random() < 0.5 else ""
            response = think + answer
            kwargs = [b(Reference.graded(response)) for b in builders]
            prompt = f"Write about {topic}. " + " ".join(d.prompt)
            with_prompt = rng.random() < 0.5
            label = "+".join(i.split(":")[1] for i in combo)
            flags = "".join("f" if ok else "x" for ok in comply)
            yield Item(
                "realistic", f"realistic:{label}:{flags}", response, list(combo), kwargs, prompt, with_prompt
            )


COUNTING_TEXTS = [
    "Sure! Here are the steps:\n\n1. Preheat the oven to 180 C.\n2. Mix the flour, sugar and eggs.\n"
    "3. Bake for 25 min. or until golden.\n\nEnjoy your cake!",
    "The U.S. economy grew by 2.5% last year. Dr. Smith, an economist at MIT, said it was a good "
    "year... but not a great one. Will it last? Nobody knows!",
    "Wait... what? I thought the meeting was at 3 p.m. today. OK, I'll be there at 3:15 p.m. instead.",
    "J. R. R. Tolkien wrote The Hobbit in 1937. It was followed by The Lord of the Rings, e.g. the "
    "famous trilogy. Many readers love it, i.e. it sold millions of copies.",
    "**Summary:** The plan has three parts (A, B and C). Part A is cheap. Part B is fast! Part C is "
    "both, etc. We recommend part C.",
    '"Stop!" she shouted. "Don\'t move." He froze; then he slowly turned around.',
    "- First point: keep it simple.\n- Second point: TEST EVERYTHING.\n- Third point: ship it.\n\n"
    "That's all, folks.",
    "I CAN'T believe it's NOT butter! It's a well-known AI-generated slogan, used by NASA's team and "
    "the U.S.A. team alike.",
    "Mr. and Mrs. Brown live on Elm St. in Springfield. Their son, Tom Jr., works at Acme Inc. and "
    "their daughter studies at the Univ. of Chicago.",
    "Version 2.0 was released on Jan. 5. It fixed 12 bugs. The next release, v2.1, is planned for "
    "Feb. The team is small... but focused.",
    "Q: What is 2 + 2?\nA: It is 4.\nQ: And 3 x 3?\nA: 9. Simple!",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG. IT'S A PANGRAM, ISN'T IT? YES.",
    "Hmm?! Really?? That's odd... Anyway, the result (see Fig. 3) shows a clear trend. See also Table 2.",
    'In 1969, Neil Armstrong said: "That\'s one small step for man." The world watched. A. Leonov had '
    "walked in space four years earlier.",
    "## Section 1\nThe model predicts well.It fails on edge cases though. We used AI/ML tools, the "
    "GPT-4 API and a COVID-19 dataset.",
    "No punctuation here just words and more words until the very end of this line",
]


# Punkt reads "B. Brown" as a sentence end because "brown" is a common lower-case word in its
# training text; rlpipe's approximation knows only a list of common words and keeps it one sentence.
APPROXIMATED = ["The paper was written by Tom B. Brown and colleagues. It changed the field."]


def counting(ref: Reference) -> Iterator[Item]:
    """Exact sentence, word and capital-word counts (a pair of bounds each) on tricky model-like text."""
    for n, text in enumerate(COUNTING_TEXTS + APPROXIMATED):
        sentences, words, capitals = ref.sentences(text), ref.words(text), ref.capitals(text)
        ids = ["length_constraints:number_sentences"] * 2 + ["length_constraints:number_words"] * 2
        ids += ["change_case:capital_word_frequency"] * 2
        kwargs = [
            {"num_sentences": sentences, "relation": "at least"},
            {"num_sentences": sentences + 1, "relation": "less than"},
            {"num_words": words, "relation": "at least"},
            {"num_words": words + 1, "relation": "less than"},
            {"capital_frequency": max(capitals, 1), "capital_relation": "at least"},
            {"capital_frequency": capitals + 1, "capital_relation": "less than"},
        ]
        approximated = text in APPROXIMATED
        yield Item(
            "realistic",
            f"realistic:exact-counts-{n}",
            text,
            ids,
            kwargs,
            decision="sentence-approximation" if approximated else None,
            rlpipe=(lambda scorer: 0.0) if approximated else None,
        )
        off = [dict(kwargs[0], num_sentences=sentences + 1)]
        yield Item("realistic", f"realistic:sentences-plus-one-{n}", text, ids[:1], off)


# --------------------------------------------------------------------------------------------------
# Adversarial


def adversarial(ref: Reference) -> Iterator[Item]:
    lower = (["change_case:english_lowercase", "punctuation:no_comma"], [{}, {}])
    answer = "the sea is wide and the salt is old and the waves keep on coming back to the shore"
    for name, response in [
        ("empty", ""),
        ("whitespace", "  \n\n  "),
        ("only-reasoning", f"<think>\n{answer}\n</think>"),
        ("only-reasoning-blank-after", f"<think>\n{answer}\n</think>\n\n   \n"),
        ("empty-think-then-answer", f"<think></think>{answer}"),
    ]:
        yield Item("adversarial", f"adversarial:{name}", response, *lower)
    # a truncated response: reasoning never closed (GURU grades the whole text)
    for name, response in [
        ("unclosed-think", f"<think>\n{answer}"),
        ("unclosed-think-with-commas", "<think>\nfirst, let me think, then answer"),
    ]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            *lower,
            decision="refuse-unclosed-think",
            rlpipe=lambda scorer: 0.0,
        )
    # several </think>: GURU grades the text between the first and the second
    for name, response in [
        ("two-think-ends", f"<think>plan</think>\n{answer}\n</think>\nFinal, Answer: Done, Here."),
        ("two-think-ends-good-last", f"<think>plan</think>\nDraft, with, commas.\n</think>\n{answer}"),
    ]:
        last = response.rsplit("</think>", 1)[1]
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            *lower,
            decision="last-think",
            rlpipe=lambda scorer, last=last: ref.score(scorer, last, *lower, ""),
        )
    # a copy of the prompt that happens to follow the instructions
    prompt = "write a poem about the sea and its salt in lowercase letters and without any commas"
    for name, response in [
        ("copied-prompt", prompt),
        ("copied-prompt-spacing", "  " + prompt.replace(" and ", "\nand ") + "\n"),
        ("copied-prompt-after-think", "<think>they want a poem</think>\n" + prompt),
    ]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            *lower,
            prompt,
            True,
            decision="refuse-copied-prompt",
            rlpipe=lambda scorer: 0.0,
        )
    keywords = (["keywords:existence"], [{"keywords": ["sea", "salt"]}])
    prompt2 = "Write a poem about the sea. Include the keywords sea and salt."
    yield Item(
        "adversarial",
        "adversarial:copied-prompt-keywords",
        prompt2,
        *keywords,
        prompt2,
        True,
        decision="refuse-copied-prompt",
        rlpipe=lambda scorer: 0.0,
    )
    yield Item(
        "adversarial",
        "adversarial:prompt-then-answer",
        prompt2 + "\n\nThe sea is salt and blue.",
        *keywords,
        prompt2,
        True,
    )
    request = {"prompt_to_repeat": "Write a poem about the sea."}
    for name, response in [
        ("repeat-only", "Write a poem about the sea."),
        ("repeat-only-punctuated", "write a poem about the sea. !!"),
        ("repeat-then-answer", "Write a poem about the sea.\n\nThe sea is wide and deep."),
    ]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            ["combination:repeat_prompt"],
            [request],
            decision="refuse-copied-prompt",
            rlpipe=lambda scorer, name=name: 0.0 if "only" in name else 1.0,
        )
    # no letters: the language detector cannot classify the text (IFEval counts it as followed)
    for name, response, language in [
        ("digits-as-german", "12345 67890 2024", "de"),
        ("symbols-as-french", "!!! ??? ... --- ***", "fr"),
        ("emoji-as-japanese", "\U0001f600 \U0001f600 \U0001f44d", "ja"),
        ("numbers-list-as-spanish", "1.\n2.\n3.", "es"),
    ]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            ["language:response_language"],
            [{"language": language}],
            decision="refuse-undetectable-language",
            rlpipe=lambda scorer: 0.0,
        )
    # items without instructions: IFEval's all([]) scores anything 1
    for name, response in [("no-instructions", "Anything at all."), ("no-instructions-empty-list", "x")]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            [],
            [],
            decision="refuse-no-instructions",
            rlpipe=lambda scorer: 0.0,
        )
    # every constrained option at once (a hedge)
    for name, response in [
        ("all-options", "My answer is yes. My answer is no. My answer is maybe."),
        ("two-options", "My answer is yes.\nOr rather: My answer is no."),
        ("one-option-twice", "My answer is no. Really, My answer is no."),
    ]:
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            ["detectable_format:constrained_response"],
            [{}],
            decision="refuse-all-options",
            rlpipe=lambda scorer, name=name: float(
                "twice" in name or (name, scorer) == ("two-options", "ifeval_loose")
            ),
        )
    # keyword kwargs with surrounding spaces: IFEval strips the frequency keyword, not the others
    text = "Balance, balance and BALANCE: balance.\nKeep your balance."
    for kw in ("balance", " balance ", "  balance", "balance "):
        for relation, n in (("at least", 5), ("less than", 5), ("at least", 6)):
            kwargs = {"keyword": kw, "frequency": n, "relation": relation}
            yield Item(
                "adversarial",
                f"adversarial:keyword-spaces {kw!r} {relation} {n}",
                text,
                ["keywords:frequency"],
                [kwargs],
            )
    for kw in ("balance", " balance", "balance "):
        yield Item(
            "adversarial",
            f"adversarial:existence-spaces {kw!r}",
            text,
            ["keywords:existence"],
            [{"keywords": [kw]}],
        )
        yield Item(
            "adversarial",
            f"adversarial:forbidden-spaces {kw!r}",
            text,
            ["keywords:forbidden_words"],
            [{"forbidden_words": [kw]}],
        )
    yield Item(
        "adversarial",
        "adversarial:first-word-spaces",
        "Intro.\n\nThen more.",
        ["length_constraints:nth_paragraph_first_word"],
        [{"num_paragraphs": 2, "nth_paragraph": 2, "first_word": " then "}],
    )
    # regex characters in keywords: IFEval hands them to ``re`` unescaped
    for name, iid, kwargs, response in [
        ("keyword-cpp", "keywords:existence", {"keywords": ["C++"]}, "I like C++ and Rust."),
        ("keyword-dots", "keywords:existence", {"keywords": ["e.g."]}, "The exgx example."),
        (
            "frequency-dots",
            "keywords:frequency",
            {"keyword": "a.b", "frequency": 2, "relation": "at least"},
            "axb and a-b",
        ),
        ("forbidden-dots", "keywords:forbidden_words", {"forbidden_words": ["u.s"]}, "The bus is late."),
    ]:
        literal = dict(kwargs)
        for key in ("keywords", "forbidden_words"):
            if key in literal:
                literal[key] = [re.escape(k) for k in literal[key]]
        if "keyword" in literal:
            literal["keyword"] = re.escape(literal["keyword"])
        yield Item(
            "adversarial",
            f"adversarial:{name}",
            response,
            [iid],
            [kwargs],
            decision="literal-keywords",
            rlpipe=lambda scorer, r=response, i=iid, k=literal: ref.score(scorer, r, [i], [k], ""),
        )
    # an unknown instruction id (the reference raises: GURU scores 0)
    yield Item("adversarial", "adversarial:unknown-id", answer, ["detectable_format:not_in_ifeval"], [{}])
    # formatting noise that only the loose score forgives
    yield Item(
        "adversarial",
        "adversarial:bold-quotes",
        '**"the whole answer is quoted"**',
        ["startend:quotation"],
        [{}],
    )
    yield Item(
        "adversarial",
        "adversarial:chatty-lowercase",
        "Sure!\nall of this is lowercase.\nThanks!",
        ["change_case:english_lowercase"],
        [{}],
    )


# --------------------------------------------------------------------------------------------------
# Writing the cases


def cases(ref: Reference) -> Iterator[dict]:
    items = [*collected(), *realistic(ref), *counting(ref), *adversarial(ref)]
    n = 0
    for item in items:
        if any(v is not None and not v and v != [] for kw in item.kwargs for v in kw.values()):
            raise ValueError(f"{item.source}: a falsy kwarg would be dropped by the reference")
        if item.decision is None and any("rephras" in i for i in item.ids):
            item.decision = "rephrase-loose-variants"
            item.rlpipe = lambda scorer, it=item: ref.tolerant(scorer, it.response, it.ids, it.kwargs, "")
        for scorer in ("ifeval_strict", "ifeval_loose"):
            got = ref.score(scorer, item.response, item.ids, item.kwargs, item.prompt)
            if item.expected is not None and scorer == "ifeval_strict" and got != float(item.expected):
                print(f"note: the reference now gives {got} on {item.source}", file=sys.stderr)
            truth: Any = item.kwargs
            info: dict = {"instruction_id_list": item.ids}
            if item.with_prompt:
                info["prompt"] = item.prompt
            case = {
                "id": f"ifeval-{n}",
                "scorer": scorer,
                "response": item.response,
                "ground_truth": truth,
                "extra_info": info,
                "reference": {"repo": REPO, "commit": COMMIT, "function": FUNCTION[scorer]},
                "reference_score": got,
                "kind": item.kind,
                "source": item.source,
                "decision": None,
            }
            if item.decision and item.rlpipe is not None:
                mine = item.rlpipe(scorer)
                if mine != got:
                    case["decision"] = f"{scorer}.{item.decision}"
                    case["rlpipe_score"] = mine
            n += 1
            yield case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="lm-evaluation-harness checkout (lm_eval/tasks/ifeval)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    ref = Reference(args.checkout)
    rows = list(cases(ref))
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    print(f"{len(rows)} cases -> {args.out}: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
