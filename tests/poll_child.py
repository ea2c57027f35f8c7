"""One poll of a source in a child process, which can hang between fetching and storing.

    python tests/poll_child.py --database URL --factory MODULE:FUNCTION --arg VALUE
                               [--hang-after-fetch]

The child builds the source by calling ``FUNCTION(VALUE)`` from ``MODULE`` (a test module that
builds a real source aimed at its stand-in at URL ``VALUE``), then runs one `Poller.poll` on
the database. With ``--hang-after-fetch`` it prints ``fetched`` once ``fetch`` has returned and
sleeps instead of storing, so the test can SIGKILL it at exactly that point: the worst moment
for a source, with the platform's data read and nothing stored.

`kill_after_fetch` does that from a test; `poll_in_child` runs a whole poll to the end.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _command(database: str, factory: str, arg: str, *, hang: bool) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--database", database]
    command += ["--factory", factory, "--arg", arg]
    return [*command, "--hang-after-fetch"] if hang else command


def kill_after_fetch(database: str, factory: str, arg: str, *, timeout: float = 60.0) -> None:
    """Start a poll in a child, wait until it has fetched, and SIGKILL it before it stores."""
    child = subprocess.Popen(
        _command(database, factory, arg, hang=True),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    try:
        line = child.stdout.readline()
        if line.strip() != "fetched":
            _, err = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            raise AssertionError(f"the child never fetched: {line!r} {err[-2000:]}")
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def poll_in_child(database: str, factory: str, arg: str, *, timeout: float = 120.0) -> None:
    """Run one whole poll in a child process (a restarted Earful), failing on its error."""
    done = subprocess.run(
        _command(database, factory, arg, hang=False),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def main() -> None:
    """Parse the arguments and run one poll."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--factory", required=True)
    parser.add_argument("--arg", required=True)
    parser.add_argument("--hang-after-fetch", action="store_true")
    args = parser.parse_args()

    from bot.polling import Intake, Poller
    from bot.sources import Fetched
    from storage.database import Database

    class HangingIntake(Intake):
        def store(self, source: str, fetched: Fetched) -> list[int]:
            print("fetched", flush=True)
            time.sleep(3600)
            return super().store(source, fetched)

    sys.path.insert(0, str(HERE))
    module_name, _, function = args.factory.partition(":")
    build = getattr(importlib.import_module(module_name), function)
    database = Database(url=args.database)
    intake = (HangingIntake if args.hang_after_fetch else Intake)(database=database)
    poller = Poller(source=build(args.arg), intake=intake)
    if poller.poll() and poller.failures:
        sys.exit(f"the poll failed ({poller.failures} failure)")


if __name__ == "__main__":
    main()
