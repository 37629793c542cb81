"""Shared fixtures: a fake keyword embedder with exact vectors, tiny datasets, prepared workspaces.

One prepared template workspace per session, copied for each test that changes it (``workspace``):
preparing pays UMAP's JIT (~10 s) once per process; copying the prepared folder costs milliseconds.

Tests never download: HF_HUB_OFFLINE is set before anything imports huggingface_hub.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from core.embed.embedders import EMBEDDERS, l2_normalise

if TYPE_CHECKING:
    from core.gradients.pipeline import GradientConfig

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = ("bread", "python", "capital", "planet")


@EMBEDDERS.register
@dataclasses.dataclass(frozen=True)
class KeywordEmbedder:
    """Maps each text to the one-hot direction of the first keyword it contains (plus a tiny per-text offset).

    Texts about the same keyword get (almost) the same vector, so clusters are known exactly in tests.
    """

    name: ClassVar[str] = "keyword-test"
    keywords: tuple[str, ...] = KEYWORDS

    def cache_key(self) -> str:
        return "keyword-test:" + ",".join(self.keywords)

    def embed(self, texts, progress=None):
        dim = len(self.keywords) + 1
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            hits = [i for i, word in enumerate(self.keywords) if word in text.lower()]
            vectors[row, hits[0] if hits else dim - 1] = 1.0
            vectors[row, (hits[0] + 1 if hits else 0) % dim] += 0.01 * (len(text) % 7)
        if progress:
            progress(len(texts))
        return l2_normalise(vectors)


KEYWORD_EMBEDDER = {"name": "keyword-test"}


def keyword_rows(per_topic: int = 6) -> list[dict[str, str]]:
    """Alpaca rows: ``per_topic`` rows for each of the four keywords, with distinct wording."""
    rows = []
    for topic in KEYWORDS:
        for i in range(per_topic):
            rows.append(
                {
                    "instruction": f"Question {i} about {topic}: explain {topic} number {i}",
                    "input": "",
                    "output": f"An answer about {topic} ({i}).",
                }
            )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def keyword_file(tmp_path: Path) -> Path:
    """A 24-row Alpaca JSONL file over four keyword topics."""
    return write_jsonl(tmp_path / "tiny.jsonl", keyword_rows())


@pytest.fixture
def prepared_workspace(tmp_path: Path, keyword_file: Path) -> Path:
    """A workspace holding the tiny dataset, prepared with the keyword embedder and k in {2, 4, 6}."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    workspace = tmp_path / "ws"
    prepare(
        Store(workspace), keyword_file, PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), seed=0)
    )
    return workspace


@pytest.fixture(scope="session")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 24-row keyword file the template workspace was prepared from (do not modify)."""
    return write_jsonl(tmp_path_factory.mktemp("template") / "tiny.jsonl", keyword_rows())


@pytest.fixture(scope="session")
def template_workspace(template_file: Path) -> Path:
    """A workspace holding dataset "tiny" (keyword embedder, k in {2, 4, 6}, seed 0). Never modify it: copy it."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    workspace = template_file.parent / "ws"
    prepare(
        Store(workspace),
        template_file,
        PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), seed=0),
    )
    return workspace


@pytest.fixture
def workspace(template_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared template workspace."""
    copy = tmp_path / "ws"
    shutil.copytree(template_workspace, copy)
    return copy


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised Llama and its tokenizer saved as a local model folder: code loads it like any
    model path (runs, gradient features), with no download."""
    from tests.tiny_lm import byte_tokenizer, tiny_causal_lm

    folder = tmp_path_factory.mktemp("tiny-model")
    tokenizer = byte_tokenizer()
    tiny_causal_lm(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def target_file(tmp_path_factory) -> Path:
    """Six bread questions: the keyword dataset's bread cluster should align with them best."""
    rows = [
        {"id": f"t{i}", "instruction": f"Question {i} about bread: explain bread", "input": "", "output": "Bread."}
        for i in range(6)
    ]
    path = tmp_path_factory.mktemp("target") / "bread_target.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def computed(template_workspace, tiny_model_dir, target_file, tmp_path_factory) -> tuple[Path, dict, GradientConfig]:
    """A copy of the template workspace with pool features, graph and the target's features (for the gradient
    tests of the unit and integration tiers)."""
    from core.gradients import pipeline
    from core.storage import datasets as ds
    from core.storage.database import Store

    workspace = tmp_path_factory.mktemp("grad") / "ws"
    shutil.copytree(template_workspace, workspace)
    config = pipeline.GradientConfig(model=str(tiny_model_dir), d=64, neighbours=8, warmup_fraction=0.25, max_length=96)
    store = Store(workspace)
    report = pipeline.compute_gradients(store, ds.get_dataset(store), config, [target_file])
    return workspace, report, config


SOURCES = ("web", "web", "web", "books", "books", None)  # cycled over the rows; None: the row has no source


def sourced_rows() -> list[dict[str, str]]:
    """The keyword rows with a ``source`` column that cuts across the topics: 12 web, 8 books, 4 without one."""
    rows = keyword_rows()
    for number, row in enumerate(rows):
        source = SOURCES[number % len(SOURCES)]
        if source is not None:
            row["source"] = source
    return rows


@pytest.fixture
def sourced_workspace(tmp_path: Path) -> Path:
    """A workspace holding dataset "sourced" (the keyword rows with a ``source`` column), prepared at k=4."""
    from core.prepare import PrepareOptions, prepare
    from core.storage.database import Store

    workspace = tmp_path / "sourced"
    rows = write_jsonl(tmp_path / "sourced.jsonl", sourced_rows())
    prepare(Store(workspace), rows, PrepareOptions(name="sourced", embedder=KEYWORD_EMBEDDER, k_grid=(4,), seed=0))
    return workspace
