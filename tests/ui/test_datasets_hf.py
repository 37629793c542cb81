"""The Datasets page's Hugging Face source: a save_to_disk folder and its split, given on the page, is prepared in
the background; a folder that is not there is refused at the button."""

from __future__ import annotations

import time

import pytest

from core import jobs
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import keyword_rows

datasets = pytest.importorskip("datasets")
HF_SOURCE = "Hugging Face dataset or folder"


def test_a_save_to_disk_folder_and_its_split_given_on_the_page_is_prepared(page, prepared_workspace, tmp_path):
    rows = [dict(row, n=i) for i, row in enumerate(keyword_rows(per_topic=3))]
    folder = tmp_path / "chats"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows[:4]), "test": datasets.Dataset.from_list(rows)}
    ).save_to_disk(str(folder))

    at = page("datasets").run()
    at.radio(key="source").set_value(HF_SOURCE).run()
    at.text_input(key="hf_source").input(str(folder)).run()
    at.text_input(key="hf_split").input("test").run()
    assert at.text_input(key="dataset_name").value == "chats-test"  # the folder's name and the split
    at.selectbox(key="embedder").select("hashing").run()
    at.button(key="prepare").click().run()
    assert not at.exception

    job_id = at.session_state["prepare_job"]
    params = jobs.read_status(prepared_workspace, job_id).params
    assert (params["path"], params["options"]["hf_split"]) == (str(folder), "test")
    deadline = time.monotonic() + 180
    while jobs.read_status(prepared_workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
        time.sleep(0.5)
    assert jobs.read_status(prepared_workspace, job_id).state == "done", jobs.read_log(prepared_workspace, job_id)
    at.run()
    assert any("chats-test is ready: 12 rows" in s.value.replace("\\", "") for s in at.success)  # plain() escapes
    dataset = ds.get_dataset(Store(prepared_workspace), "chats-test")
    assert dataset.source_path == str(folder)
    assert dataset.source is not None and dataset.source["split"] == "test"


def test_a_hugging_face_folder_that_is_not_there_is_refused_at_the_button(page, prepared_workspace, tmp_path):
    at = page("datasets").run()
    at.radio(key="source").set_value(HF_SOURCE).run()
    at.text_input(key="hf_source").input(str(tmp_path / "nowhere")).run()
    at.selectbox(key="embedder").select("hashing").run()
    at.button(key="prepare").click().run()

    assert not at.exception
    errors = [error.value.replace("\\", "") for error in at.error]  # plain() escapes markdown characters
    assert any(error.startswith("path: no folder at ") and "nowhere" in error for error in errors), errors
    assert "prepare_job" not in at.session_state
    assert jobs.list_jobs(prepared_workspace) == []


def test_an_unknown_hub_dataset_fails_in_the_job_with_one_clear_line(page, prepared_workspace):
    at = page("datasets").run()
    at.radio(key="source").set_value(HF_SOURCE).run()
    at.text_input(key="hf_source").input("no-such-org/no-such-set").run()  # the page adds hf:
    at.selectbox(key="embedder").select("hashing").run()
    at.button(key="prepare").click().run()
    job_id = at.session_state["prepare_job"]
    deadline = time.monotonic() + 180
    while jobs.read_status(prepared_workspace, job_id).active:
        assert time.monotonic() < deadline, jobs.read_log(prepared_workspace, job_id)
        time.sleep(0.5)

    status = jobs.read_status(prepared_workspace, job_id)
    assert status.state == "failed"
    assert status.error.startswith("hf:no-such-org/no-such-set: offline mode is on"), status.error
    at.run()
    assert any("failed" in error.value and "offline mode is on" in error.value for error in at.error)
    assert [d.name for d in ds.list_datasets(Store(prepared_workspace))] == ["tiny"]
