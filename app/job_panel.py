"""The job panel: launching a background job from a page and watching it, the same way on every page.

:func:`launch` validates a job spec and starts it, or shows why it cannot start in an ``st.error`` at
the button (nothing is launched then). :func:`job_panel` polls the page's recent jobs of one kind: a
progress bar with the worker's last message and Cancel while a job runs; its error, Resume and Dismiss
when it ended without finishing (shown to every session until dismissed); the page's own summary of a
finished job this session launched. Widget keys (``cancel_<id>``, ``resume_<id>``, ``dismiss_<id>``) are
the job id's, so they are the same on every page.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from app.state import workspace
from app.text import plain
from core import jobs
from core.progress import count_text

Launcher = Callable[[Path, jobs.JobSpec], str]


@dataclasses.dataclass(frozen=True)
class JobView:
    """How a page shows its jobs of ``kind``.

    ``session_key``: where ``st.session_state`` keeps the id of the job this session launched.
    ``title``: markdown-safe text naming a job, e.g. "Scoring perplexity" (progress bar and notices).
    ``outcome``: shows a finished job this session launched. ``limit``: how many recent jobs to show.
    """

    kind: str
    session_key: str
    title: Callable[[jobs.JobStatus], str]
    outcome: Callable[[jobs.JobStatus], None]
    limit: int = 3


def launch(spec: jobs.JobSpec, session_key: str, start: Launcher | None = None) -> str | None:
    """Validate and start ``spec`` (with ``start``, default :func:`core.jobs.launch`); remember its id
    under ``session_key``. An invalid spec shows its error here, at the button, and launches nothing."""
    try:
        job_id = (start or jobs.launch)(workspace(), spec)
    except (ValueError, LookupError) as exc:
        # a KeyError's str() is its repr; its first argument is the readable message
        st.error(plain(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))  # may quote a file or row
        return None
    st.session_state[session_key] = job_id
    return job_id


@st.fragment(run_every=1.0)
def job_panel(view: JobView) -> None:
    """The page's recent jobs of ``view.kind``, newest first, refreshed every second."""
    for status in jobs.list_jobs(workspace(), kind=view.kind)[: view.limit]:
        what = view.title(status)
        if status.active:
            count = count_text(status.stage, status.done, status.total) if status.total else ""  # not "0/0"
            st.progress(status.fraction, text=f"{what}: {status.stage or 'starting'} {count}".rstrip())
            if status.message:
                st.caption(plain(status.message))
            if st.button("Cancel", key=f"cancel_{status.job_id}"):
                jobs.request_cancel(workspace(), status.job_id)
        elif needs_notice(status):
            unfinished_job(workspace(), status, what)
        elif status.job_id == st.session_state.get(view.session_key):
            view.outcome(status)
        refresh_when_ended(status, view.session_key)


def unfinished_job(workspace: Path, status: jobs.JobStatus, what: str) -> None:
    """A job that ended without finishing, shown to every session until dismissed (a failure must not go
    unseen because the session that launched it is gone): its error, Resume when it was interrupted or
    cancelled, and Dismiss. ``what`` is markdown-safe text naming the job, e.g. "Scoring perplexity"."""
    if status.state == "failed":
        st.error(f"{what} failed: {plain(status.error)}")  # errors may quote a row or a path
    else:
        why = f" ({plain(status.error)})" if status.error else ""
        st.warning(f"{what} was {status.state}{why}. Resume continues from what it saved.")
    left, right, _ = st.columns([1, 1, 6])
    if status.state in ("interrupted", "cancelled") and left.button("Resume", key=f"resume_{status.job_id}"):
        jobs.relaunch(workspace, status.job_id)
        st.rerun()
    if right.button("Dismiss", key=f"dismiss_{status.job_id}"):
        jobs.dismiss(workspace, status.job_id)
        st.rerun()


def needs_notice(status: jobs.JobStatus) -> bool:
    """Whether a job's end is still news to every session: it failed or stopped early, and nobody dismissed it."""
    return status.state in ("failed", "interrupted", "cancelled") and not status.dismissed


def refresh_when_ended(status: jobs.JobStatus, key: str) -> None:
    """Rerun the whole page once when the job this session launched (its id in ``st.session_state[key]``)
    has ended, so what it computed shows outside the polling fragment that noticed."""
    seen = f"{key}_seen"
    if not status.active and status.job_id == st.session_state.get(key) != st.session_state.get(seen):
        st.session_state[seen] = status.job_id
        st.rerun(scope="app")
