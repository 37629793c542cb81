"""Per-process and per-session state of the app: the workspace store and the dataset being curated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from app.text import plain
from core import config
from core.storage import datasets as ds
from core.storage import presence
from core.storage.database import Store


@st.cache_resource
def _store(workspace: str) -> Store:
    # A Store holds no open connection (it opens one per transaction), so one shared instance is thread-safe.
    store = Store(workspace)
    address = st.get_option("server.address") or "localhost"
    presence.register_app(store.workspace, f"http://{address}:{st.get_option('server.port')}")
    return store


def store() -> Store:
    """The store of the workspace this app serves (``CURATE_WORKSPACE``, else ./workspace)."""
    return _store(str(config.workspace_dir()))


def workspace() -> Path:
    return store().workspace


def pick_dataset(ready_only: bool = True) -> ds.DatasetInfo | None:
    """A sidebar selector of the workspace's datasets; returns the chosen one (or None, with a hint shown)."""
    datasets = [d for d in ds.list_datasets(store()) if d.status == "ready" or not ready_only]
    if not datasets:
        st.info("No prepared dataset yet. Load one on the **Datasets** page.")
        return None
    names = [d.name for d in datasets]
    if st.session_state.get("dataset") not in names:
        st.session_state["dataset"] = names[-1]
    name = st.sidebar.selectbox("Dataset", names, key="dataset")
    return next(d for d in datasets if d.name == name)


def actor() -> str:
    """Who this session is in the decisions' history: "app session" and the first 8 characters of its id."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return f"app session {context.session_id[:8]}" if context is not None else "app"


def warn_if_shared() -> None:
    """A sidebar note when another app server has this workspace open (changes there show here on a rerun)."""
    others = presence.other_apps(workspace())
    if others:
        where = ", ".join(f"{plain(app.url, 100)} (process {app.pid})" for app in others)  # a file anyone could edit
        st.sidebar.warning(
            f"This workspace is also open in another app: {where}. Both can work on it: each change is saved "
            "at once, and what is changed there shows here when this page reruns."
        )


def synced_key(base: str, stored: Any) -> str:
    """The key to give the widget ``base`` so that it shows ``stored``, the value in the store now. The
    widget must also be given ``value=stored``, and its on_change must go through :func:`if_current`.

    A keyed widget keeps its own session value across reruns and ignores ``value=``, so a session would keep
    showing a veto or weight that another session (or the CLI, or a run) has changed. Writing the stored
    value into the widget's state is not safe: a rerun can interrupt the run before the widget reaches the
    browser, and the browser's next message then carries its old value back as a change, whose on_change
    would undo the other session's write. So when the store differs from what this widget shows, the widget
    gets a new key (``base``, then ``base~1``, ``base~2``...) with no state, and ``value=stored`` makes the
    stored value its default. The retired key can still send a value: a browser that has not yet drawn the
    new widget sends the old one's, and Streamlit, having dropped the old widget's state at the end of the
    run that retired it, takes that for a change (seen in the two-sessions browser test, with a log of every
    callback: a weight change in one session undid the other's veto through the retired toggle). So
    :func:`if_current` ignores changes of retired keys. A value this session just set is stored by its
    on_change before the rerun, so it matches and keeps its key (and its keyboard focus).
    """
    generation = int(st.session_state.get(f"{base}__generation", 0))
    key = _generation_key(base, generation)
    if key in st.session_state and st.session_state[key] != stored:
        st.session_state[f"{base}__generation"] = generation + 1
        key = _generation_key(base, generation + 1)
    return key


def _generation_key(base: str, generation: int) -> str:
    return base if generation == 0 else f"{base}~{generation}"


def if_current(base: str, key: str, apply: Callable[[Any], Any]) -> None:
    """An on_change for a widget keyed by :func:`synced_key`: ``apply(value)`` when ``key`` is the widget's
    current key, nothing when it is a retired one (a stale browser echoing a value it showed before)."""
    if key == _generation_key(base, int(st.session_state.get(f"{base}__generation", 0))):
        apply(st.session_state[key])
