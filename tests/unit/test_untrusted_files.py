"""Files a user or anyone with access to the workspace could have replaced are never unpickled: checkpoints
load with ``torch.load(weights_only=True)``, and no code path calls pickle, joblib or ``np.load`` with
``allow_pickle``, or lets transformers run a model folder's own code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.train.trainer import checkpoint_step
from tests.conftest import ROOT

SOURCES = [path for folder in ("core", "app", "pages") for path in sorted((ROOT / folder).rglob("*.py"))]


class _Payload:
    """Unpickling this creates a file: proof that a loader ran code from the file it read."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_tampered_checkpoint_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    import torch

    marker = tmp_path / "pwned"
    folder = tmp_path / "train" / "checkpoint"
    folder.mkdir(parents=True)
    torch.save({"step": 3, "weights": {}, "extra": _Payload(marker)}, folder / "state.pt")

    with pytest.raises(ValueError, match="holds objects other than tensors and plain values"):
        checkpoint_step(tmp_path / "train")
    assert not marker.exists()


def _calls(path: Path) -> list[tuple[str, ast.Call]]:
    """Every call in ``path`` as (dotted name, node): ``torch.load``, ``pickle.loads``, ``np.load``..."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                found.append((f"{func.value.id}.{func.attr}", node))
    return found


def _keyword(node: ast.Call, name: str) -> object:
    for keyword in node.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def test_no_code_path_unpickles_a_file_or_runs_a_model_folders_code() -> None:
    problems = []
    for path in SOURCES:
        for name, node in _calls(path):
            where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
            if name == "torch.load" and _keyword(node, "weights_only") is not True:
                problems.append(f"{where} without weights_only=True")
            if name in {"pickle.load", "pickle.loads", "joblib.load", "dill.load", "cloudpickle.load"}:
                problems.append(where)
            if name == "np.load" and _keyword(node, "allow_pickle") is True:
                problems.append(f"{where} with allow_pickle=True")
            if _keyword(node, "trust_remote_code") is True:
                problems.append(f"{where} with trust_remote_code=True")
    assert SOURCES and not problems, problems
