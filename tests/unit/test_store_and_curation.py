"""The curator's decisions on the prepared keyword dataset: clusters, vetoes, weights, search, history, re-prepare."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import DatasetExists, UnknownCluster
from core.prepare import PrepareOptions, choose_k, prepare
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, KEYWORDS, KeywordEmbedder, keyword_rows, write_jsonl
from tests.unit.conftest import count_rows

K = 4


def _tiny(store: Store) -> ds.DatasetInfo:
    return ds.get_dataset(store, "tiny")


def _cluster_of(store: Store, dataset_id: int, keyword: str, k: int = K) -> int:
    table = curation.clusters(store, dataset_id, k)
    return int(table.loc[table.label == keyword, "cluster_id"].item())


def _ids_with(store: Store, dataset_id: int, keyword: str) -> set[str]:
    with store.read() as con:
        rows = con.execute(
            "SELECT example_id FROM examples WHERE dataset_id = ? AND instruction LIKE ?", [dataset_id, f"%{keyword}%"]
        ).fetchall()
    return {row[0] for row in rows}


def _kept_ids(store: Store, dataset_id: int, k: int = K) -> set[str]:
    return set(curation.kept_rows(store, dataset_id, k).example_id)


def test_keyword_topics_form_four_labelled_clusters(workspace: Path) -> None:
    store = Store(workspace)
    info = _tiny(store)
    table = curation.clusters(store, info.dataset_id, K)

    assert (info.n_rows, info.active_k, info.best_k, info.k_grid, info.status) == (24, 4, 4, [2, 4, 6], "ready")
    assert sorted(table.label) == sorted(KEYWORDS)
    assert list(table["size"]) == [6, 6, 6, 6]
    assert not table.vetoed.any()
    assert list(table.weight) == [1.0] * 4
    for keyword in KEYWORDS:
        page, total = curation.examples(
            store, info.dataset_id, K, cluster_id=_cluster_of(store, info.dataset_id, keyword)
        )
        assert total == 6
        assert all(keyword in text for text in page.instruction)


def test_cluster_veto_removes_exactly_its_rows_and_is_recorded(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    bread = _cluster_of(store, dataset_id, "bread")
    everything = _kept_ids(store, dataset_id)
    version = store.data_version()

    assert curation.set_cluster_veto(store, dataset_id, K, bread, True) is True

    table = curation.clusters(store, dataset_id, K)
    assert list(table.loc[table.vetoed, "cluster_id"]) == [bread]
    assert _kept_ids(store, dataset_id) == everything - _ids_with(store, dataset_id, "bread")
    assert len(_kept_ids(store, dataset_id)) == 18
    latest = curation.history(store, dataset_id).iloc[0]
    assert (latest.action, latest.target, latest.old_value, latest.new_value) == (
        "cluster_veto",
        f"k=4/cluster={bread}",
        "false",
        "true",
    )
    assert store.data_version() == version + 1


def test_repeated_veto_changes_nothing_and_unveto_restores(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    python = _cluster_of(store, dataset_id, "python")
    curation.set_cluster_veto(store, dataset_id, K, python, True)

    assert curation.set_cluster_veto(store, dataset_id, K, python, True) is False
    assert len(curation.history(store, dataset_id)) == 1

    assert curation.set_cluster_veto(store, dataset_id, K, python, False) is True
    assert len(_kept_ids(store, dataset_id)) == 24
    assert not curation.clusters(store, dataset_id, K).vetoed.any()
    latest = curation.history(store, dataset_id).iloc[0]
    assert (latest.action, latest.old_value, latest.new_value) == ("cluster_veto", "true", "false")


def test_cluster_decisions_belong_to_their_k(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    curation.set_cluster_veto(store, dataset_id, K, _cluster_of(store, dataset_id, "planet"), True)

    assert len(_kept_ids(store, dataset_id, k=4)) == 18
    assert len(_kept_ids(store, dataset_id, k=2)) == 24
    assert not curation.clusters(store, dataset_id, 2).vetoed.any()


def test_cluster_weight_is_stored_and_validated(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    capital = _cluster_of(store, dataset_id, "capital")

    assert curation.set_cluster_weight(store, dataset_id, K, capital, 2.5) is True
    for bad in (-0.5, 10.5):
        with pytest.raises(ValueError, match="between 0 and 10"):
            curation.set_cluster_weight(store, dataset_id, K, capital, bad)

    table = curation.clusters(store, dataset_id, K)
    assert table.set_index("cluster_id").weight.to_dict() == {c: (2.5 if c == capital else 1.0) for c in range(4)}
    assert curation.decisions(store, dataset_id)["clusters_by_k"] == {
        "4": {"vetoed_clusters": [], "weights": {str(capital): 2.5}}
    }
    latest = curation.history(store, dataset_id).iloc[0]
    assert (latest.action, latest.old_value, latest.new_value) == ("cluster_weight", "1.0", "2.5")
    assert len(curation.history(store, dataset_id)) == 1
    assert len(_kept_ids(store, dataset_id)) == 24  # a weight is not a veto


def test_weight_and_veto_of_one_cluster_do_not_overwrite_each_other(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    bread = _cluster_of(store, dataset_id, "bread")

    curation.set_cluster_weight(store, dataset_id, K, bread, 3.0)
    curation.set_cluster_veto(store, dataset_id, K, bread, True)
    curation.set_cluster_veto(store, dataset_id, K, bread, False)

    row = curation.clusters(store, dataset_id, K).set_index("cluster_id").loc[bread]
    assert (bool(row.vetoed), float(row.weight)) == (False, 3.0)


def test_example_veto(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    page, _ = curation.examples(store, dataset_id, K, search="explain planet number 2")
    target, cluster = page.example_id.item(), int(page.cluster_id.item())

    assert curation.set_example_veto(store, dataset_id, target, True) is True

    kept = _kept_ids(store, dataset_id)
    assert len(kept) == 23
    assert target not in kept
    page, _ = curation.examples(store, dataset_id, K, cluster_id=cluster, limit=50)
    assert page.set_index("example_id").vetoed.to_dict() == {i: i == target for i in page.example_id}
    table = curation.clusters(store, dataset_id, K).set_index("cluster_id")
    assert table.vetoed_examples.to_dict() == {c: int(c == cluster) for c in range(4)}
    assert curation.decisions(store, dataset_id)["vetoed_examples"] == [target]
    latest = curation.history(store, dataset_id).iloc[0]
    assert (latest.action, latest.target, latest.new_value) == ("example_veto", target, "true")


def test_unknown_cluster_or_example_is_an_error_and_records_nothing(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    version = store.data_version()

    with pytest.raises(UnknownCluster, match="cluster 4 does not exist at k=4"):
        curation.set_cluster_veto(store, dataset_id, K, 4, True)
    with pytest.raises(UnknownCluster):
        curation.set_cluster_weight(store, dataset_id, K, 99, 2.0)
    with pytest.raises(UnknownCluster, match="k=5"):
        curation.set_cluster_veto(store, dataset_id, 5, 0, True)
    with pytest.raises(LookupError, match="no example with id 'nope'"):
        curation.set_example_veto(store, dataset_id, "nope", True)

    assert curation.history(store, dataset_id).empty
    assert count_rows(workspace, "cluster_decisions") == 0
    assert store.data_version() == version


def test_decisions_survive_a_restart(workspace: Path) -> None:
    first = Store(workspace)
    dataset_id = _tiny(first).dataset_id
    bread, python = _cluster_of(first, dataset_id, "bread"), _cluster_of(first, dataset_id, "python")
    curation.set_cluster_veto(first, dataset_id, K, bread, True)
    curation.set_cluster_weight(first, dataset_id, K, python, 4.0)
    version = first.data_version()
    del first

    second = Store(workspace)
    table = curation.clusters(second, dataset_id, K).set_index("cluster_id")

    assert table.vetoed.to_dict() == {c: c == bread for c in range(4)}
    assert table.weight[python] == 4.0
    assert len(_kept_ids(second, dataset_id)) == 18
    assert len(curation.history(second, dataset_id)) == 2
    assert second.data_version() == version


def test_opening_and_reading_do_not_change_the_data_version(workspace: Path) -> None:
    version = Store(workspace).data_version()
    store = Store(workspace)
    curation.clusters(store, _tiny(store).dataset_id, K)

    assert Store(workspace).data_version() == version


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("BREAD", 6),  # instruction, any case
        ("Explain Python", 6),
        ("answer about", 24),  # only in the outputs
        ("(3)", 4),  # only in the outputs
        ("%", 0),  # a literal percent sign, not a wildcard
        ("_", 0),  # a literal underscore, not a wildcard
        ("bread%number", 0),
    ],
)
def test_keyword_search(workspace: Path, search: str, expected: int) -> None:
    store = Store(workspace)

    page, total = curation.examples(store, _tiny(store).dataset_id, K, search=search, limit=100)

    assert total == expected
    assert len(page) == expected


def test_search_treats_percent_and_underscore_literally(workspace: Path, tmp_path: Path) -> None:
    rows = [
        {"instruction": "Apply a 50% discount to the bread", "output": "Half price."},
        {"instruction": "Apply a 50 percent discount to the bread", "output": "Half price."},
        {"instruction": "Rename the python variable snake_case", "output": "Done."},
        {"instruction": "Rename the python variable snakeXcase", "output": "Done: a_b."},
    ]
    store = Store(workspace)
    report = prepare(
        store,
        write_jsonl(tmp_path / "symbols.jsonl", rows),
        PrepareOptions(name="symbols", embedder=KEYWORD_EMBEDDER, k_grid=(2,)),
    )

    def found(search: str) -> list[str]:
        page, total = curation.examples(store, report.dataset_id, 2, search=search)
        assert total == len(page)
        return list(page.instruction)

    assert found("50%") == [rows[0]["instruction"]]
    assert found("SNAKE_CASE") == [rows[2]["instruction"]]
    assert found("a_b") == [rows[3]["instruction"]]  # found through the output


def test_search_within_a_cluster(workspace: Path) -> None:
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    bread = _cluster_of(store, dataset_id, "bread")

    page, total = curation.examples(store, dataset_id, K, cluster_id=bread, search="number 3")

    assert total == 1
    assert page.instruction.item() == "Question 3 about bread: explain bread number 3"


def test_preparing_the_same_file_again_recomputes_nothing(workspace: Path, template_file: Path) -> None:
    version = Store(workspace).data_version()
    cache_rows = count_rows(workspace, "embedding_cache")

    report = prepare(
        Store(workspace), template_file, PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4, 6))
    )

    assert (report.reused, report.embedded, report.n_rows, report.best_k) == (True, 0, 24, 4)
    assert Store(workspace).data_version() == version
    assert count_rows(workspace, "embedding_cache") == cache_rows
    assert [d.name for d in ds.list_datasets(Store(workspace))] == ["tiny"]


def test_same_file_under_a_new_name_takes_every_embedding_from_the_cache(
    workspace: Path, template_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_rows = count_rows(workspace, "embedding_cache")

    def refuse(self, texts, progress=None):
        raise AssertionError(f"embedded {len(texts)} texts again")

    monkeypatch.setattr(KeywordEmbedder, "embed", refuse)
    report = prepare(
        Store(workspace), template_file, PrepareOptions(name="tiny-copy", embedder=KEYWORD_EMBEDDER, k_grid=(4,))
    )

    assert (report.reused, report.embedded, report.embeddings_cached, report.n_rows) == (False, 0, 24, 24)
    assert count_rows(workspace, "embedding_cache") == cache_rows
    assert [d.name for d in ds.list_datasets(Store(workspace))] == ["tiny", "tiny-copy"]


def test_a_different_file_under_the_same_name_needs_replace(workspace: Path, tmp_path: Path) -> None:
    other = write_jsonl(tmp_path / "other.jsonl", keyword_rows(per_topic=2))
    store = Store(workspace)
    dataset_id = _tiny(store).dataset_id
    curation.set_cluster_veto(store, dataset_id, K, 0, True)
    version = store.data_version()

    with pytest.raises(DatasetExists, match="'tiny' already exists"):
        prepare(store, other, PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4)))
    assert store.data_version() == version
    assert _tiny(store).n_rows == 24

    report = prepare(store, other, PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), replace=True))

    assert (report.name, report.n_rows, report.reused) == ("tiny", 8, False)
    assert [(d.name, d.n_rows) for d in ds.list_datasets(store)] == [("tiny", 8)]
    assert count_rows(workspace, "examples") == 8
    assert curation.history(store, report.dataset_id).empty
    assert not curation.clusters(store, report.dataset_id, 4).vetoed.any()


def test_same_file_with_other_embed_fields_is_a_different_dataset(workspace: Path, template_file: Path) -> None:
    with pytest.raises(DatasetExists):
        prepare(
            Store(workspace),
            template_file,
            PrepareOptions(name="tiny", embedder=KEYWORD_EMBEDDER, embed_fields=("instruction", "output")),
        )


def test_choose_k_outside_the_grid_fits_it_without_embedding(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self, texts, progress=None):
        raise AssertionError("choose_k must not embed")

    monkeypatch.setattr(KeywordEmbedder, "embed", refuse)
    store = Store(workspace)
    info = _tiny(store)

    choose_k(store, info, 3)

    info = _tiny(store)
    assert (info.active_k, info.k_grid) == (3, [2, 3, 4, 6])
    assert list(ds.load_sweep(store, info.dataset_id).k) == [2, 3, 4, 6]
    table = curation.clusters(store, info.dataset_id, 3)
    assert list(table.cluster_id) == [0, 1, 2]
    assert table["size"].sum() == 24
    latest = curation.history(store, info.dataset_id).iloc[0]
    assert (latest.action, latest.target, latest.old_value, latest.new_value) == ("choose_k", "k", "4", "3")


def test_choose_k_inside_the_grid_keeps_the_sweep(workspace: Path) -> None:
    store = Store(workspace)
    info = _tiny(store)
    sweep = ds.load_sweep(store, info.dataset_id)

    choose_k(store, info, 2)

    assert _tiny(store).active_k == 2
    assert ds.load_sweep(store, info.dataset_id).equals(sweep)
