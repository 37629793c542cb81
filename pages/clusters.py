"""Clusters page: the map, the cluster table, a cluster's card (veto, weight, examples), keyword search, bulk
vetoes (a search's results, a box or lasso selection), Undo and the history of decisions."""

from __future__ import annotations

import shlex
from collections import Counter

import numpy as np
import streamlit as st

from app import keys, map_component, queries
from app.state import actor, if_current, pick_dataset, store, synced_key
from app.text import clip, plain
from app.widgets import example_card
from core import edits
from core.cluster import density
from core.errors import UndoRefused, UnknownBatch
from core.storage import curation, tags

PAGE_SIZE = 20

st.title("Clusters")
dataset = pick_dataset()
if dataset is None:
    st.stop()
k = int(dataset.active_k)
table = queries.cached_clusters(dataset)
labels = dict(zip(table.cluster_id, table.label, strict=True))
# a k past the number of distinct points keeps fewer clusters, and merges and splits change the count
found = f"{k} clusters" if len(table) == k else f"{len(table)} clusters (fitted with k={k}; see History for edits)"
st.caption(
    f"{plain(dataset.name, 120)}: {dataset.n_rows} examples in {found} "
    f"(best silhouette k={dataset.best_k}, knee k={dataset.knee_k}; change k on Diagnostics)."
)


def as_sentence(summary: str) -> str:
    """A history summary ("undid #12: ...") as the start of a notice ("Undid #12: ...")."""
    return summary[:1].upper() + summary[1:]


def open_cluster(cluster_id: int | None, focus: bool = False, from_table: bool = False) -> None:
    """Open a cluster's card; ``focus``: also zoom the map to it (when it was opened from the table or the
    picker: a click or a lasso on the map is where the curator already looks). Opened from anywhere but the
    table, the table's ticks are cleared (a new key), so no row stays ticked for a cluster no longer open."""
    if cluster_id is not None:
        st.session_state["open_cluster"] = int(cluster_id)
        st.session_state["cluster_pick"] = int(cluster_id)
        st.session_state["page"] = 1
        st.session_state["table_page"], st.session_state["example_focus"] = 1, 0
        if focus:
            st.session_state["map_focus"] = st.session_state.get("map_focus", 0) + 1
        if not from_table:
            st.session_state["table_generation"] = st.session_state.get("table_generation", 0) + 1
            st.session_state["table_ticked"] = []


def on_map_click() -> None:
    """A click on a drawn point shows that row in full and opens its cluster."""
    clicked = map_component.event("map", "click")
    if clicked:
        st.session_state["map_row"], st.session_state["map_selected"] = int(clicked["row"]), 1
        st.session_state["map_selected_rows"] = None
        open_cluster(int(clicked["cluster"]))


def on_map_select() -> None:
    """A box or lasso takes every row inside it (not only the drawn points: above the map's point limit only a
    sample is drawn) and opens the cluster most of them belong to."""
    selection = map_component.event("map", "select") or {}
    points = queries.cached_map(dataset)
    inside = density.in_selection(points.x.to_numpy(), points.y.to_numpy(), selection)
    if inside is None:
        return
    clusters = Counter(points.cluster_id.to_numpy()[inside].tolist())
    st.session_state["map_row"], st.session_state["map_selected"] = None, int(inside.sum())
    # for "Veto the N selected": kept with its dataset and k, so a switch of either cannot veto other rows
    st.session_state["map_selected_rows"] = (dataset.dataset_id, k, points.row_idx.to_numpy()[inside])
    open_cluster(clusters.most_common(1)[0][0] if clusters else None)


def on_table_select() -> None:
    """Ticked rows of the cluster table: the newest one ticked opens (and the map zooms to it); two or more
    get the bulk buttons below the table."""
    key = f"cluster_table~{st.session_state.get('table_generation', 0)}"
    rows = st.session_state[key].selection.get("rows", [])
    before = st.session_state.get("table_ticked") or []
    ticked = [int(table.cluster_id.iloc[r]) for r in rows]
    st.session_state["table_ticked"] = ticked
    added = [c for c in ticked if c not in before]
    if added:
        open_cluster(added[-1], focus=True, from_table=True)


