"""Acceptance on the sample data with the cheap ``heuristics`` scorer only: the proposed vetoes are the planted
defect groups and nothing else, and every planted group is proposed or flagged.

``sample_data/sample.jsonl`` (2,240 rows, ten clean topics, four planted defect groups: exact duplicates,
cut-off or empty answers, wrong arithmetic, gibberish; sample_data/README.md) is prepared with the ``hashing``
embedder for speed and its default k sweep, scored with ``heuristics`` and the default weights. The topic
column is read here only, to check the result; the studio never reads it.

- precision: every proposed cluster is a planted group's (most of its rows are one planted group's);
- recall: every planted group is found, each of its rows in a proposed cluster or flagged by a defect flag
  (the gibberish group shares a cluster with clean rows under the hashing embedder: it is flagged, not proposed);
- no clean topic is proposed for its short answers (the misleading proposals of issue 17).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.prepare import PrepareOptions, prepare
from core.score import proposals, quality, scoring
from core.storage import datasets as ds
from core.storage.database import Store

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "sample.jsonl"
PLANTED = ("planted/duplicate", "planted/truncated", "planted/wrong_math", "planted/gibberish")
FOUND_SHARE = 0.95  # of a planted group's rows, found (proposed or flagged): 59 of the 60 gibberish rows are


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """(raw signals with topic and cluster per row, the proposals) with the default weights and threshold."""
    store = Store(tmp_path_factory.mktemp("sample") / "ws")
    prepare(store, SAMPLE, PrepareOptions(name="sample", embedder={"name": "hashing"}))
    dataset = ds.get_dataset(store)
    scoring.score_dataset(store, dataset, scoring.build_scorer("heuristics"))
    raw = quality.raw_signals(store, dataset)
    clusters = ds.assignments(store, dataset.dataset_id, int(dataset.active_k))
    found = proposals.propose(raw, quality.DEFAULT_WEIGHTS, clusters, quality.DEFAULT_THRESHOLD)
    topics = [json.loads(line)["topic"] for line in SAMPLE.read_text().splitlines()]
    return raw.assign(topic=topics, cluster=clusters), found


def test_every_proposed_cluster_is_a_planted_defect_group(sample):
    rows, found = sample
    assert found
    for proposal in found:
        members = rows.topic[rows.cluster == proposal.cluster_id]
        top, count = members.value_counts().index[0], members.value_counts().iloc[0]
        assert top in PLANTED and count / len(members) > 0.5, (proposal.summary(), members.value_counts())
        assert proposal.reasons and proposal.ground == "flags"
        assert all(rows.topic[row] in PLANTED for row in proposal.examples)  # the rows shown drive it


def test_every_planted_defect_group_is_proposed_or_flagged(sample):
    rows, found = sample
    proposed = rows.cluster.isin([p.cluster_id for p in found])
    flagged = proposals.defective(rows, quality.DEFAULT_WEIGHTS)
    shares = (proposed | flagged).groupby(rows.topic).mean()
    report = pd.DataFrame({"found": shares, "flagged": flagged.groupby(rows.topic).mean()})
    for topic in PLANTED:
        assert shares[topic] >= FOUND_SHARE, report
    assert (flagged[~rows.topic.isin(PLANTED)] == 0).all(), report  # no clean row carries a defect flag
    home = {topic: rows.cluster[rows.topic == topic].mode()[0] for topic in ("planted/duplicate", "planted/wrong_math")}
    assert set(home.values()) <= {p.cluster_id for p in found}  # the duplicate and arithmetic clusters proposed


def test_the_reasons_name_the_planted_defect(sample):
    rows, found = sample
    expected = {
        "planted/duplicate": {"exact_duplicate"},
        "planted/truncated": {"cut_off_response", "empty_response"},
        "planted/wrong_math": {"arithmetic_error"},
        "planted/gibberish": {"gibberish"},
    }
    for proposal in found:
        topic = rows.topic[rows.cluster == proposal.cluster_id].mode()[0]
        assert {reason.signal for reason in proposal.reasons} <= expected[topic], proposal.summary()
        assert all(reason.value > 10 * reason.dataset for reason in proposal.reasons)  # a group, not the data
