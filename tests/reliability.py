"""The reliability cases of docs/reliability.md, the tests that prove each, and the script that writes the table.

``python -m tests.reliability`` (``make reliability``) runs exactly these tests with pytest, then rewrites
docs/reliability.md: each case, its tests, and their result on this run, with the date and commit. A unit test
(tests/unit/test_reliability_table.py) checks that every test named here exists, so the table cannot
point at a test that was renamed or deleted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ERRORS = "tests/unit/test_ingest_errors.py"
BAD = f"{ERRORS}::test_bad_input_is_reported_and_stores_nothing"
CRASH = "tests/integration/test_crash_restart.py"
FAILED_UI = "tests/ui/test_failed_jobs.py"
BUSY = "tests/integration/test_workspace_in_use.py"
HOSTILE_UI = "tests/ui/test_hostile_text_pages.py"
PATHS = "tests/unit/test_safe_paths.py"

# (section, case, node ids of the tests that prove it)
CASES: list[tuple[str, str, list[str]]] = [
    ("Bad input", "Malformed JSON line", [f"{BAD}[malformed_json_line]"]),
    ("Bad input", "JSON array cut short", [f"{BAD}[json_array_cut_short]"]),
    ("Bad input", "CSV with a ragged row", [f"{BAD}[csv_ragged_row]"]),
    ("Bad input", "Parquet file that is not Parquet", [f"{BAD}[not_parquet]"]),
    (
        "Bad input",
        "UTF-8 BOM (accepted)",
        [
            f"{ERRORS}::test_utf8_bom_jsonl_is_accepted",
            f"{ERRORS}::test_utf8_bom_json_array_is_accepted",
            f"{ERRORS}::test_utf8_bom_csv_header_is_accepted",
        ],
    ),
    ("Bad input", "Invalid UTF-8", [f"{BAD}[invalid_utf8]"]),
    ("Bad input", "NUL bytes", [f"{BAD}[nul_byte_in_jsonl_line]", f"{BAD}[nul_byte_in_csv]"]),
    (
        "Bad input",
        "A single 5 MB line (over CURATE_MAX_ROW_BYTES)",
        [f"{BAD}[row_over_the_size_limit]", f"{ERRORS}::test_a_raised_row_limit_accepts_the_large_row"],
    ),
    ("Bad input", "0-byte file", [f"{BAD}[empty_file]"]),
    ("Bad input", "Only blank lines", [f"{BAD}[blank_lines_only]"]),
    (
        "Bad input",
        "Fields of the wrong type (number, list, null, boolean, object)",
        [
            f"{BAD}[number_instead_of_string]",
            f"{BAD}[list_instead_of_string]",
            f"{BAD}[null_instruction]",
            f"{BAD}[boolean_instead_of_string]",
            f"{BAD}[object_instead_of_string]",
            f"{BAD}[lone_surrogate_escape]",
        ],
    ),
    (
        "Bad input",
        "`messages` with no assistant turn (or not a list)",
        [f"{BAD}[messages_without_assistant]", f"{BAD}[messages_is_plain_text]"],
    ),
    (
        "Bad input",
        "Duplicate ids supplied by the user",
        [f"{BAD}[duplicate_user_id]", f"{ERRORS}::test_skip_bad_rows_keeps_the_first_of_a_duplicated_id"],
    ),
    ("Bad input", "Column mapping naming a missing column", [f"{BAD}[mapping_names_missing_column]"]),
    (
        "Bad input",
        "A k grid too large for the file: refused before anything is stored",
        [f"{ERRORS}::test_a_k_grid_too_large_for_the_file_is_refused_before_anything_is_stored"],
    ),
    (
        "Bad input",
        "Upload over `server.maxUploadSize` refused with a message (real browser)",
        [
            "tests/e2e/test_server_limits.py::test_an_upload_over_the_limit_is_refused_with_a_message",
            "tests/e2e/test_server_limits.py::test_the_config_and_the_makefile_bind_to_localhost",
        ],
    ),
    (
        "Bad input",
        "Random rows (hypothesis): a clean error, or a row that exports back with equal fields, values and types",
        ["tests/unit/test_ingest_property.py::test_ingest_then_export_round_trips_or_fails_cleanly"],
    ),
    (
        "Crashes",
        "kill -9 during prepare, restart: committed work kept, job interrupted, resume = uninterrupted result",
        [
            f"{CRASH}::test_a_prepare_killed_mid_way_resumes_to_the_result_of_an_uninterrupted_prepare",
            f"{FAILED_UI}::test_an_interrupted_prepare_offers_resume_to_every_session_and_dismiss_hides_it",
        ],
    ),
    (
        "Crashes",
        "kill -9 during scoring: finished scores kept, resume = uninterrupted scores",
        [f"{CRASH}::test_scoring_killed_after_a_chunk_keeps_its_scores_and_resumes_to_the_uninterrupted_scores"],
    ),
    (
        "Crashes",
        "kill -9 during a loop run: finished rounds, vetoes and weights kept, resume = uninterrupted selection",
        [
            f"{CRASH}::test_a_loop_run_killed_in_round_2_keeps_round_1_and_resumes_to_the_uninterrupted_selection",
            "tests/integration/test_runs.py::test_a_killed_run_shows_interrupted_leaves_the_store_usable_and_resumes",
            f"{FAILED_UI}::test_runs_page_shows_a_failed_run_and_offers_to_resume_an_interrupted_one",
        ],
    ),
    (
        "Crashes",
        "kill -9 during write transactions: the store opens with every committed write",
        [f"{CRASH}::test_the_store_survives_kills_during_write_transactions_with_every_reported_write"],
    ),
    (
        "Crashes",
        "kill -9 of the app: its running job goes on; relaunch races",
        [
            f"{CRASH}::test_killing_the_process_that_launched_a_job_does_not_stop_the_job",
            f"{CRASH}::test_a_job_being_relaunched_is_never_taken_for_its_dead_worker",
            f"{CRASH}::test_a_job_relaunched_while_the_app_checks_on_it_stays_running",
        ],
    ),
    (
        "Crashes",
        "A job that raises (missing or corrupt model, out of memory) ends failed, error in the CLI",
        [
            f"{CRASH}::test_score_jobs_with_a_missing_or_corrupt_model_fail_with_one_clear_line",
            f"{CRASH}::test_a_job_that_runs_out_of_memory_fails_saying_what_to_try",
            f"{CRASH}::test_the_cli_reports_a_missing_or_corrupt_model_in_one_line_and_exits_1",
        ],
    ),
    (
        "Crashes",
        "... and in the UI (every session, after a restart too), while the app keeps serving",
        [
            f"{FAILED_UI}::test_quality_page_shows_a_failed_score_job_and_keeps_working",
            f"{FAILED_UI}::test_quality_page_shows_a_failed_score_job_after_an_app_restart",
            f"{FAILED_UI}::test_datasets_page_shows_a_failed_prepare_and_keeps_working",
            f"{FAILED_UI}::test_datasets_page_shows_a_failed_prepare_after_an_app_restart",
        ],
    ),
    (
        "Crashes",
        "Workspace held by another process: the app and CLI name the holder, no lock trace",
        [
            f"{BUSY}::test_a_held_workspace_names_its_holder_and_changes_nothing",
            f"{BUSY}::test_the_cli_prints_one_line_naming_the_holder",
            f"{BUSY}::test_a_foreign_duckdb_holder_is_named",
            "tests/ui/test_workspace_in_use_page.py::test_a_held_workspace_shows_who_holds_it_not_a_trace",
        ],
    ),
    (
        "Crashes",
        "A second app on the same workspace: works alongside, and the pages say so",
        [
            f"{BUSY}::test_other_app_servers_are_listed_and_dead_ones_forgotten",
            "tests/ui/test_workspace_in_use_page.py::test_another_app_on_the_workspace_is_named_in_the_sidebar",
        ],
    ),
    (
        "Concurrency",
        "Two browser sessions veto and weight at once: both kept, neither stale after a rerun",
        [
            "tests/e2e/test_two_sessions.py::test_two_sessions_change_one_cluster_at_once_and_each_sees_the_other",
            "tests/ui/test_clusters_page.py::test_changes_made_elsewhere_show_in_an_open_session_after_a_rerun",
            "tests/integration/test_store_concurrency.py::test_threads_and_another_process_write_at_once_and_every_change_is_kept",
        ],
    ),
    (
        "Concurrency",
        "Veto and weight while a run trains: no lock error; each round uses the decisions at its start; manifest",
        [
            "tests/integration/test_runs.py::test_vetoes_and_weights_set_while_a_loop_run_trains_hold_from_the_next_round_and_reach_the_manifest",
            "tests/integration/test_runs.py::test_a_cluster_vetoed_while_a_loop_run_is_paused_is_left_out_of_the_next_round",
        ],
    ),
    (
        "Hostile text",
        "HTML, <script>, markdown links and images, long lines: plain text on every page (real browser)",
        [
            "tests/e2e/test_hostile_text.py::test_hostile_text_stays_text_on_every_page",
            f"{HOSTILE_UI}::test_clusters_page_shows_every_example_verbatim",
            f"{HOSTILE_UI}::test_cluster_search_shows_hostile_rows_as_text",
            f"{HOSTILE_UI}::test_datasets_page_shows_the_name_escaped",
            f"{HOSTILE_UI}::test_quality_page_lists_clusters_and_proposals_escaped",
            f"{HOSTILE_UI}::test_select_preview_and_saved_selections_stay_plain",
            f"{HOSTILE_UI}::test_export_page_options_errors_and_bundle",
            f"{HOSTILE_UI}::test_runs_page_shows_selection_run_names_and_errors_plain",
            f"{HOSTILE_UI}::test_diagnostics_and_gradient_pages_run_clean",
        ],
    ),
    (
        "Hostile text",
        "Exported files keep hostile text unchanged (equal values once parsed)",
        ["tests/e2e/test_hostile_text.py::test_export_holds_the_hostile_rows_unchanged"],
    ),
    (
        "Hostile text",
        "Export paths, upload names and run ids cannot escape their folder (`../`, absolute, symlink)",
        [
            f"{PATHS}::test_resolve_inside_rejects_paths_that_leave_the_folder",
            f"{PATHS}::test_a_symlink_out_of_the_folder_is_refused",
            f"{PATHS}::test_upload_names_that_are_not_plain_file_names_are_refused",
            f"{PATHS}::test_job_and_run_ids_that_are_not_plain_names_are_refused",
            f"{PATHS}::test_the_cli_refuses_a_run_id_that_leaves_the_jobs_folder",
            "tests/ui/test_other_pages.py::test_export_page_counts_and_writes_inside_the_export_folder",
        ],
    ),
    (
        "Hostile text",
        "The server binds to localhost unless the user sets an address",
        [
            "tests/e2e/test_server_limits.py::test_the_server_listens_on_loopback_only",
            "tests/e2e/test_server_limits.py::test_the_config_and_the_makefile_bind_to_localhost",
        ],
    ),
    (
        "Hostile text",
        "No pickle / torch.load of files without weights_only=True; a tampered checkpoint is refused",
        [
            "tests/unit/test_untrusted_files.py::test_a_tampered_checkpoint_is_refused_and_its_code_never_runs",
            "tests/unit/test_untrusted_files.py::test_no_code_path_unpickles_a_file_or_runs_a_model_folders_code",
        ],
    ),
]


def node_ids() -> list[str]:
    """Every test node id of the table, each once, in table order."""
    return list(dict.fromkeys(node for _, _, nodes in CASES for node in nodes))


def _outcomes(junit: Path) -> dict[str, str]:
    """Node id -> passed / failed / skipped, from pytest's JUnit XML (classname is the dotted module path)."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        state = "passed"
        if case.find("failure") is not None or case.find("error") is not None:
            state = "failed"
        elif case.find("skipped") is not None:
            state = "skipped"
        outcomes[f"{module}::{case.get('name')}"] = state
    return outcomes