signals = queries.cached_signals(dataset)
color_options = ["cluster", "combined quality", *[c for c in signals.columns if signals[c].notna().any()]]
color_by = st.selectbox("Color the map by", color_options, key="color_by")
highlight = st.session_state.get("open_cluster") if color_by == "cluster" else None
map_component.show(
    queries.cached_map_spec(dataset, color_by, highlight, st.session_state.get("map_focus")),
    key="map",
    on_click=on_map_click,
    on_select=on_map_select,
)
how = (
    "Hover a point to see its cluster, click it to read it and open its cluster; drag to pan, scroll to zoom; "
    "Box or Lasso selects a region (double-click: the whole map again)."
)
if dataset.n_rows > density.points_limit():  # every row has a place on the map
    how += (
        f" {dataset.n_rows:,} points: shading shows how many lie in each spot, coloured by the most common cluster "
        f"(or the mean score); {density.points_limit():,} sampled points are drawn on top to hover and click. "
        "A box or lasso takes every point inside it."
    )
st.caption(how)


def bulk_veto(rows: object, vetoed: bool, reason: str) -> None:
    """Veto (or un-veto) many examples as one batch of the history; the notice says how many changed."""
    changed = curation.bulk_example_veto(store(), dataset.dataset_id, rows, vetoed, actor=actor(), reason=reason)
    verb = "Vetoed" if vetoed else "Un-vetoed"
    st.session_state["curation_notice"] = f"{verb} {changed:,} examples ({reason})."


def search_ids(keyword: str) -> list[str]:
    """The ids of every example a keyword search finds (for tagging them all)."""
    rows = curation.matching_rows(store(), dataset.dataset_id, k, search=keyword)
    return curation.example_ids_at(store(), dataset.dataset_id, rows=[int(r) for r in rows])


def veto_search(keyword: str, vetoed: bool) -> None:
    rows = curation.matching_rows(store(), dataset.dataset_id, k, search=keyword)
    bulk_veto(rows, vetoed, f"search: {keyword!r}")


def undo_batch(batch_id: int, force: bool = False) -> None:
    """Undo one batch (the one its button names, even if another session added a newer batch meanwhile)."""
    try:
        done = edits.undo(store(), dataset, batch_id, actor=actor(), force=force)
    except UndoRefused as exc:
        st.session_state["undo_refused"] = (batch_id, str(exc))
        return
    except UnknownBatch as exc:
        st.session_state["curation_notice"] = str(exc)
        return
    st.session_state["curation_notice"] = f"{as_sentence(done.summary)} ({done.changed:,} changed)."


def revert_to(batch_id: int) -> None:
    try:
        done = edits.revert_to(store(), dataset, batch_id, actor=actor())
    except UnknownBatch as exc:
        st.session_state["curation_notice"] = str(exc)
        return
    st.session_state["curation_notice"] = f"{as_sentence(done.summary)} ({done.changed:,} changed)."


def decisions_bar() -> None:
    """The last action's notice, a refused undo (with "Undo anyway"), the selection's bulk veto and Undo."""
    notice = st.session_state.pop("curation_notice", None)
    if notice:
        st.success(plain(notice))  # it may quote a search: plain text
    failed = st.session_state.pop("curation_error", None)
    if failed:
        st.error(plain(failed))
    refused = st.session_state.pop("undo_refused", None)
    if refused:
        st.error(plain(refused[1]))
        st.button("Undo anyway", key="undo_force", on_click=undo_batch, args=(refused[0], True))
    chosen = st.session_state.get("map_selected_rows")
    selected = chosen[2] if chosen is not None and chosen[:2] == (dataset.dataset_id, k) else None
    if st.session_state.get("map_selected", 0) > 1:
        st.caption(f"{st.session_state['map_selected']:,} points selected; opened the cluster most of them belong to.")
        if selected is not None and len(selected):
            st.button(
                f"Veto the {len(selected):,} selected examples",
                key="veto_selection",
                on_click=bulk_veto,
                args=(selected, True, "map selection"),
            )
    latest = queries.cached_latest_undoable(dataset)
    if latest is not None:
        button, caption = st.columns([1, 6], vertical_alignment="center")
        button.button("Undo", key="undo_last", on_click=undo_batch, args=(latest.batch_id,))
        caption.caption(plain(f"Undo: {latest.summary}"))


decisions_bar()


def step_cluster(delta: int) -> None:
    """Open the next (or previous) cluster in the table's order, and zoom the map to it."""
    options = [int(c) for c in table.cluster_id]
    current = st.session_state.get("open_cluster")
    at = options.index(current) if current in options else (-1 if delta > 0 else 0)
    open_cluster(options[(at + delta) % len(options)], focus=True)


def toggle_open_veto() -> None:
    current = st.session_state.get("open_cluster")
    if current in set(table.cluster_id):
        vetoed = bool(table.set_index("cluster_id").vetoed[current])
        curation.set_cluster_veto(store(), dataset.dataset_id, k, int(current), not vetoed, actor())


def undo_latest() -> None:
    latest = queries.cached_latest_undoable(dataset)
    if latest is not None:
        undo_batch(latest.batch_id)


