"""Export of the curated pool (original rows + manifest) and the command line that drives the same functions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import core
from core.cli import main
from core.export import build_export, manifest_path_for, write_export
from core.prepare import PrepareOptions, prepare
from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import KEYWORD_EMBEDDER, KEYWORDS, keyword_rows, write_jsonl


@pytest.fixture
def rich_rows() -> list[dict]:
    """The keyword rows with a user id, a source and a nested field the export must keep."""
    return [
        {"id": f"r{n:02d}", **row, "source": "handmade" if n % 2 else "web", "meta": {"n": n}}
        for n, row in enumerate(keyword_rows())
    ]


def _cluster_of(store: Store, dataset_id: int, keyword: str, k: int = 4) -> int:
    table = curation.clusters(store, dataset_id, k)
    return int(table.loc[table.label == keyword, "cluster_id"].item())


def test_export_keeps_original_rows_minus_vetoes_with_a_manifest(tmp_path: Path, rich_rows: list[dict]) -> None:
    source = write_jsonl(tmp_path / "rich.jsonl", rich_rows)
    store = Store(tmp_path / "ws")
    prepare(store, source, PrepareOptions(name="rich", embedder=KEYWORD_EMBEDDER, k_grid=(2, 4), seed=0))
    info = ds.get_dataset(store, "rich")
    python, bread = _cluster_of(store, info.dataset_id, "python"), _cluster_of(store, info.dataset_id, "bread")
    curation.set_cluster_veto(store, info.dataset_id, 4, python, True)
    curation.set_cluster_weight(store, info.dataset_id, 4, bread, 2.0)
    page, _ = curation.examples(store, info.dataset_id, 4, search="explain capital number 5")
    vetoed_example = page.example_id.item()
    curation.set_example_veto(store, info.dataset_id, vetoed_example, True)

    out, manifest_file = write_export(
        build_export(store, ds.get_dataset(store, "rich")), tmp_path / "out" / "curated.jsonl"
    )

    expected = [r for r in rich_rows if "python" not in r["instruction"] and "capital number 5" not in r["instruction"]]
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert exported == expected
    assert len(exported) == 17
    assert manifest_file == tmp_path / "out" / "curated.manifest.json" == manifest_path_for(out)
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    assert manifest["dataset"]["file_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["dataset"]["name"] == "rich"
    assert manifest["embedder"]["name"] == "keyword-test"
    assert manifest["embedder"]["fields"] == ["instruction", "input"]
    assert (manifest["clustering"]["k"], manifest["clustering"]["seed"]) == (4, 0)
    assert manifest["vetoes"] == {"clusters": [python], "examples": [vetoed_example]}
    assert manifest["weights"] == {str(bread): 2.0}
    assert (manifest["counts"]["exported"], manifest["counts"]["total"]) == (17, 24)
    per_cluster = manifest["counts"]["per_cluster"]
    assert per_cluster[str(python)] == {
        "label": "python",
        "computed_label": "python",  # the same: no curator's name
        "size": 6,
        "exported": 0,
        "vetoed": True,
        "weight": 1.0,
    }
    assert per_cluster[str(bread)]["weight"] == 2.0
    assert sum(c["exported"] for c in per_cluster.values()) == 17
    assert manifest["app"] == {"name": "curation-studio", "version": core.__version__}
    assert manifest["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (manifest["output"]["rows"], manifest["output"]["file"]) == (17, "curated.jsonl")
    assert len(manifest["example_ids"]) == 17
    assert vetoed_example not in manifest["example_ids"]


def _rows_with_odd_values() -> list[dict]:
    """The keyword rows with non-ASCII text, an emoji, a nested field, numbers of several JSON types and an extra
    field placed first, so key order and value types show in the export."""
    rows = keyword_rows(per_topic=2)
    rows[0] = {"tag": "café ☕ 😀", **rows[0], "meta": {"n": 1, "score": 0.5, "ok": True, "none": None}}
    rows[1] = {**rows[1], "output": "Ünïcödé – “quotes” and \u2028 a line separator", "big": 12345678901234567890}
    return rows


def _export_bytes(tmp_path: Path, source: Path) -> bytes:
    store = Store(tmp_path / "ws")
    prepare(store, source, PrepareOptions(name="odd", embedder=KEYWORD_EMBEDDER, k_grid=(2,), seed=0))
    return build_export(store, ds.get_dataset(store, "odd")).jsonl


def test_rows_written_as_json_dumps_writes_them_export_byte_for_byte(tmp_path: Path) -> None:
    source = tmp_path / "plain.jsonl"
    source.write_bytes("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in _rows_with_odd_values()).encode())

    assert _export_bytes(tmp_path, source) == source.read_bytes()


def test_rows_written_with_escapes_and_compact_separators_export_equal_values_not_equal_bytes(tmp_path: Path) -> None:
    rows = _rows_with_odd_values()
    source = tmp_path / "escaped.jsonl"
    source.write_text("".join(json.dumps(row, separators=(",", ":")) + "\r\n" for row in rows), encoding="ascii")

    exported = _export_bytes(tmp_path, source)

    assert exported != source.read_bytes()
    lines = exported.decode("utf-8").split("\n")[:-1]  # not splitlines(): U+2028 inside a value would split it
    assert [json.loads(line) for line in lines] == rows
    assert [list(json.loads(line)) for line in lines] == [list(row) for row in rows]  # field order kept
    assert lines[0] == json.dumps(rows[0], ensure_ascii=False)  # the characters themselves, ", " and ": "
    assert "\\u" not in lines[0] and "café ☕ 😀" in lines[0]


def test_export_at_another_k_ignores_the_vetoes_of_the_active_k(workspace: Path) -> None:
    store = Store(workspace)
    info = ds.get_dataset(store, "tiny")
    curation.set_cluster_veto(store, info.dataset_id, 4, 0, True)

    assert build_export(store, info).n_rows == 18
    assert build_export(store, info, k=2).n_rows == 24


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _clusters(capsys: pytest.CaptureFixture[str], ws: str, *extra: str) -> dict:
    code, out, _ = _run(capsys, "clusters", "--json", "--workspace", ws, *extra)
    assert code == 0
    return json.loads(out)


def test_cli_prepare_curate_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write_jsonl(tmp_path / "tiny.jsonl", keyword_rows())
    ws = str(tmp_path / "ws")
    prepare_args = ("prepare", str(source), "--name", "tiny", "--embedder", "keyword-test", "--k-grid", "2,4")

    code, out, _ = _run(capsys, *prepare_args, "--workspace", ws)
    assert code == 0
    assert out == "prepared 'tiny': 24 rows, 24 embedded, 0 from cache; best silhouette k=4, knee k=None\n"
    code, out, _ = _run(capsys, *prepare_args, "--workspace", ws)
    assert (code, out) == (0, "dataset 'tiny' is already prepared from this file: nothing recomputed\n")

    listing = _clusters(capsys, ws)
    assert (listing["dataset"], listing["k"], listing["best_k"]) == ("tiny", 4, 4)
    assert sorted(c["label"] for c in listing["clusters"]) == sorted(KEYWORDS)
    assert [c["size"] for c in listing["clusters"]] == [6, 6, 6, 6]

    two = _clusters(capsys, ws, "--k", "2")
    assert two["k"] == 2
    assert [c["cluster"] for c in two["clusters"]] == [0, 1]
    sizes = {c["cluster"]: c["size"] for c in two["clusters"]}
    assert sum(sizes.values()) == 24

    assert _run(capsys, "veto", "--cluster", "0", "--workspace", ws)[:2] == (0, "cluster 0 (k=2) is now vetoed\n")
    assert [c["vetoed"] for c in _clusters(capsys, ws)["clusters"]] == [True, False]
    assert _run(capsys, "veto", "--cluster", "0", "--undo", "--workspace", ws)[:2] == (
        0,
        "cluster 0 (k=2) is now not vetoed\n",
    )
    assert _run(capsys, "veto", "--cluster", "0", "--undo", "--workspace", ws)[:2] == (
        0,
        "cluster 0 (k=2) was already not vetoed\n",
    )
    assert [c["vetoed"] for c in _clusters(capsys, ws)["clusters"]] == [False, False]

    assert _run(capsys, "weight", "--cluster", "1", "--value", "2.5", "--workspace", ws)[:2] == (
        0,
        "cluster 1 (k=2) weight = 2.5\n",
    )
    assert [c["weight"] for c in _clusters(capsys, ws)["clusters"]] == [1.0, 2.5]

    _run(capsys, "veto", "--cluster", "0", "--workspace", ws)
    out_file = tmp_path / "exports" / "kept.jsonl"
    code, out, _ = _run(capsys, "export", "--out", str(out_file), "--workspace", ws)
    assert code == 0
    assert out.startswith(f"wrote {sizes[1]} rows to {out_file}")
    assert len(out_file.read_text(encoding="utf-8").splitlines()) == sizes[1]
    manifest = json.loads((tmp_path / "exports" / "kept.manifest.json").read_text(encoding="utf-8"))
    assert (manifest["clustering"]["k"], manifest["vetoes"]["clusters"], manifest["weights"]) == (2, [0], {"1": 2.5})

    code, out, _ = _run(capsys, "history", "--json", "--workspace", ws)
    actions = [(row["action"], row["target"], row["new_value"]) for row in json.loads(out)]
    assert actions == [
        ("cluster_veto", "k=2/cluster=0", "true"),
        ("cluster_weight", "k=2/cluster=1", "2.5"),
        ("cluster_veto", "k=2/cluster=0", "false"),
        ("cluster_veto", "k=2/cluster=0", "true"),
        ("choose_k", "k", "2"),
    ]


def test_cli_bad_input_file_prints_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad_rows.jsonl"
    bad.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n{oops\n", encoding="utf-8")

    code, out, err = _run(
        capsys, "prepare", str(bad), "--embedder", "keyword-test", "--workspace", str(tmp_path / "ws")
    )

    assert code == 1
    assert out == ""
    # what a terminal shows: a progress bar erased with carriage returns leaves only the text after the last one
    visible = [line.rsplit("\r", 1)[-1] for line in err.rstrip("\n").split("\n")]
    assert visible == [
        "error: bad_rows.jsonl, line 2: malformed JSON: Expecting property name enclosed in double "
        "quotes at column 2 (nothing was stored)"
    ]


def test_cli_prepare_refuses_a_name_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", keyword_rows(per_topic=1))
    ws = str(tmp_path / "ws")

    code, out, err = _run(
        capsys, "prepare", str(data), "--name", "my\ndata", "--embedder", "keyword-test", "--workspace", ws
    )

    assert (code, out) == (1, "")
    assert err.startswith("error: name: the dataset name 'my\\ndata' holds the control or invisible character '\\n'")
    assert "letters, digits, spaces" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "ws" / "curate.duckdb").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("clusters", "--dataset", "nope"), "error: No dataset named 'nope'"),
        (("veto", "--cluster", "99"), "error: cluster 99 does not exist at k=4"),
        (("weight", "--cluster", "1", "--value", "-1"), "error: a cluster weight must be between 0 and 10"),
        (("veto", "--example", "nope"), "error: no example with id 'nope'"),
    ],
)
def test_cli_curation_errors_exit_1_with_one_line(
    workspace: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    code, out, err = _run(capsys, *argv, "--workspace", str(workspace))

    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert err.count("\n") == 1
