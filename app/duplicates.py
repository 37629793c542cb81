"""The Quality page's browser of MinHash near-duplicate groups: the biggest groups in a table, and one group's
rows side by side, the kept row marked, each with its similarity to it (the tables: core/score/minhash.py)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.text import plain
from app.widgets import plain_text
from core.score.minhash import GROUPS_SHOWN, group_members, group_table
from core.storage import datasets
from core.storage.database import Store

SIDE_BY_SIDE = 4  # rows of a group shown as columns; the rest are listed in a table below them


def duplicates_panel(store: Store, dataset_id: int, raw: pd.DataFrame) -> None:
    """The groups found by the ``minhash`` scorer; nothing but a hint before it has run."""
    st.subheader("Near-duplicate groups (MinHash)")
    table = group_table(raw)
    if "minhash_group" not in raw or raw.minhash_group.isna().all():
        st.caption("Run the minhash scorer to group rows that are copies of each other with a few words changed.")
        return
    flagged = int(raw.get("minhash_duplicate", pd.Series(dtype=float)).fillna(0).sum())
    st.caption(
        f"{flagged:,} rows are near duplicates of a kept row (flag minhash_duplicate). The biggest "
        f"{min(len(table), GROUPS_SHOWN)} groups; a group is named by the row it keeps."
    )
    if table.empty:
        st.info("No near-duplicate groups: every row is a group of its own.")
        return
    st.dataframe(table, hide_index=True, key="minhash_groups")
    group = st.selectbox(
        "Group",
        table.group.tolist(),
        key="minhash_group_pick",
        format_func=lambda g: f"row {g} · {int(table['size'][table.group == g].iloc[0])} rows",
    )
    members = group_members(raw, int(group))
    shown = members.head(SIDE_BY_SIDE)
    texts = datasets.examples_at(store, dataset_id, shown.row_idx.tolist()).set_index("row_idx")
    for column, row, similarity, kept in zip(
        st.columns(len(shown)), shown.row_idx, shown.similarity, shown.kept, strict=True
    ):
        with column:
            st.markdown(f"**Row {int(row)}** · {'kept' if kept else f'similarity {similarity:.2f}'}")
            st.caption(f"id {plain(texts.example_id[int(row)], 80)}")
            plain_text(_prompt(str(texts.instruction[int(row)]), str(texts.input[int(row)] or "")))
            st.divider()
            plain_text(str(texts.output[int(row)]))
    if len(members) > SIDE_BY_SIDE:
        st.caption(f"All {len(members)} rows of the group:")
        st.dataframe(members, hide_index=True, key="minhash_members")


def _prompt(instruction: str, input_: str) -> str:
    """The instruction, and its input below it when there is one."""
    return f"{instruction}\n\n{input_}" if input_.strip() else instruction