def focused_page() -> tuple[list[int], list[bool], int, int] | None:
    """The open cluster's table page as last drawn (rows, their vetoes, page, pages), or None."""
    drawn = st.session_state.get("table_rows")
    if not drawn or drawn[0] != (dataset.dataset_id, k, st.session_state.get("open_cluster")):
        return None
    return drawn[1], drawn[2], drawn[3], drawn[4]


def step_example(delta: int) -> None:
    """Move the marked example of the open cluster's table down (or up) a row, across pages."""
    drawn = focused_page()
    if drawn is None:
        return
    rows, _, page, pages = drawn
    focus = min(st.session_state.get("example_focus", 0), len(rows) - 1) + delta
    if focus >= len(rows) and page < pages:
        st.session_state["table_page"], focus = page + 1, 0
    elif focus < 0 and page > 1:
        st.session_state["table_page"], focus = page - 1, TABLE_PAGE - 1
    st.session_state["example_focus"] = max(0, min(focus, TABLE_PAGE - 1))


def toggle_expanded() -> None:
    st.session_state["example_expanded"] = not st.session_state.get("example_expanded", False)


def toggle_focused_veto() -> None:
    drawn = focused_page()
    if drawn is None or not drawn[0]:
        return
    rows, vetoed, _, _ = drawn
    at = min(st.session_state.get("example_focus", 0), len(rows) - 1)
    bulk_veto([rows[at]], not vetoed[at], f"row {rows[at]} (key v)")


keys.bind(
    {
        "j": ("next cluster", lambda: step_cluster(1)),
        "k": ("previous cluster", lambda: step_cluster(-1)),
        "x": ("veto or un-veto the open cluster", toggle_open_veto),
        "n": ("next example", lambda: step_example(1)),
        "p": ("previous example", lambda: step_example(-1)),
        "e": ("show the marked example in full (or hide it)", toggle_expanded),
        "v": ("veto or un-veto the marked example", toggle_focused_veto),
        "u": ("undo", undo_latest),
    },
    key="cluster_keys",
)

st.subheader("All clusters")
table_mode = st.segmented_control(
    "The table",
    ["open and tick", "edit vetoes and weights"],
    default="open and tick",
    required=True,
    key="table_mode",
    help="Streamlit's tables either select rows or edit cells: choose which",
)
editing = table_mode == "edit vetoes and weights"
st.caption(
    "Tick or untick a cluster's veto and type its weight in the table; each change is a step that Undo reverts."
    if editing
    else "Click a row to open its cluster; tick several (the boxes on the left) to veto, un-veto, weigh, merge "
    "or tag them together, as one step that one Undo reverts."
)
open_now = st.session_state.get("open_cluster")
view = queries.cached_cluster_table(dataset)
known_tags, tags_by_ref = queries.cached_tags(dataset)
view = view.assign(tags=[", ".join(tags_by_ref.get(tags.cluster_ref(k, c), [])) for c in view.cluster_id])
columns = ["cluster_id", "label", "size", "vetoed", "weight", "tags", "quality", "flagged", "main_flag"]
columns += ["duplicate_rows"]
columns += ["vetoed_examples", "representative"]
shown = view[[c for c in columns if c in view]]
if not editing:
    shown = shown.assign(vetoed=view.vetoed.map({True: "vetoed", False: ""}))
if shown.get("quality") is not None and shown["quality"].isna().all():
    shown = shown.drop(columns="quality")  # no scorer has run: nothing to show
# the open cluster is marked in a column of its own (a pandas Styler marking its row cost 0.1-0.3 s a rerun)
shown.insert(0, "open", ["▶" if c == open_now else "" for c in shown.cluster_id])
TABLE_COLUMNS = {
    "open": st.column_config.TextColumn("", width=24, help="the cluster open below"),
    "cluster_id": st.column_config.NumberColumn("cluster", width="small"),
    "label": st.column_config.TextColumn("label", width="medium"),
    "size": st.column_config.NumberColumn("size", width="small"),
    "vetoed": st.column_config.CheckboxColumn("vetoed", width="small")
    if editing
    else st.column_config.TextColumn("status", width="small"),
    "weight": st.column_config.NumberColumn(
        "weight", width="small", format="%.1f", min_value=0.0, max_value=curation.MAX_WEIGHT, step=0.1
    ),
    "tags": st.column_config.TextColumn("tags", width="small"),
    "quality": st.column_config.ProgressColumn(
        "quality", help="mean combined quality (Quality page)", min_value=0.0, max_value=1.0, format="%.2f"
    ),
    "flagged": st.column_config.ProgressColumn(
        "flagged", help="share of rows with a defect flag", min_value=0.0, max_value=1.0, format="percent"
    ),
    "main_flag": st.column_config.TextColumn("main defect", help="the flag on most of its rows (30 % or more)"),
    "duplicate_rows": st.column_config.NumberColumn("duplicates", width="small"),
    "vetoed_examples": st.column_config.NumberColumn("vetoed examples", width="small"),
    "representative": st.column_config.TextColumn(
        "nearest the centre", help="the start of the instruction nearest the cluster's centre", width="large"
    ),
}


