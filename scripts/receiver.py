"""A webhook receiver on 127.0.0.1 for the tests and scripts/bench operate: it answers the statuses queued
(then 200), after `delay` seconds, hangs while told to, and keeps every request it got; and a config with
one webhook pointing at it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRET = "whsec-test-0123456789"
SECRET_ENV = "EXPORT_JOBS_TEST_WEBHOOK_SECRET"
ALL_EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "job.rejectedRecords", "schedule.slotSkipped",
              "privacy.completed")
# Short enough that retries take a fraction of a second.
FAST_DELIVERY = {"attempts": 3, "firstBackoffSeconds": 0.05, "maxBackoffSeconds": 0.2, "timeoutSeconds": 0.3,
                 "pollSeconds": 0.05, "exitWaitSeconds": 1.0}


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    answers: list[int] = field(default_factory=list)  # statuses to answer, in order; then 200
    requests: list[Received] = field(default_factory=list)
    delay: float = 0.0  # seconds each answer waits
    hanging: threading.Event = field(default_factory=threading.Event)  # set: requests wait until cleared
    _released: threading.Event = field(default_factory=threading.Event)

    def hang(self) -> None:
        self._released.clear()
        self.hanging.set()

    def release(self) -> None:
        self.hanging.clear()
        self._released.set()


@contextmanager
def receiving(delay: float = 0.0) -> Iterator[Receiver]:
    receiver = Receiver(delay=delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(Received(dict(self.headers.items()), body))
            time.sleep(receiver.delay)
            if receiver.hanging.is_set():
                receiver._released.wait(10)
            status = receiver.answers.pop(0) if receiver.answers else 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:  # the sender gave up waiting (its timeout)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/export-jobs"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()


def webhook_toml(url: str, events: tuple[str, ...] = ALL_EVENTS, name: str = "crm", org: str = "demo@Org",
                 sandboxes: tuple[str, ...] = ("prod",), ratio: float | None = None,
                 delivery: dict[str, Any] | None = None) -> str:
    """TOML to append to a config: one [[webhooks]] entry, and [webhookDelivery] (FAST_DELIVERY by default)."""
    listed = ", ".join(f'"{e}"' for e in events)
    lines = ["", "[[webhooks]]", f'name = "{name}"', f'url = "{url}"', f'org = "{org}"',
             "sandboxes = [" + ", ".join(f'"{s}"' for s in sandboxes) + "]", f"events = [{listed}]",
             f'secretEnv = "{SECRET_ENV}"', *([f"rejectedRatioAbove = {ratio}"] if ratio is not None else []),
             "", "[webhookDelivery]", *(f"{k} = {v}" for k, v in (delivery or FAST_DELIVERY).items()), ""]
    return "\n".join(lines)


def add_webhook(conf: Path, url: str, **options: Any) -> Path:
    """The config file with a webhook to `url`, and its delivery log beside the file (not in a shared lake)."""
    log = conf.parent / "webhook_deliveries"
    conf.write_text(f'webhookTable = "{log}"\n' + conf.read_text() + webhook_toml(url, **options))
    return conf
