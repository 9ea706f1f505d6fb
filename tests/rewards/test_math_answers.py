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
