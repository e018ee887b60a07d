"""Generation and training on CPU and, where CUDA is available, on the GPU.

Generation: n Lorenz-63 trajectories (2,001 samples on [0, 20], DOP853 at tol 1e-10, float64,
never reduced precision) with the step eager and compiled; the compiled rows are timed after a
first call that compiles (its time is shown apart). CPU eager at n = 65,536 takes minutes and is
skipped unless ``--cpu-eager-all``.

Training: each learner trains for a fixed number of optimiser steps (no early stopping) on the
same data, in float32 and, on CUDA, also with ``precision="mixed"`` (bfloat16 matrix products,
float32 states); the table shows wall time and steps per second per device. On a machine without CUDA only the CPU
rows are printed.

    python benchmarks/bench_gpu.py [--sizes 4096 65536] [--steps 200] [--batch 1024]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

import workbench as wb

CASES = {"node": ("lorenz63", {"hidden": 128, "depth": 2, "window": 16}),
         "nsde": ("double_well", {"hidden": 128, "depth": 2, "window": 16})}


def _timed(run: Callable[[], object], device: str) -> float:
    start = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def generation(sizes: list[int], devices: list[str], cpu_eager_all: bool) -> None:
    print("| generation | device | n | step | first call (s) | warm (s) | trajectories/s |")
    print("|---|---|---:|---|---:|---:|---:|")
    times = np.linspace(0.0, 20.0, 2001)
    for n in sizes:
        for device in devices:
            for compiled in (False, True):
                if device == "cpu" and not compiled and n > 4096 and not cpu_eager_all:
                    print(f"| lorenz63 | cpu | {n} | eager | skipped (--cpu-eager-all) | | |")
                    continue
                run = lambda: wb.simulate("lorenz63", n=n, times=times, seed=0, split=None,  # noqa: E731
                                          device=device, compile=compiled, threads=1)
                first = _timed(run, device)
                warm = _timed(run, device) if compiled else first
                print(f"| lorenz63 | {device} | {n} | {'compiled' if compiled else 'eager'} | {first:.2f} | "
                      f"{warm:.2f} | {n / warm:.0f} |", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 65536])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--cpu-eager-all", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"torch {torch.__version__}, CUDA device: {gpu}, CPU threads: 1\n")
    if not args.skip_generation:
        generation(args.sizes, devices, args.cpu_eager_all)
    print("| learner | system | device | precision | steps | batch | wall (s) | steps/s |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for learner, (system, options) in CASES.items():
        ds = wb.simulate(system, n=64, seed=0, t_end=10.0)
        for device in devices:
            for precision in ("float32", "mixed") if device == "cuda" else ("float32",):
                if device == "cuda":  # the first CUDA call pays context creation; keep it out of the timing
                    wb.fit(ds, learner, epochs=1, steps_per_epoch=2, device=device, batch_size=args.batch,
                           precision=precision, **options)
                wall = _timed(lambda: wb.fit(ds, learner, epochs=args.steps // 25, steps_per_epoch=25,
                                             patience=10 ** 6, device=device, batch_size=args.batch,
                                             precision=precision, threads=1, **options), device)
                print(f"| {learner} | {system} | {device} | {precision} | {args.steps} | {args.batch} | "
                      f"{wall:.1f} | {args.steps / wall:.1f} |", flush=True)


if __name__ == "__main__":
    main()
