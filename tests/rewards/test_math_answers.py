"""Math and GSM8K scorers."""

import pytest

from rlpipe.rewards import math_answers, score


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        (r"The answer is \boxed{\frac{1}{2}}.", "1/2"),
        (r"\boxed{\dfrac{1}{2}}", r"\frac12"),
        (r"<think>maybe \boxed{3}</think> so \boxed{0.5}", r"\frac{1}{2}"),
        (r"\boxed{x = 5}", "5"),
        (r"\boxed{90^\circ}", "90"),
        (r"\boxed{1,000}", "1000"),
        (r"\boxed{\text{(B)}}", r"\text{(B)}"),
        (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt{2}}{2}"),
        (r"\boxed{5.0}", r"\boxed{5}"),
        (r"\boxed{42} and some trailing words.", "The total is 6*7 = 42\n#### 42"),
    ],
)
def test_math_positive(response: str, truth: str) -> None:
    assert score("math", response, truth) == 1.0


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        (r"<think>\boxed{7}</think> I am not sure.", "7"),  # the box is inside reasoning only
        (r"<think>unfinished \boxed{7}", "7"),  # truncated reasoning has no answer
        (r"\boxed{7} wait, actually \boxed{8}", "7"),  # the LAST box counts
        (r"\boxed{\frac{1}{3}}", "0.33"),
        ("the answer is 7", "7"),  # no box
        (r"\boxed{}", "0"),
        (r"\boxed{\frac{1}{2}", "1/2"),  # unclosed
    ],
)
def test_math_negative(response: str, truth: str) -> None:
    assert score("math", response, truth) == 0.0


def test_math_symbolic_uses_math_verify() -> None:
    # Equivalent but differently written: only the symbolic step (math-verify, a hard dependency) sees it.
    assert score("math", r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}") == 1.0
    assert score("math", r"\boxed{\pi}", r"\pi") == 1.0


def test_math_verify_failure_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> object:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(math_answers, "_math_verify", lambda: (boom, boom))
    assert score("math", r"\boxed{0.5}", r"\frac{1}{2}") == 1.0
    assert score("math", r"\boxed{\sqrt{2}/2}", r"\frac{\sqrt{2}}{2}") == 0.0


def test_math_never_raises_on_garbage() -> None:
    for junk in ["", "\\boxed{" * 50, "}}}}", "\\boxed{\\frac{1}{0}}", "\x00\\boxed{\x00}"]:
        assert score("math", junk, "1") in (0.0, 1.0)


def test_math_list_of_acceptable_answers() -> None:
    assert score("math", r"\boxed{0.5}", ["1/3", r"\frac{1}{2}"]) == 1.0
    assert score("math", r"\boxed{0.25}", ("1/3", "1/2")) == 0.0


def test_gsm8k() -> None:
    truth = "She has 3 + 4 = 7 apples.\n#### 7"
    assert score("gsm8k", "so #### 7", truth) == 1.0
    assert score("gsm8k", r"\boxed{7}", truth) == 1.0
    assert score("gsm8k", "#### 1,234", "#### 1234") == 1.0
    assert score("gsm8k", "#### $18", "18") == 1.0
    assert score("gsm8k", "#### 7 \n then #### 8", truth) == 0.0
    assert score("gsm8k", "The answer is 7", truth) == 0.0  # no "last number" fallback
    assert score("gsm8k", "<think>#### 7</think> no idea", truth) == 0.0


