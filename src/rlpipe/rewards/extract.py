"""Answer extraction shared by the GURU scorers: final text, last ``\\boxed{}``, last ``<answer>`` block.

Why a brace-matching scanner instead of regexes: ``\\boxed{\\frac{1}{2}}`` has nested braces, which a
regex such as ``\\boxed{(.*?)}`` cuts at the first ``}``; and ``<answer>`` blocks span lines, which the
reference implementation's non-DOTALL regexes silently scored 0.
"""

from __future__ import annotations

import re

_THINK_OPEN = "<think>"
_THINK_END = "</think>"


def answer_region(response: str) -> str | None:
    """The part of a response that is graded: the text after the last ``</think>``.

    A response that opened ``<think>`` and never closed it was truncated mid-reasoning: it has no answer
    (``None``), so a ``\\boxed{}`` guess inside unfinished reasoning is never rewarded.
    """
    if not isinstance(response, str):
        return None
    if _THINK_END in response:
        return response.rsplit(_THINK_END, 1)[1]
    if _THINK_OPEN in response:
        return None
    return response


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOXED_SPACE = re.compile(r"\\boxed +([^\s$]+)")


def _balanced(text: str, start: int) -> str | None:
    """Content of the brace group whose ``{`` is at ``start - 1``; None when it never closes."""
    depth = 1
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def all_boxed(text: str) -> list[str]:
    """Contents of every complete ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces kept), in order."""
    out: list[str] = []
    for match in _BOXED.finditer(text):
        content = _balanced(text, match.end())
        if content is not None:
            out.append(content.strip())
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``, or of ``\\boxed 5``; None when there is none."""
    boxed = all_boxed(text)
    braced_pos = max((m.start() for m in _BOXED.finditer(text)), default=-1)
    spaced = list(_BOXED_SPACE.finditer(text))
    if spaced and spaced[-1].start() > braced_pos:
        return spaced[-1].group(1).strip()
    return boxed[-1] if boxed else None


_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def last_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>`` block (multi-line allowed), stripped."""
    found = _ANSWER_TAG.findall(text)
    return found[-1].strip() if found else None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)```", re.DOTALL)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every closed fenced code block, in order (language lower-cased)."""
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text)]


def strip_text_macro(text: str) -> str:
    """``\\text{B}`` / ``\\textbf{B}`` / ``\\mathrm{B}`` -> ``B`` (outermost wrapper only, nested ok)."""
    text = text.strip()
    match = re.match(r"^\\(?:text|textbf|mathrm|mathbf|textit|emph)\s*\{", text)
    if match:
        inner = _balanced(text, match.end())
        if inner is not None and text.endswith("}") and len(inner) == len(text) - match.end() - 1:
            return inner.strip()
    return text
