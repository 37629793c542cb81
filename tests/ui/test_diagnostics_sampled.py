"""The Diagnostics page says when the k sweep was fitted on a sample (a dataset above the sampling threshold)."""

from __future__ import annotations

from pathlib import Path

from core.prepare import PrepareOptions, prepare
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl


def test_diagnostics_page_says_the_sweep_was_fitted_on_a_sample(page, prepared_workspace: Path, tmp_path: Path):
    source = write_jsonl(tmp_path / "big.jsonl", keyword_rows())
    options = PrepareOptions(
        name="big", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6), sweep_sample_above=10, sweep_sample=12
    )
    prepare(Store(prepared_workspace), source, options)

    at = page("diagnostics").run()

    assert not at.exception
    notes = [info.value for info in at.info]
    assert notes == [
        "K-means fitted on a 12-row sample, assigned over 24 rows; silhouette on 24 rows; inertia summed over "
        "every row."
    ]


def test_diagnostics_page_has_no_sample_note_for_a_sweep_on_every_row(page):
    at = page("diagnostics").run()

    assert not at.exception
    assert not [info.value for info in at.info if "sample" in info.value]
