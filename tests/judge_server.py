"""A scripted OpenAI-compatible chat-completions server for the judge's tests: a ``ThreadingHTTPServer`` in a
thread on 127.0.0.1 (port 0), no process. It records every request (body and headers) and the most requests
it ever had in flight; ``reply`` decides each answer (the default rates deterministically from the prompt)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, body (a dict is sent as JSON), extra headers)
Reply = tuple[int, Any, dict[str, str]]


def prompt_of(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


def rating(prompt: str) -> int:
    """A rating 1..5 that depends only on the prompt: the same rows get the same score on every run."""
    return 1 + int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 5


def completion(content: str, model: str = "judge-test", usage: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    return body


def rate_by_hash(body: dict[str, Any], count: int) -> Reply:
    """The default reply: ``"<1..5>\\nA short reason."``."""
    return 200, completion(f"{rating(prompt_of(body))}\nA short reason."), {}


class FakeJudge:
    """The server; ``url`` is the base URL a judge takes (``.../v1``). ``delay`` seconds pass in each request."""

    def __init__(self, reply: Callable[[dict[str, Any], int], Reply] = rate_by_hash, delay: float = 0.0):
        self.reply, self.delay = reply, delay
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def prompts(self) -> list[str]:
        return [prompt_of(body) for body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    count = len(fake.requests)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if fake.delay:
                        time.sleep(fake.delay)
                    status, payload, headers = fake.reply(body, count)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

        return Handler