def test_explosive_input_in_worker_thread_does_not_hang() -> None:
    import threading
    import time

    out: list[float] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: out.append(score("math", r"\boxed{9^{9^{9^{9}}}}", "2")))
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive() and out == [0.0]
    assert time.monotonic() - start < 10
    assert math_answers._explosive(r"2^{100000}") and not math_answers._explosive(r"2^{10}")


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        # several boxes that together are the answer (the defect a): sets and pairs boxed one by one
        (r"The solutions are $x = \boxed{2}$ and $x = \boxed{3}$.", "2, 3"),
        (r"The solutions are $\boxed{3}$ or $\boxed{2}$.", r"\{2, 3\}"),
        (r"**Final Answer**" "\n" r"\boxed{(1, 2)}, \boxed{(3, 4)}", "(1, 2), (3, 4)"),
        (r"$\boxed{-1}$, $\boxed{1}$", r"\pm 1"),
        # the same answer boxed twice in two forms is one answer
        (r"Thus $\boxed{0.5}$." "\n\n" r"**Final Answer** $\boxed{\frac{1}{2}}$", r"\frac12"),
        # a corrected answer: the box followed by other words is superseded
        (r"So $\boxed{7}$. Wait, that is wrong; it is $\boxed{8}$.", "8"),
        # a ground truth of several boxes is read the same way
        (r"$\boxed{1, -2}$", r"\(\boxed{1}\) and \(\boxed{-2}\)."),
        # a matrix over several lines
        (
            "$\\boxed{\\begin{bmatrix}\n 1 & 2 \\\\\n 3 & 4 \n\\end{bmatrix}}$",
            r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        ),
        (r"\boxed{1{,}000}", "1000"),
        (r"\boxed{10\,000}", "10000"),  # math.thin-space-thousands
    ],
)
def test_math_boxed_answer_groups(response: str, truth: str) -> None:
    assert score("math", response, truth) == 1.0


@pytest.mark.parametrize(
    ("response", "truth"),
    [
        # hedges between boxed candidates (math.refuse-hedge): the list never equals one value
        (r"It is either $\boxed{7}$ or $\boxed{8}$.", "8"),
        (r"It is either $\boxed{7}$ or $\boxed{8}$.", "7"),
        (r"\boxed{5 \text{ or } 6}", "5"),
        # only part of a set, or more than it
        (r"So $x = \boxed{2}$.", "2, 3"),
        (r"$\boxed{2}$, $\boxed{3}$, $\boxed{5}$", "2, 3"),
        # thousands separators (the defect b): comma AND space separate two numbers
        (r"\boxed{3, 5}", "35"),
        (r"\boxed{3, 500}", "3500"),
        (r"\boxed{1, 234, 567}", "1234567"),
        (r"\boxed{3,5}", "35"),
        (r"\boxed{3 5}", "35"),
        (r"\boxed{5\ 6}", "56"),
        (r"\boxed{1 000}", "1000"),  # as math-verify: digits split by a space are no number
        # prose in a box: math-verify's plain-text extraction must not pick a number out of it
        (r"\boxed{\text{The answer is 5}}", "5"),
        (r"\boxed{\text{not 4 but } 5}", "5"),
        (r"\boxed{\text{any real number}}", "3"),
    ],
)
def test_math_refuses_hedges_lists_and_prose(response: str, truth: str) -> None:
    assert score("math", response, truth) == 0.0


def test_thousands_separators_only_in_one_number() -> None:
    normalize = math_answers.normalize_math
    assert normalize("1,234,567") == normalize("1{,}234{,}567") == normalize(r"1\,234\,567") == "1234567"
    assert normalize("3, 500") == "3,500" and normalize("(1,234)") == "(1,234)"
    assert normalize("1 000") == "1 000" and normalize(r"2 \cdot 3") == r"2\cdot3"
    assert math_answers.to_number("3, 500") is None and math_answers.to_number("1,000.5") == 1000.5


def test_gsm8k_thousands_separators() -> None:
    assert score("gsm8k", r"\boxed{1,234}", "#### 1234") == 1.0
    assert score("gsm8k", r"\boxed{3, 500}", "#### 3500") == 0.0
    assert score("gsm8k", r"\boxed{3 500}", "#### 3500") == 0.0


def test_gsm8k_refuses_a_hedge_between_boxes() -> None:
    """Issue 24 (math.refuse-hedge): two joined boxes with different numbers are a hedge, not an answer;
    a box superseded by later words, or the same value boxed twice, still counts."""
    assert score("gsm8k", "It is $\\boxed{7}$ or $\\boxed{8}$.", "#### 8") == 0.0
    assert score("gsm8k", "$\\boxed{8}$ and $\\boxed{7}$", "#### 8") == 0.0
    assert score("gsm8k", "\\boxed{7}. Wait, that is wrong: \\boxed{8}", "#### 8") == 1.0
    assert score("gsm8k", "$\\boxed{8}$, that is $\\boxed{8}$", "#### 8") == 1.0
