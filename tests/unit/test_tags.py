"""Free tags on clusters and examples: one batch per change, undone whole, and an export filtered by a tag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.storage import curation, history, tags
from core.storage import datasets as ds
from core.storage.database import Store


def test_tags_are_a_batch_of_the_history_and_undo_takes_them_back(prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    first = curation.example_page(store, dataset.dataset_id, k, limit=1).example_id.iloc[0]
    refs = [tags.cluster_ref(k, 0), tags.cluster_ref(k, 1)]
    assert tags.set_tag(store, dataset.dataset_id, refs, "  needs   review ", actor="t") == 2
    assert tags.set_tag(store, dataset.dataset_id, refs, "needs review") == 0  # already there: no batch
    assert tags.set_tag(store, dataset.dataset_id, [tags.example_ref(first)], "math") == 1
    assert tags.all_tags(store, dataset.dataset_id) == {"math": 1, "needs review": 2}
    listing = history.batches(store, dataset.dataset_id)
    assert [b.summary for b in listing[:2]] == [f"tagged example={first} 'math'", "tagged 2 clusters 'needs review'"]

    history.undo(store, dataset.dataset_id, listing[1].batch_id, actor="t")  # the clusters' tag, whole
    assert tags.all_tags(store, dataset.dataset_id) == {"math": 1}
    history.undo(store, dataset.dataset_id, history.batches(store, dataset.dataset_id)[0].batch_id, actor="t")
    assert tags.all_tags(store, dataset.dataset_id) == {"math": 1, "needs review": 2}  # redone

    assert tags.set_tag(store, dataset.dataset_id, refs[:1], "needs review", present=False) == 1
    assert tags.tags_of(store, dataset.dataset_id, refs) == {refs[1]: ["needs review"]}
    with pytest.raises(ValueError, match="1 to 60 characters"):
        tags.set_tag(store, dataset.dataset_id, refs, "   ")


def test_a_veto_is_undone_while_tags_are_stored(prepared_workspace: Path) -> None:
    """A tag's history target is JSON, a veto's is not: an undo plan holding only vetoes must not parse them
    (it did: the join with the tags read every target as JSON and the undo failed once any tag existed)."""
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    tags.set_tag(store, dataset.dataset_id, [tags.cluster_ref(k, 0)], "keep")
    curation.bulk_cluster_decision(store, dataset.dataset_id, k, [0, 1], vetoed=True)

    history.undo(store, dataset.dataset_id, actor="t")

    assert not curation.clusters(store, dataset.dataset_id, k).vetoed.any()
    assert tags.all_tags(store, dataset.dataset_id) == {"keep": 1}
    history.undo(store, dataset.dataset_id, actor="t")  # then the tag
    assert tags.all_tags(store, dataset.dataset_id) == {}


def test_the_export_can_keep_only_what_carries_a_tag(prepared_workspace: Path) -> None:
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    k = dataset.active_k
    table = curation.clusters(store, dataset.dataset_id, k)
    page = curation.example_page(store, dataset.dataset_id, k, cluster_id=2, limit=2)
    tags.set_tag(store, dataset.dataset_id, [tags.cluster_ref(k, 1)], "keep")
    tags.set_tag(store, dataset.dataset_id, [tags.example_ref(i) for i in page.example_id], "keep")
    kept = [row for chunk in curation.kept_row_chunks(store, dataset.dataset_id, k, 5, tag="keep") for row in chunk]
    size_1 = int(table.set_index("cluster_id").loc[1, "size"])
    assert len(kept) == size_1 + 2  # cluster 1's rows and the two tagged examples of cluster 2
    assert {row[1] for row in kept} == {1, 2}
    assert curation.kept_counts(store, dataset.dataset_id, k, tag="keep") == {1: size_1, 2: 2}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from core.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_tags_lists_undoes_and_exports_by_tag(
    prepared_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = ("--workspace", str(prepared_workspace), "--dataset", "tiny")
    assert _run(capsys, "tag", "keep", "--search", "python", *ws)[:2] == (
        0,
        "put 'keep' on 6 of 6 (search: 'python')\n",
    )
    assert _run(capsys, "tag", "review", "--cluster", "0,1", *ws)[1].startswith("put 'review' on 2 of 2 (clusters 0,1")
    assert _run(capsys, "tag", *ws)[1] == "keep\t6\nreview\t2\n"
    out = tmp_path / "keep.jsonl"
    assert _run(capsys, "export", "--out", str(out), "--tag", "keep", *ws)[0] == 0
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert len(out.read_text().splitlines()) == 6 == manifest["counts"]["exported"]
    assert manifest["filter"] == {"tag": "keep"} and "tagged 'keep'" in manifest["selection"]
    assert _run(capsys, "undo", *ws)[0] == 0  # the clusters' tag, as one batch
    assert _run(capsys, "tag", *ws)[1] == "keep\t6\n"
    code, _, err = _run(capsys, "tag", "x", "--cluster", "99", *ws)
    assert code != 0 and "no cluster 99" in err
    code, _, err = _run(capsys, "tag", "x", "--example", "nope", *ws)
    assert code != 0 and "no example with id 'nope'" in err


def test_the_cli_renames_a_cluster_and_clears_the_name(prepared_workspace: Path, capsys: pytest.CaptureFixture[str]):
    ws = ("--workspace", str(prepared_workspace), "--dataset", "tiny")
    k = ds.get_dataset(Store(prepared_workspace), "tiny").active_k
    assert _run(capsys, "rename", "--cluster", "1", "--name", "Python code", *ws)[1] == (
        f"cluster 1 (k={k}) is now 'Python code'\n"
    )
    assert _run(capsys, "rename", "--cluster", "1", "--name", "Python code", *ws)[1].endswith(
        "was already 'Python code'\n"
    )
    code, out, _ = _run(capsys, "rename", "--cluster", "1", "--clear", *ws)
    assert code == 0 and "Python code" not in out
    code, _, err = _run(capsys, "rename", "--cluster", "99", "--name", "x", *ws)
    assert code != 0 and "cluster 99" in err
