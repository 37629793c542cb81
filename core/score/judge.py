"""The LLM judge: a model behind any OpenAI-compatible chat-completions server rates each example.

One ``POST {base_url}/chat/completions`` per example (vLLM, TGI, llama.cpp's server, Ollama, ``transformers
serve``, a hosted API) with a rating prompt in the manner of AlpaGasus: rate the accuracy and helpfulness of the
response to the instruction and its input on a ``scale_min``..``scale_max`` scale, the score first
(docs/algorithms.md 1.11). The answer's score is read with a regular expression (``pattern``); an answer it
does not match, or whose number is off the scale, is *unparsed*: NaN with the ``judge_unparsed`` flag, never a
guess. A request that still fails after ``max_retries`` retries is *failed*: NaN with ``judge_failed``, and the
next run sends it again (a failure says nothing about the example). When the first ``FAIL_FAST`` requests of a
chunk all fail, the run stops with one error naming the server's URL and its last message, rather than failing
every row.

Requests run ``concurrency`` at a time (a thread pool over one ``httpx`` client). Connection errors, timeouts,
429 and 5xx are retried with exponential backoff and full jitter; a ``Retry-After`` header sets the wait.

The API key is read from the environment variable named by ``api_key_env`` at request time and sent as
``Authorization: Bearer``; it is never a parameter, so it is never in a job's params, the score key, a manifest
or the workspace, and any text that could echo it (a server's error message) has it blanked. The variable's
name must end in ``_API_KEY``, so a form cannot send another secret of the app's environment to a server.
The server sees the examples it rates: that is what a judge is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import math
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any

import numpy as np

from core.registry import param
from core.score.cost import duration

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from core.storage.database import Store

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
# Our wording of AlpaGasus's rating request (its system line, the Alpaca triplet, then the request to rate the
# accuracy on a scale and put the score alone on the first line); the scale here is 1..5 and names helpfulness too.
DEFAULT_PROMPT = (
    "We would like your feedback on how well an AI assistant responded to the instruction (and its input, when "
    "there is one) shown below.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n{output}\n\n"
    "Rate the accuracy and helpfulness of the response to the instruction and the input on a scale of "
    "{scale_min} to {scale_max}, where a higher score means a more accurate and more helpful response. "
    "Write the score alone, as a number, on the first line. On the next line, explain your rating briefly "
    "and without bias."
)
# The score is the first group that matched: a number alone on the first line (``4``, ``**4.5**``, ``4/5``,
# ``4 out of 5.``), else a number right after the word score or rating anywhere (``Score: 4``,
# ``Rating: [[3]]``, ``a score of 2``). ``1. The response ...`` (a list) and ``2 + 2 = 4`` (the model answering
# the question itself) match neither: unparsed, not 1 or 2.
DEFAULT_PATTERN = (
    r"(?i)\A[\s*#]*(\d+(?:\.\d+)?)[\s*]*(?:(?:/|out of)\s*\d+(?:\.\d+)?)?[\s*.]*(?:\n|\Z)"
    r"|\b(?:score|rating)\b(?:\s+(?:of|is))?\W{0,6}?(\d+(?:\.\d+)?)"
)
PLACEHOLDERS = ("instruction", "input", "output", "scale_min", "scale_max")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
ENV_SUFFIX = "_API_KEY"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Left out of the score key: where the server is and how it is reached cannot change a rating of the same model
# (docs/algorithms.md 1.11); failed rows are not kept as scores, so the timeout and retries cannot either.
KEY_IGNORES = frozenset({"base_url", "concurrency", "timeout", "max_retries", "api_key_env"})
PARSER_VERSION = 1  # bumped when the way an answer becomes a score changes, so old keys are not reused
FAIL_FAST = 8  # a chunk whose first this many requests all fail stops the run
BACKOFF_BASE = 0.5  # seconds before the first retry (full jitter: a uniform draw below base x 2^attempt)
MAX_WAIT = 60.0  # the longest wait between tries, whatever a Retry-After asks
RETRY_STATUS = frozenset({408, 409, 425, 429})  # and every 5xx
MESSAGE_CHARS = 300  # a server's message is cut to this many characters
# Hosts a judge is never sent to: link-local addresses and the names of cloud metadata services
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class JudgeSettingError(ValueError):
    """A judge parameter that cannot work; ``field`` names it (a job's validation blames that field)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class JudgeUnavailable(RuntimeError):
    """The first ``FAIL_FAST`` requests of a chunk all failed: the server is down, refuses the key, or serves no
    model of that name."""


@dataclasses.dataclass(frozen=True)
class JudgeSettings:
    """The judge's parameters (the ``judge`` scorer's fields; help in core/score/scorers.py's docstring)."""

    base_url: str = DEFAULT_BASE_URL
    model: str = ""
    prompt: str = DEFAULT_PROMPT
    pattern: str = DEFAULT_PATTERN
    scale_min: float = 1.0
    scale_max: float = 5.0
    temperature: float = param(0.0, low=0.0, high=2.0)
    max_tokens: int = param(128, low=1, high=4096)
    concurrency: int = param(4, low=1, high=64)
    timeout: float = param(60.0, low=0.1, high=3600.0)
    max_retries: int = param(3, low=0, high=10)
    api_key_env: str = "OPENAI_API_KEY"


@dataclasses.dataclass
class Verdict:
    """One example's outcome: the score (NaN when unparsed or failed), the answer text, why the request failed
    (empty when the server answered), the tokens the server reported (NaN when it reported none)."""

    score: float = math.nan
    answer: str = ""
    error: str = ""
    prompt_tokens: float = math.nan
    completion_tokens: float = math.nan
    served_model: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.error)

    @property
    def unparsed(self) -> bool:
        return not self.failed and math.isnan(self.score)


