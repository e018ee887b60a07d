"""Same cores for every implementation in a benchmark: ``--cores N`` pins the process to its first N CPUs.

Asked for one thread, JAX's runtime still spreads its work over about 1.6 cores; pinning before
numpy, torch and JAX start their threads (which inherit the mask) gives every contender the same
CPUs. Import this module before those libraries.
"""
from __future__ import annotations

import argparse
import os


def pin_from_argv() -> list[int]:
    """Pin this process to the first ``--cores`` CPUs it may use (default 1); returns their ids."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cores", type=int, default=1)
    cores = parser.parse_known_args()[0].cores
    chosen = sorted(os.sched_getaffinity(0))[:max(1, cores)]
    os.sched_setaffinity(0, chosen)
    return chosen


def add_cores_option(parser: argparse.ArgumentParser) -> None:
    """Declare ``--cores`` in a script's own parser (for ``--help``; it was read at import)."""
    parser.add_argument("--cores", type=int, default=1,
                        help="CPUs every implementation runs on (pinned with sched_setaffinity; default 1)")
