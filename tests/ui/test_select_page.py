"""Select page: preview a strategy per cluster, save it, compare two selections, export one."""

from __future__ import annotations

import json

from core.score.scoring import build_scorer, score_dataset
from core.storage import curation, selections
from core.storage import datasets as ds
from core.storage.database import Store


def test_select_page_previews_saves_compares_and_the_export_page_exports_it(page, prepared_workspace):
    at = page("select").run()
    assert not at.exception
    assert at.selectbox(key="strategy").value == "kmq"
    assert at.selectbox(key="param_kmq_allocation").options == ["proportional", "equal", "equal_floor"]
    temperature = at.number_input(key="param_kmq_temperature")
    assert temperature.value == 1.0 and "1-36 score span" in temperature.help  # the kMQ code's scale
    at.number_input(key="budget").set_value(5.0).run()
    at.button(key="preview").click().run()
    assert "run the 'heuristics' scorer first" in at.error[0].value  # kMQ needs a quality score

    at.selectbox(key="strategy").select("random").run()
    at.button(key="preview").click().run()
    assert not at.exception
    assert at.metric[0].value == "5 of 24 kept examples"
    preview = at.dataframe[0].value
    assert preview.selected.sum() == 5 and (preview.selected <= preview["size"]).all()
    at.button(key="save_selection").click().run()
    assert "Saved selection #1" in at.success[0].value

    at.number_input(key="seed").set_value(7).run()
    at.button(key="preview").click().run()
    at.button(key="save_selection").click().run()
    store = Store(prepared_workspace)
    dataset = ds.get_dataset(store, "tiny")
    assert list(selections.listing(store, dataset.dataset_id).selection_id) == [2, 1]
    score_dataset(store, dataset, build_scorer("heuristics"))  # so the comparison has a quality to show
    at.run()
    assert at.dataframe[0].value.shape[0] == 2  # the saved selections (the preview is gone after saving)
    shared, only_first, only_second = (int(m.value) for m in at.metric[-4:-1])
    assert shared + only_first == 5 and shared + only_second == 5
    measures, per_cluster = (frame.value for frame in at.dataframe[1:3])  # after the saved selections
    measures = measures.set_index("metric")
    assert list(measures.columns) == ["#1 random 5 (seed 0)", "#2 random 5 (seed 7)"]
    assert all(1.0 <= float(v) <= 5.0 for v in measures.loc["diversity (Vendi score)"])  # four topics and a rest
    assert all(0.0 <= float(v) <= 1.0 for v in measures.loc["mean quality (combined)"])
    assert per_cluster["#1"].sum() == 5 and abs(per_cluster["share #2"].sum() - 1.0) < 1e-9

    export = page("export").run()
    export.selectbox(key="export_what").select(1).run()
    assert not export.exception
    assert export.metric[0].value == "5 of 24"


def test_a_picked_target_is_described_and_one_without_responses_is_refused_for_less(page, prepared_workspace):
    rows = [{"instruction": f"Question {i} about bread", "input": "", "output": ""} for i in range(12)]
    (prepared_workspace / "targets").mkdir()
    target = prepared_workspace / "targets" / "prompts.jsonl"
    target.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    at = page("select").run()
    at.selectbox(key="strategy").select("less").run()
    at.multiselect(key="param_less_target").select(str(target)).run()

    shown = " ".join(caption.value for caption in at.caption).replace("\\", "")  # unescape the markdown
    assert "target prompts: 12 rows, 0 with a response" in shown
    assert "end-of-turn token alone" in at.warning[0].value.replace("\\", "")  # told before anything runs
    at.number_input(key="budget").set_value(4.0).run()
    at.button(key="preview").click().run()
    assert not at.exception
    error = at.error[0].value.replace("\\", "")
    assert "has no responses" in error and "embedding_knn" in error


def test_above_the_in_page_limit_a_preview_runs_as_a_job_and_shows_when_it_ends(page, prepared_workspace, monkeypatch):
    import time

    from core import jobs
    from core.select import job as select_job

    monkeypatch.setattr(select_job, "PREVIEW_IN_PAGE_ROWS", 10)  # tiny's 24 rows are then "large"
    at = page("select").run()
    assert "24 rows: the preview runs in the background" in " ".join(c.value for c in at.caption)
    at.selectbox(key="strategy").select("random").run()
    at.number_input(key="budget").set_value(5.0).run()
    at.button(key="preview").click().run()
    assert not at.exception
    job_id = at.session_state["select_job"]
    deadline = time.monotonic() + 180
    while jobs.read_status(prepared_workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
        time.sleep(0.3)
    assert jobs.read_status(prepared_workspace, job_id).state == "done", jobs.read_log(prepared_workspace, job_id)
    at.run()
    assert not at.exception
    assert at.metric[0].value == "5 of 24 kept examples"
    at.button(key="save_selection").click().run()
    assert "Saved selection #1" in at.success[0].value
    store = Store(prepared_workspace)
    assert len(selections.items(store, 1)) == 5


def test_the_preview_says_how_many_picks_come_from_clusters_below_the_quality_threshold(page, tmp_path, monkeypatch):
    from core.prepare import PrepareOptions, prepare
    from core.score import quality, scoring
    from tests.conftest import KEYWORD_EMBEDDER, keyword_rows, write_jsonl

    rows = keyword_rows()
    for number, row in enumerate(rows):
        if "planet" in row["instruction"]:
            row["output"] = f"{number} plus 2 is {number + 5}."  # wrong arithmetic: quality 0.2
    workspace = tmp_path / "low"
    store = Store(workspace)
    prepare(store, write_jsonl(tmp_path / "low.jsonl", rows), PrepareOptions(embedder=KEYWORD_EMBEDDER, k_grid=(4,)))
    dataset = ds.get_dataset(store)
    scoring.score_dataset(store, dataset, scoring.build_scorer("heuristics"))
    monkeypatch.setenv("CURATE_WORKSPACE", str(workspace))
    at = page("select").run()
    at.number_input(key="budget").set_value(12.0).run()
    at.button(key="preview").click().run()
    assert not at.exception
    picked = selections_preview_rows(at)
    expected, _ = quality.picks_below(
        quality.example_quality(store, dataset), ds.assignments(store, dataset.dataset_id, 4), picked
    )
    assert expected > 0  # kMQ gave the low cluster its quota
    note = next(caption.value for caption in at.caption if "picks come from" in caption.value)
    assert note.startswith(f"{expected} of the 12 picks come from 1 clusters whose mean quality is below 0.3")

    at.button(key="veto_low_clusters").click().run()  # leave them out: the low cluster vetoed, the preview gone
    assert not at.exception
    (low,) = quality.clusters_below(
        quality.example_quality(store, dataset), ds.assignments(store, dataset.dataset_id, 4), picked
    )
    assert curation.clusters(store, dataset.dataset_id, 4).set_index("cluster_id").vetoed[low]
    assert "selection_preview" not in at.session_state and at.success[0].value.startswith("Vetoed 1 clusters")
    at.button(key="preview").click().run()
    assert quality.picks_below(
        quality.example_quality(store, dataset),
        ds.assignments(store, dataset.dataset_id, 4),
        selections_preview_rows(at),
    ) == (0, 0)  # a new preview draws nothing from it


def selections_preview_rows(at) -> list[int]:
    """The row indices of the page's current preview (what the caption counts)."""
    return list(at.session_state["selection_preview"][1].row_idx)
