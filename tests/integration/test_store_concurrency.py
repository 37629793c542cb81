"""Threads of this process and other processes (the CLI) write the curator's decisions at once: every one is kept.

Split from tests/unit/test_store_and_curation.py: it starts processes, so it runs in the integration tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from core.storage import curation
from core.storage import datasets as ds
from core.storage.database import Store
from tests.conftest import ROOT

K = 4


def _tiny(store: Store) -> ds.DatasetInfo:
    return ds.get_dataset(store, "tiny")


def test_threads_and_another_process_write_at_once_and_every_change_is_kept(workspace: Path) -> None:
    shared = Store(workspace)
    dataset_id = _tiny(shared).dataset_id
    version = shared.data_version()
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cli = [sys.executable, "-m", "core"]
    processes = [
        subprocess.Popen([*cli, "veto", "--cluster", "2", "--workspace", str(workspace)], cwd=ROOT, env=env),
        subprocess.Popen(
            [*cli, "weight", "--cluster", "3", "--value", "7", "--workspace", str(workspace)], cwd=ROOT, env=env
        ),
    ]
    errors: list[BaseException] = []
    last_weight: dict[int, float] = {}
    writes: dict[int, int] = {}

    def keep_writing(store: Store, cluster_id: int, values: tuple[float, float]) -> None:
        count = 0
        try:
            while count < 6 or (any(p.poll() is None for p in processes) and count < 500):
                value = values[count % 2]
                curation.set_cluster_weight(store, dataset_id, K, cluster_id, value)
                last_weight[cluster_id], count = value, count + 1
                threading.Event().wait(0.01)
        except BaseException as exc:
            errors.append(exc)
        writes[cluster_id] = count

    threads = [
        threading.Thread(target=keep_writing, args=(shared, 0, (2.0, 3.0))),
        threading.Thread(target=keep_writing, args=(Store(workspace), 1, (4.0, 5.0))),
    ]
    for thread in threads:
        thread.start()
    codes = [p.wait(timeout=120) for p in processes]
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert codes == [0, 0]
    table = curation.clusters(Store(workspace), dataset_id, K).set_index("cluster_id")
    assert table.weight.to_dict() == {0: last_weight[0], 1: last_weight[1], 2: 1.0, 3: 7.0}
    assert table.vetoed.to_dict() == {0: False, 1: False, 2: True, 3: False}
    history = curation.history(shared, dataset_id, limit=10_000)
    assert history.target.value_counts().to_dict() == {
        "k=4/cluster=0": writes[0],
        "k=4/cluster=1": writes[1],
        "k=4/cluster=2": 1,
        "k=4/cluster=3": 1,
    }
    assert shared.data_version() == version + writes[0] + writes[1] + 2
    assert json.loads(history[history.target == "k=4/cluster=3"].new_value.item()) == 7.0
