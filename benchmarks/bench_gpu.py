"""Training throughput on CPU and, where CUDA is available, on the GPU: node and nsde.

Each learner trains for a fixed number of optimiser steps (no early stopping) on the same data;
the table shows wall time and steps per second per device. On a machine without CUDA only the
CPU rows are printed.

    python benchmarks/bench_gpu.py [--steps 200] [--batch 256]
"""
from __future__ import annotations

import argparse
import time

import torch

import workbench as wb

CASES = {"node": ("lorenz63", {"hidden": 128, "depth": 2, "window": 16}),
         "nsde": ("double_well", {"hidden": 128, "depth": 2, "window": 16})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, CUDA device: {gpu}, CPU threads: 1\n")
    print("| learner | system | device | steps | batch | wall (s) | steps/s |")
    print("|---|---|---|---:|---:|---:|---:|")
    for learner, (system, options) in CASES.items():
        ds = wb.simulate(system, n=64, seed=0, t_end=10.0)
        for device in devices:
            if device == "cuda":  # first CUDA call pays context creation; keep it out of the timing
                wb.fit(ds, learner, epochs=1, steps_per_epoch=2, device=device, batch_size=args.batch, **options)
                torch.cuda.synchronize()
            start = time.perf_counter()
            wb.fit(ds, learner, epochs=args.steps // 25, steps_per_epoch=25, patience=10 ** 6, device=device,
                   batch_size=args.batch, threads=1, **options)
            if device == "cuda":
                torch.cuda.synchronize()
            wall = time.perf_counter() - start
            print(f"| {learner} | {system} | {device} | {args.steps} | {args.batch} | {wall:.1f} | {args.steps / wall:.1f} |")


if __name__ == "__main__":
    main()
