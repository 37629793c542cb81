"""The home page: the chosen dataset's standing, the next step with its cost, links to each step's page."""

from __future__ import annotations

from pathlib import Path

from core.export import stream_export
from core.score.scorers import HeuristicsScorer
from core.score.scoring import score_dataset
from core.select.run import build_strategy, run_selection, save_selection
from core.storage import datasets as ds
from core.storage.database import Store


def links(at) -> list[str]:
    return [element.proto.label for element in at.get("page_link")]


def test_home_is_the_default_page_and_names_the_next_step_with_its_cost(page) -> None:
    at = page("main").run()
    assert not at.exception
    assert at.title[0].value == "Curation studio"
    assert [m.value for m in at.metric] == ["24", "4", "0", "0", "0"]  # rows, k, scorers, selections, runs
    text = " ".join(m.value for m in at.markdown)
    assert "Next step for tiny: Score" in text
    assert "not scored yet" in text and "no saved selection yet" in text and "not exported yet" in text
    costs = " ".join(c.value for c in at.caption)
    assert "scoring 24 examples with ifd takes about" in costs  # the cost from core.score.cost's measured rates
    assert "Go to Quality" in links(at)
    assert {"Datasets", "Clusters", "Quality", "Gradient graph", "Select", "Runs", "Export"} <= set(links(at))
    assert "kMQ (k-means quality) picking 2 of 24 rows (10 %): under a second" in costs  # human name, cost


def test_home_follows_the_dataset_through_score_select_and_export(page, prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    score_dataset(store, dataset, HeuristicsScorer())
    result = run_selection(store, dataset, build_strategy("random", {}), 6, seed=0, k=int(dataset.active_k))
    selection_id = save_selection(store, dataset, result, "six at random")
    stream_export(store, dataset, prepared_workspace / "exports" / "tiny-selection.jsonl", selection_id=selection_id)

    at = page("main").run()
    assert not at.exception
    assert [m.value for m in at.metric] == ["24", "4", "1", "1", "0"]
    text = " ".join(m.value for m in at.markdown)
    assert "scored with heuristics" in text
    assert f"newest #{selection_id} six at random (6 examples)" in text
    assert f"1 export; newest: tiny\\-selection\\.jsonl (selection \\#{selection_id}, 6 rows)" in text  # escaped
    assert "Next step for tiny: Fine-tune and compare" in text
    assert "Go to Runs" in links(at)


def test_home_without_a_dataset_points_to_datasets(page, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CURATE_WORKSPACE", str(tmp_path / "empty"))
    at = page("main").run()
    assert not at.exception
    assert "Next: load a dataset" in at.info[0].value
    assert links(at) == ["Datasets: load and prepare"]