def on_table_edit(editor_key: str, cluster_ids: list[int]) -> None:
    """Cells edited in the table: each veto or weight typed becomes a decision (one batch per change), and
    the editor starts afresh from the store (a new key), so an edit is never applied twice."""
    edited = st.session_state[editor_key].get("edited_rows", {})
    for position, change in edited.items():
        cluster_id = cluster_ids[int(position)]
        decision = {name: change[name] for name in ("vetoed", "weight") if name in change}
        if "weight" in decision:
            decision["weight"] = float(decision["weight"] if decision["weight"] is not None else 1.0)
        if decision:
            curation.bulk_cluster_decision(
                store(), dataset.dataset_id, k, [cluster_id], actor=actor(), reason="edited in the table", **decision
            )
    st.session_state["editor_generation"] = st.session_state.get("editor_generation", 0) + 1


if editing:
    editor_key = f"cluster_editor~{st.session_state.get('editor_generation', 0)}"
    st.data_editor(
        shown,
        column_config=TABLE_COLUMNS,
        disabled=[c for c in shown.columns if c not in ("vetoed", "weight")],
        hide_index=True,
        num_rows="fixed",
        key=editor_key,
        on_change=on_table_edit,
        args=(editor_key, [int(c) for c in shown.cluster_id]),
        height=min(38 + 35 * len(shown), 460),
        width="stretch",
    )
else:
    st.dataframe(
        shown,
        column_config=TABLE_COLUMNS,
        hide_index=True,
        key=f"cluster_table~{st.session_state.get('table_generation', 0)}",
        on_select=on_table_select,
        selection_mode="multi-row",
        height=min(38 + 35 * len(shown), 460),
        width="stretch",
    )


def bulk_clusters(cluster_ids: list[int], **decision: object) -> None:
    """Veto, un-veto or weigh the ticked clusters as one batch of the history."""
    names = ", ".join(str(c) for c in cluster_ids[:8]) + ("…" if len(cluster_ids) > 8 else "")
    changed = curation.bulk_cluster_decision(
        store(), dataset.dataset_id, k, cluster_ids, actor=actor(), reason=f"clusters {names}", **decision
    )
    st.session_state["curation_notice"] = f"{changed} decisions changed on {len(cluster_ids)} clusters."


def tag_rows_or_clusters(refs: list[str], field: str, reason: str, present: bool = True) -> None:
    """Put the tag typed in ``field`` on ``refs`` (or take it off) as one batch of the history."""
    tag = str(st.session_state.get(field, "")).strip()
    try:
        changed = tags.set_tag(store(), dataset.dataset_id, refs, tag, present, actor(), reason=reason)
    except ValueError as exc:
        st.session_state["curation_notice"] = str(exc)
        return
    st.session_state["curation_notice"] = f"{'Tagged' if present else 'Untagged'} {changed:,} ({reason}): {tag!r}."


def merge_clusters(cluster_ids: list[int], into: int, preview: edits.MergePreview | None) -> None:
    """Merge the ticked clusters into ``into`` (one batch of the history) and open it."""
    try:
        done = edits.merge(store(), dataset, k, cluster_ids, into=into, actor=actor(), preview=preview)
    except (ValueError, LookupError) as exc:  # another session changed the clusters meanwhile
        st.session_state["curation_error"] = str(exc)
        return
    st.session_state["curation_notice"] = f"{as_sentence(done.summary)}: {done.moved:,} examples moved."
    open_cluster(into, focus=True)