def _result(nodes: list[str], outcomes: dict[str, str]) -> str:
    """One cell: "pass (n tests)", or what failed; a node without brackets covers all its parameters."""
    states = []
    for node in nodes:
        matched = [state for name, state in outcomes.items() if name == node or name.startswith(node + "[")]
        states += matched or ["not run"]
    bad = [state for state in states if state != "passed"]
    if not bad:
        return f"pass ({len(states)} test{'s' if len(states) > 1 else ''})"
    return f"**{', '.join(sorted(set(bad)))}** ({len(bad)} of {len(states)})"


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def render(outcomes: dict[str, str], when: str, commit: str) -> str:
    """docs/reliability.md's text for these outcomes."""
    lines = [
        "# Reliability and security: each case, the test that proves it, its result on the last run",
        "",
        f"Last run: {when}, commit `{commit}`, by `make reliability` (`python -m tests.reliability`), which runs",
        "exactly these tests and rewrites this file. The same tests also run in `make test`.",
        "",
        "| Area | Case | Tests | Result |",
        "|---|---|---|---|",
    ]
    for section, case, nodes in CASES:
        tests = "<br>".join(f"`{node.split('::')[0].removeprefix('tests/')}::{node.split('::')[1]}`" for node in nodes)
        lines.append(f"| {section} | {case} | {tests} | {_result(nodes, outcomes)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        junit = Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *node_ids()]
        code = subprocess.run(command, cwd=ROOT, check=False).returncode
        outcomes = _outcomes(junit)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (ROOT / "docs" / "reliability.md").write_text(render(outcomes, when, _commit()), encoding="utf-8")
    print(f"docs/reliability.md written ({sum(s == 'passed' for s in outcomes.values())} of {len(outcomes)} passed)")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
