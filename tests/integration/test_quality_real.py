"""Acceptance on the sample data with the real packaged models: the planted bad groups rank worst.

The whole of ``sample_data/sample.jsonl`` is prepared as a user would (packaged MiniLM, default k
sweep; the session's prepared copy, tests/integration/conftest.py) and scored with the heuristics and TF-IDF diversity. The packaged SmolLM2 (IFD and perplexity)
scores a stratified subset only, a dozen examples of every topic and planted group (and three
duplicated questions with all their copies), to keep the test near two minutes on a 2-core CPU;
cluster means are taken over that subset. With the default weights and penalties, the clusters
holding the wrong-arithmetic, truncated and gibberish groups must be the worst and be proposed for
veto, and every copy of the duplicated answers must carry the exact-duplicate flag.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from core.prepare import PrepareOptions, prepare
from core.score import quality, scoring
from core.storage import datasets as ds
from core.storage import scores as score_store
from core.storage.database import Store
from tests.integration.conftest import copy_workspace

pytestmark = pytest.mark.real_model

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "sample.jsonl"
PLANTED_BAD = ("planted/wrong_math", "planted/truncated", "planted/gibberish")
PER_TOPIC = 12


def stratified_rows(topics: list[str], instructions: list[str]) -> list[int]:
    """Row indices: PER_TOPIC per topic (seeded), and every copy of three duplicated questions."""
    rng = random.Random(0)
    chosen: list[int] = []
    for topic in sorted(set(topics)):
        rows = [i for i, t in enumerate(topics) if t == topic]
        if topic == "planted/duplicate":
            questions = sorted({instructions[i] for i in rows})[:3]
            chosen += [i for i in rows if instructions[i] in questions]
        else:
            chosen += rng.sample(rows, PER_TOPIC)
    return sorted(chosen)


def score_subset(folder: Path) -> pd.DataFrame:
    """Prepare and score the sample in ``folder``; the LM-scored rows with topic, cluster and quality."""
    lines = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    store = Store(folder / "ws")
    prepare(store, SAMPLE, PrepareOptions(name="sample"))
    dataset = ds.get_dataset(store)
    for name in ("heuristics", "tfidf_diversity"):
        scoring.score_dataset(store, dataset, scoring.build_scorer(name))
    subset = stratified_rows([row["topic"] for row in lines], [row["instruction"] for row in lines])
    with store.read() as con:
        examples = con.execute(
            "SELECT row_idx, content_hash, instruction, input, output FROM examples WHERE dataset_id = ? "
            "ORDER BY row_idx",
            [dataset.dataset_id],
        ).df()
    todo = examples.iloc[subset].drop_duplicates("content_hash")
    scorer = scoring.build_scorer("ifd")  # what score_dataset does, on the chosen rows only
    key = scoring.score_key_for(store, dataset, scorer)
    score_store.register_run(store, key, scorer.name, {"name": scorer.name})
    score_store.put_scores(store, key, list(todo.content_hash), scorer.score(todo.reset_index(drop=True)))
    raw = quality.raw_signals(store, dataset)
    with store.read() as con:
        clusters = con.execute(
            "SELECT cluster_id FROM assignments WHERE dataset_id = ? AND k = ? ORDER BY row_idx",
            [dataset.dataset_id, dataset.active_k],
        ).fetchall()
    frame = raw.assign(
        topic=[row["topic"] for row in lines],
        cluster=[cluster for (cluster,) in clusters],
        quality=quality.example_quality_from(raw),
    )
    return frame.iloc[subset]


@pytest.fixture(scope="module")
def scored(prepared_sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    copy_workspace(prepared_sample, folder / "ws")  # score_subset's prepare of the same file reuses it
    return score_subset(folder)


def test_planted_wrong_truncated_and_gibberish_clusters_are_the_worst_and_proposed_for_veto(scored):
    means = scored.groupby("cluster").quality.mean().sort_values()
    home = {topic: Counter(scored.cluster[scored.topic == topic]).most_common(1)[0][0] for topic in PLANTED_BAD}
    worst = list(means.index[: len(set(home.values())) + 1])  # one cluster of slack for a mixed cluster
    report = pd.DataFrame({"cluster": means.index, "quality": means.to_numpy()})
    for topic, cluster in home.items():
        assert cluster in worst, f"{topic} (cluster {cluster}) not among the worst:\n{report}"
        assert means[cluster] < quality.DEFAULT_THRESHOLD, f"{topic} not proposed for veto:\n{report}"


def test_every_copy_of_the_duplicated_answers_is_flagged(scored):
    duplicates = scored[scored.topic == "planted/duplicate"]
    assert len(duplicates) == 15 and (duplicates.exact_duplicate == 1.0).all()
    assert (scored.exact_duplicate[scored.topic != "planted/duplicate"] == 0.0).all()


def test_the_defect_signals_fire_on_their_planted_groups(scored):
    by_topic = scored.groupby("topic")
    assert by_topic.arithmetic_error.mean()["planted/wrong_math"] == 1.0
    assert by_topic.arithmetic_error.sum().drop("planted/wrong_math").sum() == 0
    assert by_topic.perplexity_outlier.mean()["planted/gibberish"] >= 0.75
    truncated = scored[scored.topic == "planted/truncated"]
    assert ((truncated.empty_response + truncated.cut_off_response) >= 1).mean() >= 0.75


def test_with_lm_scores_every_proposed_veto_is_a_planted_group_and_says_why(scored):
    from core.score import proposals

    raw = scored.drop(columns=["topic", "cluster", "quality"]).reset_index(drop=True)
    topics, clusters = scored.topic.reset_index(drop=True), scored.cluster.to_numpy()
    found = proposals.propose(raw, quality.DEFAULT_WEIGHTS, clusters)
    assert found
    for proposal in found:
        members = topics[clusters == proposal.cluster_id]
        assert members.value_counts().index[0].startswith("planted/"), (proposal.summary(), members.value_counts())
        assert proposal.reasons
    proposed = {p.cluster_id for p in found}
    for topic in PLANTED_BAD:  # each bad group is proposed, or its rows flagged where it shares a cluster
        rows = topics == topic
        caught = pd.Series(clusters, index=topics.index).isin(proposed) | proposals.defective(
            raw, quality.DEFAULT_WEIGHTS
        )
        assert caught[rows].mean() >= 0.9, topic
