"""docs/reliability.md's table names only tests that exist (tests/reliability.py), and renders results per case."""

from __future__ import annotations

import ast

from tests.conftest import ROOT
from tests.reliability import CASES, node_ids, render


def _test_names(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_the_table_names_exists() -> None:
    missing = []
    for node in node_ids():
        path, name = node.split("::")
        if name.split("[")[0] not in _test_names(path):
            missing.append(node)
    assert not missing, missing


def test_a_case_passes_only_when_all_its_tests_pass() -> None:
    nodes = node_ids()
    outcomes = {node: "passed" for node in nodes}
    assert render(outcomes, "now", "abc").count("| pass (") == len(CASES)
    first_case_node = CASES[0][2][0]
    outcomes[first_case_node] = "failed"
    rows = render(outcomes, "now", "abc").splitlines()
    assert "**failed** (1 of 1)" in next(row for row in rows if CASES[0][1] in row)
    del outcomes[first_case_node]
    assert "**not run**" in render(outcomes, "now", "abc")
