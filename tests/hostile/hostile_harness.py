"""Run one hostile case in a forked child under memory and CPU limits, and watch the files around it.

Each case runs in ``os.fork``-ed child of the test process (the workbench is imported once, so a
case costs milliseconds, not an interpreter start) with ``RLIMIT_AS`` set to what the child has
mapped plus :data:`MEMORY_HEADROOM` and ``RLIMIT_CPU`` to :data:`CPU_SECONDS`. A case that runs
past :data:`WALL_SECONDS` is killed and reported as a hang; a child that dies from a signal (a
segfault, the kernel's OOM killer) is reported as a crash. Exceptions come back as their class
names, so the test asserts the WorkbenchError family without trusting the child's state.
"""
from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import re
import resource
import stat
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

MEMORY_HEADROOM = 1536 * 2**20
CPU_SECONDS = 60
WALL_SECONDS = 90


@dataclass
class Outcome:
    """What a case did: ``raised``, ``returned``, ``exited`` (SystemExit), ``crashed`` or ``hung``."""

    status: str
    error: str = ""
    family: list[str] = field(default_factory=list)
    message: str = ""
    exit_code: Optional[int] = None
    stderr: str = ""
    seconds: float = 0.0
    value: Any = None
    peak_mb: float = 0.0  # the child's peak resident memory (inherited pages it touched included)

    @property
    def workbench_error(self) -> bool:
        return "WorkbenchError" in self.family


def _mapped_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(conn: Any, fn: Callable[..., Any], args: tuple, memory: int, cpu: int, user: Optional[int]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_mapped_bytes() + memory, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    if user is not None:
        os.setgid(user)
        os.setuid(user)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            value = fn(*args)
        result = {"status": "returned", "value": value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)}
    except SystemExit as exc:
        result = {"status": "exited", "exit_code": exc.code if isinstance(exc.code, int) else 1}
    except BaseException as exc:  # noqa: B902 - every escape is what the test inspects
        result = {"status": "raised", "error": type(exc).__name__, "family": [c.__name__ for c in type(exc).__mro__],
                  "message": str(exc), "trace": traceback.format_exc(limit=6)}
    result.update(seconds=time.perf_counter() - start, stderr=err.getvalue(),
                  peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    conn.send(result)
    conn.close()
    os._exit(0)


def run_isolated(fn: Callable[..., Any], *args: Any, memory: int = MEMORY_HEADROOM, cpu: int = CPU_SECONDS,
                 wall: float = WALL_SECONDS, user: Optional[int] = None) -> Outcome:
    """Run ``fn(*args)`` in a forked child under limits; ``user`` drops to that uid/gid first (root only)."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args, memory, cpu, user))
    start = time.perf_counter()
    proc.start()
    send.close()
    if not receive.poll(wall):
        proc.kill()
        proc.join()
        return Outcome("hung", seconds=time.perf_counter() - start)
    try:
        result = receive.recv()
    except EOFError:
        proc.join()
        return Outcome("crashed", exit_code=proc.exitcode, seconds=time.perf_counter() - start)
    proc.join()
    result.pop("trace", None)
    outcome = Outcome(**result)
    _record(outcome)
    return outcome


def assert_refused(outcome: Outcome, error: str, pattern: str, seconds: float = 30.0) -> None:
    """The case raised the named ``WorkbenchError`` subclass, its message matches ``pattern``, and it
    was refused within ``seconds`` (before any expensive work)."""
    assert outcome.status == "raised", (outcome.status, outcome.message)
    assert outcome.workbench_error and outcome.error == error, (outcome.error, outcome.message)
    assert re.search(pattern, outcome.message), outcome.message
    assert outcome.seconds < seconds


def _record(outcome: Outcome) -> None:
    """With ``HOSTILE_REPORT=path``, append the case's test id, result, seconds and peak memory as a JSON line
    (the table of the hostile run: ``python -m pytest tests/hostile`` then read the file)."""
    report = os.environ.get("HOSTILE_REPORT")
    if not report:
        return
    import json
    line = {"case": os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0], "status": outcome.status,
            "error": outcome.error, "seconds": round(outcome.seconds, 3), "peak_mb": round(outcome.peak_mb, 1)}
    with open(report, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, mode and content hash (regular files) by relative path."""
    entries = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else ""
        entries[str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), digest)
    return entries


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> set[str]:
    """Paths added, removed or modified between two snapshots."""
    return {p for p in set(before) | set(after) if before.get(p) != after.get(p)}


def temporaries(root: Path) -> list[str]:
    """Leftover ``*.tmp`` files under ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.tmp"))
