"""`earful run` as a real subprocess for tests, and the small HTTP helpers around it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``check`` until it holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def http_status(
    url: str,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> int:
    """The HTTP status of one request (a body makes it a POST); 0 when nothing answers."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except OSError:
        return 0


@dataclass
class Run:
    """A running `earful run`: its port, then, once it stopped, its output and exit code."""

    port: int
    out: str = ""
    err: str = ""
    returncode: int | None = None
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"


@contextmanager
def earful_run(env: dict[str, str], *args: str, port: int | None = None) -> Iterator[Run]:
    """Start `earful run` (on a free port unless given), wait for /healthz, and stop it with
    SIGTERM after."""
    run = Run(port=port or free_port())
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "bot.cli", "run", "--port", str(run.port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: http_status(f"{run.base}/healthz") == 200, "/healthz")
        yield run
    finally:
        process.send_signal(signal.SIGTERM)
        run.out, run.err = process.communicate(timeout=60)
        run.returncode = process.returncode
