"""One driver per run: ``<run>/driver.json`` names the driver that holds the run, on a local disk, a shared one
or an object store alike.

Two drivers on one run (a re-submitted job, a second terminal) would run its units twice and race on its
Tune state. A driver takes the run when no live driver holds it, refreshes its heartbeat while it runs and
gives the run back when it ends. A holder is live when its process runs (on the same host) or its heartbeat
is recent (elsewhere: hosts' clocks are assumed within seconds of each other, as NTP keeps them). A holder
that died is taken over by the next driver: at once on its own host, ``STALE_AFTER_S`` after its last
heartbeat elsewhere. Every write is whole (``store.write_whole``); two drivers that find the run free
at the same moment both write, wait ``SETTLE_S`` and read back: only the one whose claim is there goes on,
and a holder whose claim was replaced stops (``on_lost``).
"""

import _thread
import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

from orchestrator.store import filesystem_of, join, write_whole

HEARTBEAT_S = 10.0
STALE_AFTER_S = 60.0
SETTLE_S = 2.0
TORN_READS, TORN_READ_PAUSE_S = 5, 0.1  # reads of an unreadable claim before it counts as none


class RunHeld(RuntimeError):
    """Another live driver holds the run."""


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class DriverLock:
    def __init__(self, run_dir: str, run: str, on_lost=_thread.interrupt_main):
        """``on_lost``: called (from the heartbeat thread) when another driver replaced this one's claim; by
        default it interrupts the main thread, which stops the sweep as Ctrl-C does."""
        self.filesystem, path = filesystem_of(run_dir)
        self.path, self.uri, self.run, self.on_lost = join(path, "driver.json"), join(run_dir, "driver.json"), run, on_lost
        self.claim = {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                      "started_at": time.time(), "command": " ".join(sys.argv)}  # fmt: skip
        self.lost = False
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="driver-heartbeat", daemon=True)

    def holder(self) -> dict | None:
        for _ in range(TORN_READS):
            try:
                with self.filesystem.open_input_stream(self.path) as stream:
                    return json.loads(stream.read())
            except FileNotFoundError:
                return None
            except ValueError:
                # Not JSON: read while a heartbeat replaced it (an S3-compatible store may serve part of an object
                # being copied over), or a claim cut short by a full disk, which no live driver leaves for long
                time.sleep(TORN_READ_PAUSE_S)
        return None

    def acquire(self) -> dict | None:
        """Takes the run, or raises ``RunHeld`` naming the live holder and what to do. Returns the claim of a dead
        driver it took over, if any."""
        previous = self.holder()
        if previous is not None and previous["token"] != self.claim["token"] and self._live(previous):
            raise RunHeld(self._held_message(previous))
        self._write()
        time.sleep(SETTLE_S)
        current = self.holder()
        if current is None or current["token"] != self.claim["token"]:
            raise RunHeld(self._held_message(current) if current else f"run {self.run}: another driver took it first")
        self._heartbeat.start()
        return previous

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        try:
            current = self.holder()
            if current is not None and current["token"] == self.claim["token"]:
                self.filesystem.delete_file(self.path)
        except OSError as error:  # the storage is away: the claim goes stale, and the next driver takes it over
            print(f"could not give back the run's claim {self.uri}: {error}", file=sys.stderr)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *_):
        self.release()

    def _live(self, holder: dict) -> bool:
        if holder["host"] == self.claim["host"]:
            return _process_runs(holder["pid"])
        return time.time() - holder["heartbeat_at"] < STALE_AFTER_S

    def _held_message(self, holder: dict) -> str:
        beat = time.time() - holder["heartbeat_at"]
        where = f"pid {holder['pid']} on {holder['host']}"
        return (
            f"run {self.run} is held by another driver: {where}, started {_stamp(holder['started_at'])} "
            f"({holder['command']}), last heartbeat {beat:.0f} s ago. Two drivers on one run would run its units "
            f"twice. Wait for it to finish, or stop it (kill {holder['pid']} on {holder['host']}) and run this "
            f"command again: a driver that died is taken over at once on its own host and {STALE_AFTER_S:.0f} s "
            f"after its last heartbeat elsewhere. Or give this run another name (run=...). The claim is {self.uri}."
        )

    def _write(self) -> None:
        self.filesystem.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        write_whole(self.filesystem, self.path, json.dumps({**self.claim, "heartbeat_at": time.time()}).encode())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                current = self.holder()
                if current is not None and current["token"] != self.claim["token"]:
                    self.lost = True
                    self.on_lost()
                    return
                self._write()
            except OSError as error:  # storage briefly unreachable: the next beat tries again
                print(f"driver heartbeat: {error}", file=sys.stderr)