# ---------------------------------------------------------------- settings


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash when a judge may be sent there, else a :class:`JudgeSettingError`.

    http or https with a host, no user name or password in it (they would be stored with the job's params; a
    key goes in ``api_key_env``), no query or fragment (the path ``/chat/completions`` is appended), and not a
    link-local address or a cloud metadata host: a form must not turn the judge into a way to reach those."""
    if not url or any(c.isspace() or ord(c) < 32 for c in url) or len(url) > 2000:
        raise JudgeSettingError("base_url", f"give a URL such as {DEFAULT_BASE_URL}, without spaces")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JudgeSettingError("base_url", f"{url!r} is not an http(s) URL with a host, such as {DEFAULT_BASE_URL}")
    if parts.username is not None or parts.password is not None:
        raise JudgeSettingError("base_url", "a user name or password in the URL would be stored; set api_key_env")
    if parts.query or parts.fragment:
        raise JudgeSettingError("base_url", "give the API's base URL without a query or fragment (…/v1)")
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number in range)
    except ValueError:
        raise JudgeSettingError("base_url", f"{url!r} has an invalid port") from None
    if _forbidden_host(parts.hostname):
        raise JudgeSettingError("base_url", f"{parts.hostname} is a link-local or metadata address; not a judge")
    return url.rstrip("/")


def _forbidden_host(host: str) -> bool:
    if host.lower() in _METADATA_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:169.254.169.254 is the same host
    return address.is_link_local or (mapped is not None and mapped.is_link_local)


def check_settings(settings: JudgeSettings) -> None:
    """Every parameter that cannot work, as a :class:`JudgeSettingError` naming it (before any request)."""
    check_base_url(settings.base_url)
    if not settings.model.strip():
        raise JudgeSettingError("model", "name the model the server serves (its name in GET {base_url}/models)")
    missing = [name for name in ("instruction", "output") if "{" + name + "}" not in settings.prompt]
    if missing:
        raise JudgeSettingError("prompt", f"the prompt must hold {', '.join('{' + m + '}' for m in missing)}")
    try:
        re.compile(settings.pattern)
    except re.error as exc:
        raise JudgeSettingError("pattern", f"not a regular expression: {exc}") from None
    if not settings.scale_min < settings.scale_max:
        raise JudgeSettingError("scale_max", f"must be above scale_min ({settings.scale_min:g})")
    env = settings.api_key_env
    if env and not (_ENV_NAME.fullmatch(env) and env.endswith(ENV_SUFFIX)):
        raise JudgeSettingError(
            "api_key_env", f"name an environment variable ending in {ENV_SUFFIX} (or leave it empty), not {env!r}"
        )


def score_key(settings: JudgeSettings) -> str:
    """Equal keys mean equal ratings of equal text: the model, sampling, scale and hashes of the prompt and the
    pattern (the full texts are in the run's registered parameters), not where the server is."""
    kept = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name not in KEY_IGNORES}
    for name in ("prompt", "pattern"):
        kept[name] = hashlib.sha256(kept[name].encode()).hexdigest()[:16]
    return "judge:" + json.dumps(kept, sort_keys=True) + f":parse={PARSER_VERSION}"


