"""A search hit shown in context with its keyword highlighted, and the text around it still inert."""

from __future__ import annotations

import re

from app.text import keyword_in_context


def _rendered(markdown: str) -> str:
    """What the markdown reads as: escapes resolved, invisible word joiners dropped, the highlight unwrapped."""
    inner = re.sub(r":orange-background\[\*\*(.*?)\*\*\]", r"\1", markdown)
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", inner).replace("\u2060", "")


def test_the_keyword_is_highlighted_once_with_its_context_either_side() -> None:
    text = "x" * 200 + " find the Needle here " + "y" * 200
    shown = keyword_in_context(text, "needle", width=10)
    assert shown is not None and shown.count(":orange-background[") == 1
    assert ":orange-background[**Needle**]" in shown  # the text's own case
    assert _rendered(shown) == "… find the Needle here yyyy…"  # ten characters either side


def test_markup_in_the_text_or_the_keyword_cannot_escape_the_highlight() -> None:
    text = "see <b>bold</b> and ](javascript:alert(1)) and [x](http://a.b) **not bold**"
    shown = keyword_in_context(text, "](javascript", width=200)
    assert shown is not None
    highlight = re.search(r":orange-background\[\*\*(.*?)\*\*\]", shown)
    assert highlight is not None and "]" not in highlight.group(1).replace("\\]", "")  # escaped inside
    assert "<b>" not in shown and "](http" not in shown.replace("\\]", "").replace("\\(", "")
    assert _rendered(shown) == text


def test_no_match_gives_none_and_lines_become_one() -> None:
    assert keyword_in_context("nothing here", "absent") is None
    assert keyword_in_context("anything", "") is None
    assert _rendered(keyword_in_context("first line\nsecond KEY line", "key") or "") == "first line second KEY line"
