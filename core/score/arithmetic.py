"""A cheap check of stated arithmetic: responses that give a wrong result for a simple binary expression.

A small LM scores a confidently wrong sum ("899 plus 639 is 1531.") as fluent as a right one, so
perplexity cannot see it. This heuristic finds statements of the form ``a <op> b = c`` (or "is",
"equals"; op in + - * x / and plus, minus, times, multiplied by, divided by, and GSM8K's calculator
annotations ``<<48/2=24>>``), recomputes them and counts the wrong ones. A result matches when it
equals the true value rounded to the decimals written (``10 / 3 = 3.33`` is right).

It stays away from what it cannot check: a statement inside a longer expression (``2 + 3 * 4 = 14``,
where precedence matters), algebra (``3x - 5 = 16``), mixed fractions (``8 x 1 1/2 = 12``), ratios,
times of day, remainders (``264/17 = 15 (Remainder)``) and numbers with spaces as thousands separators.
On the benchmark pool (docs/benchmarks.md) it flags 1.6 % of the AQuA and 0.2 % of the GSM8K rationales; the ones
we read were real slips.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_OPERATOR = r"multiplied by|divided by|plus|minus|times|\sx\s|[+\-−*×/÷]"
_STATEMENT = re.compile(
    rf"(?<![\w.,/*+\-×÷^%$:])({_NUMBER})\s*({_OPERATOR})\s*({_NUMBER})"
    rf"(?![\d/]|\s+\d+/|\s+and\s+\d)\s*(?:=|is|equals|makes|gives)\s*({_NUMBER})"
    rf"(?![\w/]|\s*[+\-−–*/×÷^%(]|\s+x\s|\.\d|\s\d)"
)
_CONTINUES_EXPRESSION = re.compile(r"(?:[\d+\-−–—*×x/÷^%(:]|\b(?:plus|minus|times|by))$")


def _divide(a: float, b: float) -> float | None:
    return a / b if b else None


_OPERATIONS: dict[str, Callable[[float, float], float | None]] = {
    **dict.fromkeys(("+", "plus"), lambda a, b: a + b),
    **dict.fromkeys(("-", "−", "minus"), lambda a, b: a - b),
    **dict.fromkeys(("*", "×", "x", "times", "multiplied by"), lambda a, b: a * b),
    **dict.fromkeys(("/", "÷", "divided by"), _divide),
}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _is_wrong(true: float, stated: str) -> bool:
    decimals = len(stated.split(".")[1]) if "." in stated else 0
    return abs(true - _number(stated)) > 0.5 * 10**-decimals + 1e-9 * abs(true)


def arithmetic_errors(text: str) -> int:
    """How many simple ``a op b = c`` statements in ``text`` state a wrong ``c``."""
    wrong = 0
    for match in _STATEMENT.finditer(text):
        left, operator, right, stated = match.groups()
        if _CONTINUES_EXPRESSION.search(text[: match.start()].rstrip()):
            continue  # part of a longer expression: precedence would make the local check wrong
        true = _OPERATIONS[operator.strip()](_number(left), _number(right))
        if true is not None and _is_wrong(true, stated):
            wrong += 1
    return wrong