def endpoint(settings: JudgeSettings) -> str:
    return check_base_url(settings.base_url) + "/chat/completions"


# ---------------------------------------------------------------- prompt and answer


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def render(settings: JudgeSettings, instruction: str, input_text: str, output: str) -> str:
    """The prompt with its placeholders filled in one pass (an example's own ``{output}`` stays as written)."""
    values = {
        "instruction": instruction or "",
        "input": input_text or "",
        "output": output or "",
        "scale_min": _number(settings.scale_min),
        "scale_max": _number(settings.scale_max),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], settings.prompt)


def parse_score(answer: str, pattern: str, scale_min: float, scale_max: float) -> float:
    """The score in ``answer``: the first group of ``pattern``'s first match that took part (the whole match when
    it has no groups), as a number on the scale; NaN when there is none, it is no number or off the scale."""
    match = re.search(pattern, answer or "")
    if match is None:
        return math.nan
    text = next((group for group in match.groups() if group is not None), match.group(0))
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) and scale_min <= value <= scale_max else math.nan


# ---------------------------------------------------------------- requests


def _one_line(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def server_message(response: httpx.Response) -> str:
    """The reason a server gave with an error status: its JSON ``error.message``/``detail``/``message``, else the
    body's text, on one short line."""
    try:
        body = response.json()
    except ValueError:
        return _one_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return _one_line(error["message"])
        for name in ("error", "detail", "message"):
            if isinstance(body.get(name), str):
                return _one_line(body[name])
    return _one_line(json.dumps(body))


def retry_after(response: httpx.Response) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date), at most ``MAX_WAIT``."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_WAIT)


def backoff(attempt: int) -> float:
    """Full jitter: a uniform draw below ``BACKOFF_BASE`` x 2^attempt, so clients that failed together do not
    retry together."""
    return random.uniform(0.0, min(MAX_WAIT, BACKOFF_BASE * 2**attempt))


class _FirstFailures:
    """The fail-fast rule across the pool's threads: ``stopped`` is set once ``limit`` requests have failed before
    any was answered. After one answer, a failure is that row's (a prompt too long for the model, a timeout)."""

    def __init__(self, limit: int):
        self.limit, self.failures, self.answered, self.last_error = limit, 0, False, ""
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def record(self, verdict: Verdict) -> None:
        with self.lock:
            if self.stopped.is_set():  # a request in flight when the run stopped: the count stays at the limit
                return
            if self.answered or not verdict.failed:
                self.answered = True
                return
            self.failures += 1
            self.last_error = verdict.error
            if self.failures >= self.limit:
                self.stopped.set()


