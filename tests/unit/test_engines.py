"""The engines without Ray: the local engine's parts, merges and progress; the shard folder a Ray run leaves;
how the ray engine sizes its shards; the engine a CLI flag or a job file names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pytest

from core.engines import LocalEngine, RayEngine, build_engine, engine_from_options, engine_from_spec
from core.engines._ray import _balanced
from core.engines._shards import ShardFolder, shard_name
from core.progress import Progress


@dataclasses.dataclass(frozen=True)
class Doubling:
    """A stage that doubles ``x``; counts how often its model was loaded."""

    name: ClassVar[str] = "double"
    requires: ClassVar[tuple[str, ...]] = ()
    opened: list[int] = dataclasses.field(default_factory=list)

    def key(self) -> str:
        return "double"

    def open(self):
        self.opened.append(1)

        def batch(table: pa.Table, rows_done=None) -> pa.Table:
            if rows_done:
                rows_done(table.num_rows)
            return pa.table({"key": table.column("key"), "y": [2 * x for x in table.column("x").to_pylist()]})

        return batch


class Counting(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def update(self) -> None:
        self.seen.append(self.done)


def _table(first: int, n: int) -> pa.Table:
    return pa.table({"key": [str(i) for i in range(first, first + n)], "x": list(range(first, first + n))})


def test_the_local_engine_merges_each_part_and_counts_its_rows_once(tmp_path: Path) -> None:
    stage, merged, progress = Doubling(), [], Counting()
    report = LocalEngine().run(
        stage, [_table(0, 5), _table(5, 3)], merged.append, folder=tmp_path, shard_rows=2, total=8, progress=progress
    )
    assert [t.num_rows for t in merged] == [2, 2, 1, 2, 1]  # parts never span two input tables
    assert [y for t in merged for y in t.column("y").to_pylist()] == [2 * x for x in range(8)]
    assert (report.rows, report.computed_shards, len(stage.opened)) == (8, 5, 1)  # the model loaded once
    assert progress.done == 8 and max(progress.seen) == 8  # rows reported during a part are not counted again


def test_the_local_engine_loads_no_model_when_nothing_is_to_do(tmp_path: Path) -> None:
    stage = Doubling()
    report = LocalEngine().run(
        stage, [_table(0, 0)], print, folder=tmp_path, shard_rows=4, total=0, progress=Progress()
    )
    assert stage.opened == [] and report.rows == 0


def test_a_shard_folder_writes_whole_shards_and_lists_them_in_order(tmp_path: Path) -> None:
    shards = ShardFolder(str(tmp_path / "s"))
    shards.prepare()
    for number in (0, 1, 10):
        shards.write("in", shard_name(number), _table(number, 2))
    shards.write("out", shard_name(1), _table(1, 2))
    assert shards.names("in") == ["000000", "000001", "000010"] and shards.next_number() == 11
    assert not list((tmp_path / "s" / "in").glob(".*"))  # no temporary file left behind
    assert shards.exists("out", "000001") and not shards.exists("out", "000000")
    shards.delete("000001")  # a merged shard: both halves go
    assert shards.names("in") == ["000000", "000010"] and shards.names("out") == []
    assert shards.read("in", "000010").column("x").to_pylist() == [10, 11]


@pytest.mark.parametrize(
    ("rows", "total", "actors", "expected"),
    [(1024, 20_000, 2, 1024), (128, 500, 2, 63), (128, 3, 2, 1), (64, 1_000_000, 32, 64)],
)
def test_shards_are_cut_so_every_actor_gets_several(rows: int, total: int, actors: int, expected: int) -> None:
    assert _balanced(rows, total, actors) == expected


def test_the_engine_named_by_a_flag_or_a_job_file(monkeypatch) -> None:
    monkeypatch.setenv("CURATE_RAY_ADDRESS", "10.0.0.5:6379")
    assert engine_from_options(None).name == "local"
    assert engine_from_options("ray") == RayEngine(address="10.0.0.5:6379")
    assert engine_from_options("ray", "auto") == RayEngine(address="auto")
    assert engine_from_spec(None) is None and engine_from_spec({"name": "local"}) is None
    assert engine_from_spec({"name": "ray", "actors": 2}) == RayEngine(address="10.0.0.5:6379", actors=2)
    with pytest.raises(ValueError, match="--ray-address is for the ray engine"):
        engine_from_options("local", "auto")
    with pytest.raises(ValueError, match="no engine 'spark': choose from local, ray"):
        build_engine("spark")
