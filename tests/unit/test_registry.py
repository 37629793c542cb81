"""Registries: parameters described from dataclass fields, parsed and checked; the loops' frozen configs
behind LOOPS, which the CLI's loop parameters come from; the clusterer built through CLUSTERERS."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar, Literal

import numpy as np
import pytest

from core.cluster import clustering
from core.registry import Param, Registry, changed_values, param, params_of
from core.runs.iterative_kmq import IterativeKMQConfig
from core.runs.iterit import IterITConfig
from core.runs.loops import LOOPS, config_for_run


@dataclasses.dataclass(frozen=True)
class Toy:
    """A toy plugin.

    Parameters
    ----------
    size : how many, a count
        that may be large.
    mode, style : how.
    """

    name: ClassVar[str] = "toy"
    size: int = param(3, low=1, high=10)
    mode: Literal["fast", "slow"] = "fast"
    style: str | None = None
    rate: float = param(0.5, help="from the field")
    words: tuple[str, ...] = ("a", "b")


def test_params_come_from_the_fields_with_choices_optional_bounds_and_help():
    size, mode, style, rate = params_of(Toy)  # the tuple field is no form parameter
    assert size == Param("size", int, 3, low=1, high=10, help="how many, a count that may be large.")
    assert (mode.kind, mode.choices, mode.default, mode.help) == (str, ("fast", "slow"), "fast", "how.")
    assert (style.kind, style.optional, style.default, style.help) == (str, True, None, "how.")
    assert (rate.kind, rate.help) == (float, "from the field")


def test_a_param_parses_strings_by_its_type_and_refuses_what_is_out_of_bounds_or_not_a_choice():
    size, mode, style, _ = params_of(Toy)
    assert size.parse("4") == 4 and mode.parse("slow") == "slow" and style.parse("none") is None
    assert Param("flag", bool, False).parse("yes") is True
    for bad, message in ((size, "11"), (size, "0"), (size, "three"), (mode, "medium")):
        with pytest.raises(ValueError, match=bad.name):
            bad.parse(message)
    assert changed_values(params_of(Toy), {"size": 3, "mode": "slow"}) == {"mode": "slow"}


def test_a_registry_parses_builds_and_refuses_unknown_parameters():
    registry: Registry[Toy] = Registry("toy")
    registry.register(Toy)
    assert registry.parse("toy", {"size": "5"}) == {"size": 5}
    assert registry.build("toy", size=5) == Toy(size=5)
    assert registry.summary("toy") == "A toy plugin."
    with pytest.raises(ValueError, match="no parameter"):
        registry.parse("toy", {"depth": "1"})
    with pytest.raises(TypeError, match="no parameter"):
        registry.build("toy", depth=1)
    with pytest.raises(KeyError, match="unknown toy"):
        registry.get("other")


def test_a_title_is_the_human_name_and_the_id_stands_in_for_a_missing_one():
    from core.select.strategies import STRATEGIES

    registry: Registry[Toy] = Registry("toy")
    registry.register(Toy)
    assert registry.title("toy") == "toy"  # no title declared
    assert STRATEGIES.title("kmq") == "kMQ (k-means quality)"
    from core.score.scorers import SCORERS

    assert SCORERS.title("ifd") == "IFD (instruction-following difficulty)"
    for family in (STRATEGIES, LOOPS, SCORERS):  # every member names itself for the pickers, each differently
        titles = [family.get(name).__dict__.get("title") for name in family.names()]
        assert all(titles) and len(set(titles)) == len(titles), titles


def test_each_loop_is_a_frozen_config_whose_run_fields_come_from_the_run():
    assert LOOPS.names() == ["iterative_kmq", "iterit"]
    kmq = config_for_run("iterative_kmq", budget=9, rounds=3, seed=4, params={"within": "softmax"})
    assert kmq == IterativeKMQConfig(budget=9, rounds=3, rng_seed=4, within="softmax")
    with pytest.raises(dataclasses.FrozenInstanceError):
        kmq.rounds = 4  # type: ignore[misc]
    assert config_for_run("iterit", budget=7, rounds=3, seed=0, params={}) == IterITConfig(epochs=3, per_epoch=2)
    for name in LOOPS.names():
        fields = {field.name for field in dataclasses.fields(LOOPS.get(name))}
        assert set(LOOPS.get(name).run_fields) <= fields
        assert {p.name for p in LOOPS.params(name)} == fields - set(LOOPS.get(name).run_fields)


def test_loop_params_are_parsed_by_the_config_fields_and_run_fields_are_refused():
    assert LOOPS.parse("iterative_kmq", {"continue_training": "true", "temperature": "2", "quality": ""}) == {
        "continue_training": True,
        "temperature": 2.0,
        "quality": None,
    }
    with pytest.raises(ValueError, match="no parameter"):
        LOOPS.parse("iterit", {"budget": "5"})
    with pytest.raises(ValueError, match="rule must be one of"):
        LOOPS.parse("iterative_kmq", {"rule": "mine"})


def test_the_cli_run_passes_typed_loop_parameters_and_refuses_unknown_ones(workspace, monkeypatch, capsys):
    from core import cli
    from core.runs import run as runs

    launched = []
    monkeypatch.setattr(runs, "launch_run", lambda workspace, spec: launched.append(spec) or "fake-run")
    args = ["run", "--workspace", str(workspace), "--strategy", "iterit", "--budget", "6", "--rounds", "3"]
    assert cli.main([*args, "--param", "decay=0.2", "--param", "static=true"]) == 0
    (spec,) = launched
    assert (spec.loop, spec.rounds, spec.strategy, spec.loop_params) == (
        "iterit",
        3,
        None,
        {"decay": 0.2, "static": True},
    )
    assert cli.main([*args, "--param", "depth=2"]) == 1
    assert "no parameter(s) ['depth']" in capsys.readouterr().err


def test_the_cli_lists_every_family_with_its_parameters(capsys):
    from core import cli

    assert cli.main(["params", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == set(cli.FAMILIES)
    assert [p["name"] for p in listing["loops"]["iterit"]["params"]][:2] == ["update_ratio", "decay"]
    assert {p["name"] for p in listing["strategies"]["kmq"]["params"]} == {
        "allocation",
        "within",
        "quality",
        "temperature",
        "include_empty",
    }
    assert "kmeans" in listing["clusterers"] and "umap" in listing["reducers"] and "hashing" in listing["embedders"]
    assert cli.main(["params", "loops"]) == 0
    assert "continue_training (bool, default False)" in capsys.readouterr().out


@dataclasses.dataclass(frozen=True)
class ModuloClusterer:
    """Row i goes to cluster i mod k (a stand-in that makes the sweep's labels known exactly)."""

    name: ClassVar[str] = "modulo-test"
    k: int = 2
    seed: int = 0

    def fit(self, embeddings: np.ndarray) -> clustering.Clustering:
        labels = (np.arange(len(embeddings)) % self.k).astype(np.int32)
        centroids = np.stack([embeddings[labels == c].mean(axis=0) for c in range(self.k)])
        return clustering.Clustering(labels, centroids, float(((embeddings - centroids[labels]) ** 2).sum()))


def test_the_k_sweep_builds_its_clusterer_through_the_registry(monkeypatch):
    monkeypatch.setitem(clustering.CLUSTERERS._classes, ModuloClusterer.name, ModuloClusterer)
    vectors = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    points, labels = clustering.sweep_k(vectors, [2, 3], silhouette_sample=100, clusterer="modulo-test")
    assert [p.k for p in points] == [2, 3]
    np.testing.assert_array_equal(labels[3], np.arange(12) % 3)
    with pytest.raises(KeyError, match="unknown clusterer"):
        clustering.sweep_k(vectors, [2], clusterer="nope")


def test_the_score_command_help_names_every_registered_scorer(capsys):
    from core import cli
    from core.score.scorers import SCORERS

    with pytest.raises(SystemExit):
        cli.main(["score", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert all(name in shown for name in SCORERS.names())