class Judge:
    """Sends rating prompts to one server: bounded concurrency, retries, the fail-fast rule, a redacted key."""

    def __init__(self, settings: JudgeSettings, sleep: Callable[[float], None] = time.sleep):
        check_settings(settings)
        self.settings = settings
        self.url = endpoint(settings)
        self._key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        self._sleep = sleep

    def redact(self, text: str) -> str:
        """``text`` with the API key blanked: a server may quote the key it refused."""
        return text.replace(self._key, "***") if self._key else text

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _body(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.settings.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }

    def ask(self, client: httpx.Client, prompt: str) -> Verdict:
        """One prompt's verdict after at most ``max_retries`` retries of a retryable failure."""
        import httpx

        problem = ""
        for attempt in range(self.settings.max_retries + 1):
            wait = None
            try:
                response = client.post(self.url, json=self._body(prompt), headers=self._headers())
            except httpx.TimeoutException:
                problem = f"no answer within {self.settings.timeout:g} s"
            except httpx.TransportError as exc:
                problem = f"cannot reach the server: {_one_line(str(exc)) or type(exc).__name__}"
            except httpx.RequestError as exc:  # an answer that cannot be decoded: the same again next time
                problem = f"the request failed: {_one_line(str(exc)) or type(exc).__name__}"
                break
            else:
                if response.status_code == 200:
                    return self._verdict(response)
                problem = f"HTTP {response.status_code}: {server_message(response)}"
                if response.status_code not in RETRY_STATUS and response.status_code < 500:
                    break  # a refused key, an unknown model, a bad request: the same again next time
                wait = retry_after(response)
            if attempt < self.settings.max_retries:
                self._sleep(backoff(attempt) if wait is None else wait)
        return Verdict(error=self.redact(problem))

    def _verdict(self, response: httpx.Response) -> Verdict:
        """A 200 response's verdict: the score parsed from its message, or failed when it is no chat completion."""
        try:
            body = response.json()
            answer = body["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Verdict(
                error="the server's answer is not a chat completion: " + self.redact(_one_line(response.text))
            )
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        settings = self.settings
        return Verdict(
            score=parse_score(answer, settings.pattern, settings.scale_min, settings.scale_max),
            answer=self.redact(str(answer)),
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            served_model=str(body.get("model") or ""),
        )

    def rate(self, prompts: Sequence[str], progress: Callable[[int], None] | None = None) -> list[Verdict]:
        """Every prompt's verdict, ``concurrency`` requests at a time; :class:`JudgeUnavailable` when the first
        ``FAIL_FAST`` (or, for fewer prompts, all of them) failed: a run rates in chunks of a few dozen rows, so a
        server that goes down mid-run stops it at the next chunk."""
        import httpx

        streak = _FirstFailures(min(FAIL_FAST, len(prompts)) or 1)
        verdicts: list[Verdict | None] = [None] * len(prompts)
        workers = max(1, min(self.settings.concurrency, len(prompts)))
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)

        def one(client: httpx.Client, prompt: str) -> Verdict | None:
            if streak.stopped.is_set():
                return None  # the server is down: the rest is not sent
            verdict = self.ask(client, prompt)
            streak.record(verdict)
            return verdict

        with (
            httpx.Client(timeout=self.settings.timeout, limits=limits) as client,
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool,
        ):
            futures = {pool.submit(one, client, prompt): row for row, prompt in enumerate(prompts)}
            for future in as_completed(futures):
                verdicts[futures[future]] = future.result()
                if progress and not streak.stopped.is_set():
                    progress(1)
        if streak.stopped.is_set():
            raise JudgeUnavailable(self._unavailable(streak))
        return [verdict or Verdict(error="not sent") for verdict in verdicts]

    def _unavailable(self, streak: _FirstFailures) -> str:
        key_state = "set" if self._key else "not set"
        env = self.settings.api_key_env or "no api_key_env"
        return (
            f"the judge server at {self.url} failed the first {streak.failures} requests; the last: "
            f"{streak.last_error}. Check that the server runs, that it serves the model {self.settings.model!r} "
            f"and accepts the key in {env} ({key_state}). Rows rated before this stop are kept"
        )


