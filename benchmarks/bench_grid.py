"""Dask scale-out: the same benchmark grid on a LocalCluster of 1 worker, then of 2 workers.

Cells train a fixed number of epochs (compute-bound, same work in both runs); the table shows
wall times and the speed-up. On a 2-core machine the ideal is 2x.

    python benchmarks/bench_grid.py [--epochs 30]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from workbench import benchmark as bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    data = [bench.DataSpec(s, {"n": 24, "seed": 0}) for s in ("van_der_pol", "duffing")]
    entries = [bench.Entry(name, name, {"epochs": args.epochs, "patience": 10 ** 6}) for name in ("node", "resnet")]
    grid = bench.Grid(data=data, entries=entries, seeds=[0, 1], budget=3600.0)
    rows = []
    for workers in (1, 2):
        folder = Path(tempfile.mkdtemp(prefix="grid-"))
        start = time.perf_counter()
        bench.run_grid(grid, folder, workers=workers, progress=False)
        rows.append((workers, time.perf_counter() - start))
        shutil.rmtree(folder)
    cells = len(data) * len(entries) * len(grid.seeds)
    print(f"\n{cells} cells (2 systems x 2 learners x 2 seeds, {args.epochs} epochs each)\n")
    print("| workers | wall (s) | speed-up |\n|---:|---:|---:|")
    for workers, wall in rows:
        print(f"| {workers} | {wall:.1f} | {rows[0][1] / wall:.2f}x |")


if __name__ == "__main__":
    main()