ticked = [] if editing else st.session_state.get("table_ticked") or []
if len(ticked) > 1:
    veto_them, keep_them, weight_them, set_weight = st.columns([1.3, 1.3, 1.2, 1], vertical_alignment="bottom")
    veto_them.button(
        f"Veto the {len(ticked)} ticked clusters",
        key="veto_ticked",
        on_click=bulk_clusters,
        args=(ticked,),
        kwargs={"vetoed": True},
    )
    keep_them.button(
        f"Un-veto the {len(ticked)} ticked clusters",
        key="unveto_ticked",
        on_click=bulk_clusters,
        args=(ticked,),
        kwargs={"vetoed": False},
    )
    weight = weight_them.number_input("Weight", 0.0, curation.MAX_WEIGHT, 1.0, 0.1, key="ticked_weight")
    set_weight.button(
        f"Weigh the {len(ticked)}",
        key="weigh_ticked",
        on_click=bulk_clusters,
        args=(ticked,),
        kwargs={"weight": float(weight)},
    )
    sizes = dict(zip(table.cluster_id, table["size"], strict=True))
    into = max(ticked, key=lambda c: (sizes.get(c, 0), -c))
    merging = queries.cached_merge_preview(dataset, ticked, into) if set(ticked) <= set(sizes) else None
    merge_button, merged_as = st.columns([1.2, 2], vertical_alignment="center")
    if merging is not None:
        merged_as.caption(
            plain(f"Merged: {merging.merged['size']:,} examples, labelled {merging.merged['label']!r}", 160)
        )
    merge_button.button(
        f"Merge the {len(ticked)} ticked clusters into cluster {into} (the largest)",
        key="merge_ticked",
        on_click=merge_clusters,
        args=(ticked, into, merging),
        help="One cluster of their rows, with cluster "
        f"{into}'s veto, weight, name and tags; relabelled. Undo splits them again.",
    )
    tag_field, tag_button = st.columns([3, 1], vertical_alignment="bottom")
    tag_field.text_input("Tag", key="ticked_tag", placeholder="a free tag, e.g. needs review")
    tag_button.button(
        f"Tag the {len(ticked)}",
        key="tag_ticked",
        on_click=tag_rows_or_clusters,
        args=([tags.cluster_ref(k, c) for c in ticked], "ticked_tag", f"clusters {', '.join(map(str, ticked[:8]))}"),
    )

left, right = st.columns([1, 1])


def retag(ref: str, before: list[str], after: list[str]) -> None:
    """The tags chosen for a cluster: each added or removed one is a batch of the history."""
    for tag in sorted(set(after) - set(before)):
        try:
            tags.set_tag(store(), dataset.dataset_id, [ref], tag, True, actor(), reason=ref)
        except ValueError as exc:
            st.session_state["curation_notice"] = str(exc)
    for tag in sorted(set(before) - set(after)):
        tags.set_tag(store(), dataset.dataset_id, [ref], tag, False, actor(), reason=ref)


def cluster_card(cluster_id: int) -> None:
    row = table[table.cluster_id == cluster_id].iloc[0].to_dict()  # a dict: Series.size is not the column
    st.subheader(f"Cluster {cluster_id}: {plain(row['label'], 120)}")  # labels are words of the data
    st.caption(f"{int(row['size'])} examples · {int(row['duplicate_rows'])} exact-duplicate rows")
    main_flag = view.set_index("cluster_id").main_flag.get(cluster_id, "") if "main_flag" in view else ""
    if main_flag:
        st.caption(f"Main defect: {main_flag} of its rows.")
    if row.get("representative"):  # dataset text: st.text shows it as typed
        st.caption(f"Nearest the cluster's centre (row {int(row['representative_row'])}):")
        st.text(row["representative"])
    name_base = f"name_{k}_{cluster_id}"
    stored_name = row.get("name") or ""
    name_key = synced_key(name_base, stored_name)
    st.text_input(
        f"Name (blank: the computed label, {clip(row.get('terms_label') or row['label'], 60)})",
        value=stored_name,
        key=name_key,
        max_chars=curation.MAX_NAME,
        on_change=lambda: if_current(
            name_base,
            name_key,
            lambda value: curation.set_cluster_name(store(), dataset.dataset_id, k, cluster_id, value, actor()),
        ),
    )
    ref = tags.cluster_ref(k, cluster_id)
    current_tags = tags_by_ref.get(ref, [])
    tags_base = f"tags_{k}_{cluster_id}"
    tags_key = synced_key(tags_base, current_tags)
    st.multiselect(
        "Tags (type a new one and press Enter)",
        sorted(set(known_tags) | set(current_tags)),
        default=current_tags,
        key=tags_key,
        accept_new_options=True,
        on_change=lambda: if_current(tags_base, tags_key, lambda value: retag(ref, current_tags, value)),
    )
    # another session may have changed them since: the keys follow the store (see synced_key)
    vetoed, weight = bool(row["vetoed"]), float(row["weight"])
    veto_base, weight_base = f"veto_cluster_{k}_{cluster_id}", f"weight_{k}_{cluster_id}"
    veto_key, weight_key = synced_key(veto_base, vetoed), synced_key(weight_base, weight)
    st.toggle(
        "Vetoed (leave this cluster out)",
        value=vetoed,
        key=veto_key,
        on_change=lambda: if_current(
            veto_base,
            veto_key,
            lambda value: curation.set_cluster_veto(store(), dataset.dataset_id, k, cluster_id, value, actor()),
        ),
    )
    st.slider(
        "Weight (share of this cluster in selections; 1 = neutral)",
        0.0,
        5.0,
        value=weight,
        step=0.1,
        key=weight_key,
        on_change=lambda: if_current(
            weight_base,
            weight_key,
            lambda value: curation.set_cluster_weight(
                store(), dataset.dataset_id, k, cluster_id, float(value), actor()
            ),
        ),
    )
    split_panel(cluster_id, int(row["size"]))
    view_as = st.segmented_control(
        "Examples as", ["table", "cards"], default="table", required=True, key="examples_view"
    )
    if view_as == "cards":
        examples_list(cluster_id=cluster_id, key="cluster")
    else:
        examples_table(cluster_id)