def _count(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


# ---------------------------------------------------------------- scoring


def score_frame(
    settings: JudgeSettings, examples: pd.DataFrame, progress: Callable[[int], None] | None = None
) -> dict[str, np.ndarray]:
    """The judge's values for every row of ``examples`` (columns instruction, input, output): ``judge`` (the
    score, NaN when unparsed or failed), the 0/1 flags ``judge_unparsed`` and ``judge_failed``, and the tokens the
    server reported (``judge_prompt_tokens``, ``judge_completion_tokens``; NaN when it reports none)."""
    prompts = [
        render(settings, i, x, o) for i, x, o in zip(examples.instruction, examples.input, examples.output, strict=True)
    ]
    verdicts = Judge(settings).rate(prompts, progress) if prompts else []
    return {
        "judge": np.array([v.score for v in verdicts], dtype=float),
        "judge_unparsed": np.array([v.unparsed for v in verdicts], dtype=float),
        "judge_failed": np.array([v.failed for v in verdicts], dtype=float),
        "judge_prompt_tokens": np.array([v.prompt_tokens for v in verdicts], dtype=float),
        "judge_completion_tokens": np.array([v.completion_tokens for v in verdicts], dtype=float),
    }


def try_once(settings: JudgeSettings, instruction: str, input_text: str, output: str) -> tuple[Verdict, float]:
    """One example sent once (no retry), its verdict and the seconds it took: the page's "Test connection".
    A setting that cannot work is a failed verdict naming it, not an exception."""
    import httpx

    try:
        judge = Judge(dataclasses.replace(settings, max_retries=0))
    except JudgeSettingError as exc:
        return Verdict(error=str(exc)), 0.0
    start = time.perf_counter()
    with httpx.Client(timeout=settings.timeout) as client:
        verdict = judge.ask(client, render(settings, instruction, input_text, output))
    return verdict, time.perf_counter() - start


def tally(values: dict[str, np.ndarray]) -> dict[str, float]:
    """Counts a run adds up chunk by chunk: rows rated, unparsed and failed, and the tokens reported."""
    return {
        "rated": float(np.isfinite(values["judge"]).sum()),
        "unparsed": float(np.nansum(values["judge_unparsed"])),
        "failed": float(np.nansum(values["judge_failed"])),
        "prompt_tokens": float(np.nansum(values["judge_prompt_tokens"])),
        "completion_tokens": float(np.nansum(values["judge_completion_tokens"])),
    }


def run_note(totals: dict[str, float], done: int, total: int, seconds: float) -> str:
    """The running figures of a judge run: rows per second and the time left, tokens per row and projected for
    the whole run (from the server's ``usage``), and the unparsed and failed counts so far."""
    parts = []
    if done and seconds > 0:
        rate = done / seconds
        parts.append(f"{rate:.2f} rows/s, about {duration((total - done) / rate)} left")
    tokens = totals.get("prompt_tokens", 0.0) + totals.get("completion_tokens", 0.0)
    if done and tokens:
        parts.append(f"{tokens / done:,.0f} tokens/row, about {_tokens(tokens / done * total)} tokens in all")
    parts.append(f"{totals.get('unparsed', 0):.0f} unparsed, {totals.get('failed', 0):.0f} failed")
    return "; ".join(parts)


def _tokens(n: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


CHARS_PER_TOKEN = 4  # a rough rule for English text, used only before the server has reported any usage


def launch_estimate(settings: JudgeSettings, n_rows: int, chars_per_row: float, rate: float | None) -> str:
    """What a run of ``n_rows`` will cost, before it starts: the time at ``rate`` rows/s (measured here by an
    earlier run of the same key; None: not measured yet) and the prompt tokens at ``CHARS_PER_TOKEN``."""
    prompt_tokens = n_rows * (len(settings.prompt) + chars_per_row) / CHARS_PER_TOKEN
    tokens = (
        f"about {_tokens(prompt_tokens)} prompt tokens (at {CHARS_PER_TOKEN} characters a token) and at most "
        f"{_tokens(n_rows * settings.max_tokens)} completion tokens"
    )
    if rate is None:
        when = "the speed depends on the server: the run shows its rate and time left after its first responses"
    else:
        when = f"about {duration(n_rows / max(rate, 1e-9))} at the {rate:.2f} rows/s measured here"
    return f"judging {n_rows:,} examples sends {n_rows:,} requests to {settings.base_url}: {tokens}; {when}"


def measured_rate(store: Store, settings: JudgeSettings) -> float | None:
    """Rows per second of this workspace's earlier runs of the same judge key (the median), or None."""
    import statistics

    from core.storage import stage_runs

    key = score_key(settings)
    rates = [run.rate for run in stage_runs.runs(store, stage="scores", scorer="judge") if run.key == key]
    return statistics.median(rates) if rates else None


def sample_chars(store: Store, dataset_id: int, rows: int = 200) -> float:
    """Mean characters of an example's three texts over its first ``rows`` rows (for the token estimate)."""
    from core.storage.datasets import texts_in_rows

    frame = texts_in_rows(store, dataset_id, 0, rows)
    if frame.empty:
        return 0.0
    lengths = sum(frame[name].fillna("").str.len() for name in ("instruction", "input", "output"))
    return float(lengths.mean())


def estimate_for(store: Store, dataset_id: int, settings: JudgeSettings, n_rows: int) -> str:
    """:func:`launch_estimate` for ``n_rows`` rows of the dataset, with the rate measured here if any."""
    return launch_estimate(settings, n_rows, sample_chars(store, dataset_id), measured_rate(store, settings))
