"""The docs follow the code: the strategy table is what the registry gives, every ``docs/algorithms.md N.N`` the
code cites is a heading there, and every relative link in the docs points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from tools.gen_docs import ALGORITHMS, strategy_table, with_table

_NUMBER = r"\d+(?:\.\d+)*"
# "docs/algorithms.md 2.6", "... 4.2-4.3", "... 4.4, 4.5, 4.9 and section 5", "... sections 2, 3.4 and 5"
_CITATION = re.compile(
    rf"docs/algorithms\.md\s+(?:sections?\s+)?({_NUMBER}(?:\s*(?:,|-|and)\s*(?:sections?\s+)?{_NUMBER})*)"
)
_HEADING = re.compile(rf"^#+\s+({_NUMBER})\.?\s", re.MULTILINE)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_strategy_table_is_what_the_registry_gives() -> None:
    text = ALGORITHMS.read_text(encoding="utf-8")
    assert text == with_table(text, strategy_table()), "docs/algorithms.md's strategy table is stale: run make docs"


def test_every_cited_section_of_docs_algorithms_is_a_heading() -> None:
    headings = set(_HEADING.findall(ALGORITHMS.read_text(encoding="utf-8")))
    missing = []
    for folder in ("core", "app", "pages", "bench", "tests", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for cited in _CITATION.findall(path.read_text(encoding="utf-8")):
                numbers = re.findall(_NUMBER, cited)
                missing += [f"{path.relative_to(ROOT)}: {n}" for n in numbers if n not in headings]
    assert not missing, f"sections cited but not in docs/algorithms.md: {missing}"


def test_relative_links_in_the_docs_point_at_files() -> None:
    broken = []
    for doc in DOCS:
        for target in _LINK.findall(doc.read_text(encoding="utf-8")):
            external = "://" in target or target.startswith("mailto:")
            if not external and not (doc.parent / target).exists():
                broken.append(f"{Path(doc).relative_to(ROOT)} -> {target}")
    assert not broken, broken