def preview_split(cluster_id: int) -> None:
    parts = int(st.session_state.get(f"split_parts_{cluster_id}", 2))
    try:
        preview = edits.preview_split(store(), dataset, k, cluster_id, parts)
    except (ValueError, LookupError) as exc:
        st.session_state["curation_error"] = str(exc)
        return
    st.session_state["split_preview"] = (dataset.dataset_id, preview)


def apply_split() -> None:
    chosen = st.session_state.pop("split_preview", None)
    if chosen is None or chosen[0] != dataset.dataset_id:
        return
    try:
        done = edits.split(store(), chosen[1], dataset, actor=actor())
    except ValueError as exc:
        st.session_state["curation_error"] = str(exc)
        return
    st.session_state["curation_notice"] = f"{as_sentence(done.summary)}: {done.moved:,} examples moved."
    open_cluster(chosen[1].cluster_id, focus=True)


def split_panel(cluster_id: int, size: int) -> None:
    """Split the open cluster: k-means inside it, previewed (sizes, labels, the row nearest each part's centre)
    before anything is stored; applied as one batch that Undo merges back."""
    chosen = st.session_state.get("split_preview")
    preview = chosen[1] if chosen and chosen[0] == dataset.dataset_id else None
    current = preview is not None and (preview.k, preview.cluster_id) == (k, cluster_id)
    with st.expander("Split this cluster", expanded=current):
        if size < 2:
            st.caption("One example: nothing to split.")
            return
        parts_field, go = st.columns([1, 1], vertical_alignment="bottom")
        parts_field.number_input(
            "Parts", 2, min(edits.MAX_PARTS, size), 2, key=f"split_parts_{cluster_id}", help="k-means inside it"
        )
        go.button("Preview the split", key="preview_split", on_click=preview_split, args=(cluster_id,))
        if not current or preview is None:
            return
        st.dataframe(
            split_table(preview),
            hide_index=True,
            column_config={"cluster": st.column_config.NumberColumn("cluster", width="small")},
            key="split_preview_table",
        )
        apply, discard = st.columns(2)
        apply.button(
            f"Split into {len(preview.parts)} clusters", key="apply_split", type="primary", on_click=apply_split
        )
        discard.button(
            "Discard the preview", key="discard_split", on_click=lambda: st.session_state.pop("split_preview")
        )


def split_table(preview: edits.SplitPreview) -> object:
    """The preview's parts as a table: the id each would get, its size, label and representative instruction."""
    import pandas as pd

    return pd.DataFrame(
        {
            "cluster": [int(p["cluster_id"]) for p in preview.parts],
            "size": [int(p["size"]) for p in preview.parts],
            "label": [str(p["label"]) for p in preview.parts],
            "nearest the centre": [clip(p.get("representative", ""), 120) for p in preview.parts],
        }
    )


TABLE_PAGE = 50  # rows of a cluster's compact table


