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


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every top-level boxed answer, in order: ``\\boxed{...}`` /
    ``\\fbox{...}`` (a box nested inside another is part of the outer one, not a second answer) and the
    ``\\boxed 5`` form; unclosed boxes are skipped. ``text[start:end]`` is the whole box."""
    out: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        braced = _BOXED.search(text, pos)
        spaced = _BOXED_SPACE.search(text, pos)
        if spaced and (braced is None or spaced.start() < braced.start()):
            out.append((spaced.start(), spaced.end(), spaced.group(1).strip()))
            pos = spaced.end()
            continue
        if braced is None:
            return out
        content = _balanced(text, braced.end())
        if content is None:
            pos = braced.end()
            continue
        pos = braced.end() + len(content) + 1
        out.append((braced.start(), pos, content.strip()))


def boxed_answers(text: str) -> list[str]:
    """Contents of every top-level boxed answer (see ``boxed_spans``), in order."""
    return [content for _, _, content in boxed_spans(text)]


# What may stand between two boxes that together are one answer: math delimiters, spacing, a comma,
# "and"/"or", and a variable being assigned ("$x = \boxed{2}$ or $x = \boxed{3}$", "\boxed{2}, \boxed{3}").
_DELIMITERS = re.compile(r"\$|\\[\[\]()]|\\q?quad|\\[,;:! ]|~|\\(?:text|mbox|mathrm)\s*\{([^{}]*)\}")
_JOINER = re.compile(
    r"\s*(?:,|,?\s*\b(?:and|or)\b)?\s*(?:[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?\s*=\s*)?", re.IGNORECASE
)


def last_box_group(text: str) -> list[str]:
    """The last boxed answer with the boxes joined to it: those separated from the next only by a comma,
    "and" / "or", math delimiters or ``x =`` (``"$x=\\boxed{2}$ or $x=\\boxed{3}$"`` -> ``["2", "3"]``).
    A box followed by other words (``"\\boxed{7}. Wait, it is \\boxed{8}"``) is superseded: ``["8"]``.
    Empty when there is no complete box."""
    spans = boxed_spans(text)
    if not spans:
        return []
    group = [spans[-1]]
    for span in reversed(spans[:-1]):
        gap = _DELIMITERS.sub(lambda m: m.group(1) or " ", text[span[1] : group[0][0]])
        if not _JOINER.fullmatch(gap):
            break
        group.insert(0, span)
    return [content for _, _, content in group]


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
