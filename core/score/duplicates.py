"""The stored MinHash near-duplicate groups with their texts: what the CLI's ``duplicates``, the Python API
and the Quality page's group browser read (the grouping itself is :mod:`core.score.minhash`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.score.minhash import GROUPS_SHOWN, group_members, group_table
from core.score.quality import raw_signals
from core.storage import datasets as ds

if TYPE_CHECKING:
    import pandas as pd

    from core.storage.database import Store
    from core.storage.datasets import DatasetInfo


def duplicate_groups(
    store: Store, dataset: DatasetInfo, group: int | None = None, limit: int = GROUPS_SHOWN
) -> pd.DataFrame:
    """The biggest groups (group, size, lowest similarity, the kept row's instruction), or with ``group`` that
    group's rows (row_idx, similarity, kept, instruction, output), the kept row first.

    A ValueError says what to run when the minhash scorer has not run, or that ``group`` names no group.
    """
    raw = raw_signals(store, dataset)
    if "minhash_group" not in raw or raw.minhash_group.isna().all():
        raise ValueError(
            f"no near-duplicate groups yet: run `python -m core score --dataset {dataset.name} --scorer minhash`"
        )
    if group is None:
        table = group_table(raw, limit)
        texts = ds.examples_at(store, dataset.dataset_id, table.group.tolist()).set_index("row_idx")
        return table.assign(kept_instruction=[str(texts.instruction.get(g, ""))[:60] for g in table.group])
    members = group_members(raw, group)
    if members.empty:
        raise ValueError(f"no group {group}: a group is named by the row it keeps (see `duplicates`)")
    texts = ds.examples_at(store, dataset.dataset_id, members.row_idx.tolist()).set_index("row_idx")
    return members.assign(
        instruction=[str(texts.instruction[r]) for r in members.row_idx],
        output=[str(texts.output[r]) for r in members.row_idx],
    )