def examples_table(cluster_id: int) -> None:
    """A cluster's examples as a compact table, a page of :data:`TABLE_PAGE` rows: one line each (instruction,
    input, output, copies, vetoed, its defect flags, its quality), sortable by any column; ticked rows are
    vetoed or un-vetoed together (one batch) and one ticked row is shown in full below."""
    total = queries.cached_example_total(dataset, cluster_id=cluster_id)
    pages = max(1, -(-total // TABLE_PAGE))
    page = st.number_input(f"Page (of {pages}; {total} examples)", 1, pages, key="table_page")
    offset = (int(page) - 1) * TABLE_PAGE
    frame = queries.cached_example_page(dataset, cluster_id=cluster_id, offset=offset, limit=TABLE_PAGE)
    compact = queries.compact_examples(dataset, frame)
    rows = [int(r) for r in compact.row_idx]
    # for the keys n, p, e and v: the page as drawn, and the row they act on marked in a column of its own
    st.session_state["table_rows"] = (
        (dataset.dataset_id, k, cluster_id),
        rows,
        [v == "vetoed" for v in compact.vetoed],
        int(page),
        pages,
    )
    focus = min(st.session_state.get("example_focus", 0), max(len(rows) - 1, 0))
    compact.insert(0, "at", ["▶" if i == focus else "" for i in range(len(rows))])
    picked = st.dataframe(
        compact,
        column_config={
            "at": st.column_config.TextColumn("", width=24, help="the row the keys n, p, e and v act on"),
            "row_idx": st.column_config.NumberColumn("row", width="small"),
            "vetoed": st.column_config.TextColumn("status", width="small"),
            "copies": st.column_config.NumberColumn("copies", width="small"),
            "quality": st.column_config.ProgressColumn("quality", min_value=0.0, max_value=1.0, format="%.2f"),
        },
        hide_index=True,
        key=f"examples_table_{cluster_id}_{page}",
        on_select="rerun",
        selection_mode="multi-row",
        height=min(38 + 35 * len(compact), 460),
    )
    ticked = [int(compact.row_idx.iloc[i]) for i in picked.selection.get("rows", [])]
    duplicates_panel(cluster_id)
    if not ticked:
        st.caption("Tick rows to veto them together; one ticked row is shown in full here (or press e).")
        if st.session_state.get("example_expanded") and rows:
            examples_list(row_idx=rows[focus], key="marked")
        return
    veto_them, keep_them = st.columns(2)
    reason = f"cluster {cluster_id} table"
    veto_them.button(
        f"Veto the {len(ticked)} ticked", key="veto_ticked_rows", on_click=bulk_veto, args=(ticked, True, reason)
    )
    keep_them.button(
        f"Un-veto the {len(ticked)} ticked", key="unveto_ticked_rows", on_click=bulk_veto, args=(ticked, False, reason)
    )
    if len(ticked) == 1:
        examples_list(row_idx=ticked[0], key="ticked")


def duplicates_panel(cluster_id: int) -> None:
    """The exact copies inside the open cluster beyond the first of each group, vetoed in one click."""
    copies = queries.cached_extra_copies(dataset)
    inside = copies[queries.cached_assignment(dataset)[copies] == cluster_id] if len(copies) else copies
    if len(inside):
        st.button(
            f"Keep one of each exact-duplicate group in this cluster: veto the {len(inside):,} extra copies",
            key="veto_cluster_copies",
            on_click=bulk_veto,
            args=(inside, True, f"extra exact copies in cluster {cluster_id}"),
        )


def examples_list(
    *, key: str, cluster_id: int | None = None, search: str | None = None, row_idx: int | None = None
) -> None:
    if row_idx is not None:  # one row: no pager
        frame = queries.cached_example_page(dataset, row_idx=row_idx, limit=1)
        for row in frame.itertuples():
            example_card(row, veto_example, key_prefix=key)
        return
    page_key = "page" if key == "cluster" else f"{key}_page"
    total = queries.cached_example_total(dataset, cluster_id=cluster_id, search=search)
    pages = max(1, -(-total // PAGE_SIZE))
    page = st.number_input(f"Page (of {pages}; {total} examples)", 1, pages, key=page_key)
    offset = (int(page) - 1) * PAGE_SIZE
    frame = queries.cached_example_page(dataset, cluster_id=cluster_id, search=search, offset=offset, limit=PAGE_SIZE)
    for row in frame.itertuples():
        example_card(row, veto_example, key_prefix=key, highlight=search)


def veto_example(example_id: str, vetoed: bool) -> None:
    curation.set_example_veto(store(), dataset.dataset_id, example_id, vetoed, actor())


def on_pick() -> None:
    """The picker's cluster. After a merge, a split or their undo the options' labels change under the widget,
    and the value it reports can be the option's text ("3: label") rather than the id: both are read."""
    value = st.session_state.get("cluster_pick")
    text = str(value).partition(":")[0].strip()
    if text.isdigit() and int(text) in labels:
        open_cluster(int(text), focus=True)


with left:
    options = [int(c) for c in table.cluster_id]
    if st.session_state.get("cluster_pick") not in options:
        st.session_state["cluster_pick"] = None
    picked = st.selectbox(
        "Open a cluster",
        options,
        key="cluster_pick",
        index=None,
        placeholder="choose a cluster",
        format_func=lambda c: f"{c}: {clip(labels[c], 80)}",  # option labels are plain text; long ones cut
        on_change=on_pick,
    )
    clicked_row = st.session_state.get("map_row")
    if clicked_row is not None:
        st.caption(f"The point you clicked (row {clicked_row}):")
        examples_list(row_idx=int(clicked_row), key="point")
    current = st.session_state.get("open_cluster")
    if current in options:
        cluster_card(int(current))
    else:
        st.info("Click or lasso points on the map, pick a row of the table, or choose a cluster here.")

with right:  # search results in their own panel, beside the open cluster
    st.subheader("Search examples")
    query = st.text_input("Keyword in instruction or output", key="search").strip()
    if query and not queries.cached_search_indexed(dataset):
        st.caption(
            "This dataset was prepared before the word index existed, so each search reads every text (seconds at "
            "a million rows). Build the index once:"
        )
        st.code(f"python -m core index --dataset {shlex.quote(dataset.name)}", language="bash")
    if query:
        matches = queries.cached_example_total(dataset, search=query)
        if matches:
            veto_all, unveto_all = st.columns(2)
            veto_all.button(
                f"Veto all {matches:,} matching examples", key="veto_search", on_click=veto_search, args=(query, True)
            )
            unveto_all.button(
                f"Un-veto all {matches:,} matching examples",
                key="unveto_search",
                on_click=veto_search,
                args=(query, False),
            )
            tag_field, tag_button = st.columns([3, 1], vertical_alignment="bottom")
            tag_field.text_input("Tag", key="search_tag", placeholder="a free tag for every match")
            tag_button.button(
                f"Tag all {matches:,}",
                key="tag_search",
                on_click=lambda: tag_rows_or_clusters(
                    [tags.example_ref(i) for i in search_ids(query)], "search_tag", f"search: {query!r}"
                ),
            )
        examples_list(search=query, key="search")


def filter_panel() -> None:
    """Every example matching a filter on one signal (a defect flag, or a score range), vetoed, un-vetoed or
    tagged at once (one batch each); and the exact-duplicate groups thinned to one row each."""
    from core.score.quality import SIGNALS

    raw = queries.cached_signals(dataset)
    present = [c for c in raw.columns if raw[c].notna().any()]
    if not present:
        return
    signal = st.selectbox("Signal", present, key="filter_signal", format_func=lambda c: c.replace("_", " "))
    values = raw[signal]
    if signal in SIGNALS and SIGNALS[signal].is_flag:
        matching = values.fillna(0.0).to_numpy() > 0
        what = f"flag: {signal.replace('_', ' ')}"
    else:
        finite = values.dropna()
        low, high = float(finite.min()), float(finite.max())
        if low == high:
            st.caption(f"Every scored row has {signal} = {low:g}.")
            return
        chosen = st.slider(
            "Range", low, high, (low, float(finite.quantile(0.1))), key=f"filter_range_{signal}", format="%.4g"
        )
        matching = values.between(*chosen).to_numpy()
        what = f"{signal} in [{chosen[0]:.4g}, {chosen[1]:.4g}]"
    rows = np.flatnonzero(matching)
    st.caption(f"{len(rows):,} examples match ({plain(what, 120)}).")
    if len(rows):
        veto, keep = st.columns(2)
        veto.button(f"Veto the {len(rows):,}", key="veto_filter", on_click=bulk_veto, args=(rows, True, what))
        keep.button(f"Un-veto the {len(rows):,}", key="unveto_filter", on_click=bulk_veto, args=(rows, False, what))
    copies = queries.cached_extra_copies(dataset)
    if len(copies):
        st.button(
            f"Keep one of each exact-duplicate group: veto the {len(copies):,} extra copies",
            key="veto_copies",
            on_click=bulk_veto,
            args=(copies, True, "extra exact copies"),
        )


with right, st.expander("Examples matching a filter (flag, score range, duplicates)"):
    filter_panel()

with st.expander("History"):
    listing = queries.cached_batches(dataset)
    if not listing:
        st.caption("No decision taken on this dataset yet.")
    for number, batch in enumerate(listing):
        what, undo, revert = st.columns([6, 1, 1.4], vertical_alignment="center")
        when = f"{batch.changed_at:%Y-%m-%d %H:%M:%S}" if batch.changed_at else "?"
        state = "" if batch.in_effect else f" · undone by #{batch.undone_by}"
        change = f" · {batch.change}" if batch.change else ""
        what.caption(plain(f"#{batch.batch_id} · {batch.summary}{change} · {when} · {batch.actor}{state}"))
        if batch.reversible and batch.in_effect:
            undo.button("Undo", key=f"undo_{batch.batch_id}", on_click=undo_batch, args=(batch.batch_id,))
        if number > 0:  # the newest batch is where the decisions are already
            revert.button("Revert to here", key=f"revert_{batch.batch_id}", on_click=revert_to, args=(batch.batch_id,))
