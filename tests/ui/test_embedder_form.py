"""Datasets page: the embedder choice comes from the EMBEDDERS registry, and its settings reach the prepare job."""

from __future__ import annotations

from core import jobs
from core.embed.embedders import EMBEDDERS


def test_the_embedder_choice_and_its_changed_settings_reach_the_prepare_job(page, monkeypatch):
    launched = []
    monkeypatch.setattr(jobs, "launch", lambda workspace, spec: launched.append(spec.to_params()) or "fake")
    at = page("datasets").run()
    assert at.selectbox(key="embedder").options == [
        getattr(EMBEDDERS.get(name), "title", name) for name in EMBEDDERS.names()
    ]
    assert at.selectbox(key="embedder").value == "sentence-transformers"
    at.button(key="prepare").click().run()
    assert launched[-1]["options"]["embedder"] is None  # the default model, so CURATE_EMBED_MODEL still applies
    at.selectbox(key="embedder").select("hashing").run()
    at.number_input(key="embedder_hashing_dim").set_value(64).run()
    at.button(key="prepare").click().run()
    assert not at.exception
    assert launched[-1]["options"]["embedder"] == {"name": "hashing", "dim": 64}
