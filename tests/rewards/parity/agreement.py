"""Per-family agreement of rlpipe's scorers with the reference on the committed parity cases.

``python tests/rewards/parity/agreement.py [--json]`` scores every case in ``cases/*.jsonl`` with the
``rlpipe`` that is importable (point ``PYTHONPATH`` at another checkout's ``src`` to measure an older
revision) and prints cases, agreements, written decisions and unexplained differences per family.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

CASES = Path(__file__).parent / "cases"
TOLERANCE = 1e-6


def load_cases(directory: Path = CASES) -> Iterator[tuple[str, dict]]:
    """``(family, case)`` for every line of every ``<family>.jsonl``; a bad line names file and line."""
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield path.stem, json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not a JSON line ({err})") from None


def rlpipe_score(case: dict) -> float:
    """rlpipe's score for one case (the registry's clamp included, as evaluation and training see it)."""
    from rlpipe.rewards import score

    return score(case["scorer"], case["response"], case["ground_truth"], case.get("extra_info"))


@dataclass
class Tally:
    """Counts for one family."""

    cases: int = 0
    agree: int = 0
    decided: int = 0
    differ: list[str] = field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agree / self.cases if self.cases else float("nan")


def tally(cases: Iterator[tuple[str, dict]]) -> dict[str, Tally]:
    """Compare rlpipe with the reference on every case, grouped by family."""
    out: dict[str, Tally] = {}
    for family, case in cases:
        t = out.setdefault(family, Tally())
        t.cases += 1
        got = rlpipe_score(case)
        if abs(got - float(case["reference_score"])) <= TOLERANCE:
            t.agree += 1
        elif case.get("decision") and abs(got - float(case["rlpipe_score"])) <= TOLERANCE:
            t.decided += 1
        else:
            t.differ.append(case["id"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    result = tally(load_cases())
    if args.json:
        rows = {
            family: {"cases": t.cases, "agree": t.agree, "decided": t.decided, "differ": t.differ}
            for family, t in result.items()
        }
        print(json.dumps(rows, indent=1))
        return 0
    print("| family | cases | agree | agreement | written decisions | unexplained |")
    print("|---|---:|---:|---:|---:|---:|")
    for family, t in sorted(result.items()):
        share = f"{100 * t.agreement:.1f} %"
        print(f"| {family} | {t.cases} | {t.agree} | {share} | {t.decided} | {len(t.differ)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
