"""Ground-truth generation, side by side in one run: workbench vs scipy, torchdiffeq, diffrax, torchsde.

ODE: n Lorenz-63 (or, with ``--system lorenz96``, Lorenz-96 with 10 variables) trajectories,
2,001 samples on [0, 20]. Errors are the max over trajectories of the max abs error on t <= 2
(about two Lyapunov times) against scipy DOP853 at rtol=atol=``--ref-tol`` (default 1e-13; a
per-trajectory reference). SDE: n Ornstein-Uhlenbeck paths, 1,001 samples, Euler-Maruyama at
the same step, workbench vs torchsde called directly.

Methods run interleaved, ``--reps`` times each (after one cold call, reported separately), one
torch/XLA thread per process; the table gives min and median seconds, the max error, the ratio of
medians to workbench, and the load average. Workbench runs twice: eager, and with its step
compiled (``compile=True``; the cold call includes compiling; ``--fresh-cache`` starts from an
empty inductor cache, otherwise an earlier run's cache may be warm). Peers that are not installed
are skipped (install them with ``benchmarks/requirements-peers.txt``).

A second table checks that rows do not interact: the max error of the same 16 trajectories
solved within batches of 16, 256 and n, and the max over every trajectory of each batch.

Every implementation runs on the same ``--cores`` CPUs (default 1; see ``pinning.py``).

    python benchmarks/bench_generate.py [--system lorenz63] [--n 256] [--reps 3] [--tol 1e-10] [--fresh-cache] [--cores 1]
    python benchmarks/bench_generate.py --memory    # simulate's memory estimate against the measured peak
    python benchmarks/bench_generate.py --ops [--n 16]  # torch operations per eager solver step, by function
    python benchmarks/bench_generate.py --default-call --sizes 16,64,256,4096 [--before DIR]  # wb.simulate(system, n=n) vs diffrax
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from typing import Callable, Optional

from pinning import add_cores_option, pin_from_argv  # noqa: E402

CORES = pin_from_argv()  # before numpy, torch and JAX start threads
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
if "--fresh-cache" in sys.argv:  # before torch reads it
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import workbench as wb  # noqa: E402

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
FORCING = 8.0  # Lorenz-96's catalog default
SYSTEMS = ("lorenz63", "lorenz96")


def lorenz_numpy(t, y):
    return np.array([SIGMA * (y[1] - y[0]), y[0] * (RHO - y[2]) - y[1], y[0] * y[1] - BETA * y[2]])


def lorenz96_numpy(t, y):
    return (np.roll(y, -1) - np.roll(y, 2)) * np.roll(y, 1) - y + FORCING


def numpy_field(system: str) -> Callable:
    return lorenz_numpy if system == "lorenz63" else lorenz96_numpy


def scipy_loop(x0: np.ndarray, times: np.ndarray, tol: float, system: str = "lorenz63") -> np.ndarray:
    return np.stack([solve_ivp(numpy_field(system), (times[0], times[-1]), x, method="DOP853", t_eval=times,
                               rtol=tol, atol=tol).y.T for x in x0])


def torchdiffeq_batched(x0: np.ndarray, times: np.ndarray, tol: float, system: str = "lorenz63") -> np.ndarray:
    import torchdiffeq

    def field(t, y):
        if system == "lorenz96":
            return (torch.roll(y, -1, -1) - torch.roll(y, 2, -1)) * torch.roll(y, 1, -1) - y + FORCING
        x, yy, z = y.unbind(-1)
        return torch.stack([SIGMA * (yy - x), x * (RHO - z) - yy, x * yy - BETA * z], -1)

    # the max over trajectories of each trajectory's RMS error: every row meets the tolerance
    norm = lambda r: r.pow(2).mean(-1).sqrt().max()  # noqa: E731
    out = torchdiffeq.odeint(field, torch.from_numpy(x0), torch.from_numpy(times), method="dopri8",
                             rtol=tol, atol=tol, options={"norm": norm})
    return out.transpose(0, 1).numpy()


def diffrax_solver(times: np.ndarray, tol: float, system: str = "lorenz63") -> Optional[Callable[[np.ndarray], np.ndarray]]:
    try:
        import diffrax
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)

    def field(t, y, args):
        if system == "lorenz96":
            return (jnp.roll(y, -1) - jnp.roll(y, 2)) * jnp.roll(y, 1) - y + FORCING
        return jnp.stack([SIGMA * (y[1] - y[0]), y[0] * (RHO - y[2]) - y[1], y[0] * y[1] - BETA * y[2]])

    ts = jnp.asarray(times)
    term, solver = diffrax.ODETerm(field), diffrax.Dopri8()
    controller = diffrax.PIDController(rtol=tol, atol=tol)

    @jax.jit
    def solve(y0s):
        one = lambda y0: diffrax.diffeqsolve(term, solver, t0=ts[0], t1=ts[-1], dt0=1e-3, y0=y0,  # noqa: E731
                                             saveat=diffrax.SaveAt(ts=ts), stepsize_controller=controller,
                                             max_steps=200_000).ys
        return jax.vmap(one)(y0s)

    return lambda x0: np.asarray(solve(jnp.asarray(x0)).block_until_ready())


def torchsde_direct(n: int, times: torch.Tensor, dt: float, seed: int) -> np.ndarray:
    import torchsde

    class OU(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return -1.0 * y

        def g(self, t, y):
            return 0.5 * torch.ones_like(y)

    y0 = torch.zeros(n, 1, dtype=torch.float64)
    bm = torchsde.BrownianInterval(t0=float(times[0]), t1=float(times[-1]), size=(n, 1), dtype=torch.float64,
                                   entropy=seed, dt=dt)
    with torch.no_grad():
        return torchsde.sdeint(OU(), y0, times, bm=bm, method="euler", dt=dt).numpy()


def measure(methods: dict[str, Callable[[], np.ndarray]], reps: int) -> dict[str, dict]:
    """One cold call each, then ``reps`` interleaved warm calls."""
    results = {name: {"cold": None, "warm": [], "out": None} for name in methods}
    for name, run in methods.items():
        start = time.perf_counter()
        results[name]["out"] = run()
        results[name]["cold"] = time.perf_counter() - start
    for _ in range(reps):
        for name, run in methods.items():
            start = time.perf_counter()
            run()
            results[name]["warm"].append(time.perf_counter() - start)
    return results


def table(title: str, results: dict[str, dict], errors: dict[str, float], ours: str) -> None:
    base = statistics.median(results[ours]["warm"])
    print(f"\n{title}  (load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})\n")
    print("| method | cold (s) | warm min (s) | warm median (s) | median / ours | max error |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        med = statistics.median(r["warm"])
        err = errors.get(name)
        print(f"| {name} | {r['cold']:.2f} | {min(r['warm']):.2f} | {med:.2f} | {med / base:.2f} | "
              f"{'-' if err is None else f'{err:.1e}'} |")


def batch_independence(x0: np.ndarray, times: np.ndarray, reference: np.ndarray, tol: float,
                       system: str = "lorenz63") -> None:
    """Max error of the first 16 trajectories, and of all, when solved in batches of growing size."""
    print(f"\nPer-trajectory step control: max error on [0, 2] at tol {tol:g}\n")
    print("| batch size | max error, the same 16 trajectories | max error, whole batch |")
    print("|---:|---:|---:|")
    for size in sorted({16, min(256, len(x0)), len(x0)}):
        out = wb.simulate(system, n=size, times=times, x0=x0[:size], rtol=tol, atol=tol, split=None).state.values
        err = np.abs(out - reference[:size]).max(axis=(1, 2))
        print(f"| {size} | {err[:16].max():.2e} | {err.max():.2e} |")


# run in a fresh process per size, so each peak is the call's own: the resident-set high-water mark
# after a small warm-up call, and again after the measured call
MEMORY_PROBE = """
import resource, sys, torch, workbench as wb
from workbench.simulate import _memory_estimate
torch.set_num_threads(1)
system, n = sys.argv[1], int(sys.argv[2])
wb.simulate(system, n=2, t_end=1.0, seed=0, split=None)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ds = wb.simulate(system, n=n, seed=0, split=None)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(_memory_estimate(n, ds.sizes["time"], ds.sizes["variable"], 0.0, 0.0, False), (after - before) * 1024)
"""


def memory_table(system: str) -> None:
    """``simulate``'s memory estimate (what ``WORKBENCH_MEMORY_LIMIT`` is checked against) beside the
    measured peak it adds, for the default call at three sizes; target: within 1.5x."""
    import subprocess

    print(f"\nmemory estimate vs measured peak, default wb.simulate({system!r}, n=n)   (load {os.getloadavg()})")
    print("| n | estimate (MiB) | measured peak added (MiB) | estimate / peak |\n|---:|---:|---:|---:|")
    for n in (256, 4096, 16384):
        out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, system, str(n)], capture_output=True, text=True,
                             check=True).stdout.split()
        estimate, peak = int(out[-2]), int(out[-1])
        print(f"| {n:,} | {estimate / 2**20:.1f} | {peak / 2**20:.1f} | {estimate / max(peak, 1):.2f} |")


def count_operations(system: str, n: int, top: int = 15) -> None:
    """Torch operations per step of the default eager ``wb.simulate(system, n=n)``, counted two ways:
    the aten operations Python dispatches (a ``TorchDispatchMode``: one per call a step makes, views
    included), by the innermost workbench or catalog function that made them, and the events
    ``torch.profiler`` records (nested operations too, e.g. the ``empty`` inside a ``mul``)."""
    import collections
    from torch.profiler import ProfilerActivity, profile
    from torch.utils._python_dispatch import TorchDispatchMode

    from workbench.catalog import get_system
    from workbench.numerics import adaptive

    roots = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                  for m in (wb, sys.modules[get_system(system).drift.__module__]))

    class Counter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.by_function: collections.Counter = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            frame = sys._getframe(1)
            while frame is not None and not frame.f_code.co_filename.startswith(roots):
                frame = frame.f_back
            where = "?" if frame is None else f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
            self.by_function[where] += 1
            return func(*args, **(kwargs or {}))

    steps = [0]
    call = adaptive._Stepper.__call__

    def counted(self, *inputs):
        steps[0] += 1
        return call(self, *inputs)

    run = lambda: wb.simulate(system, n=n, split=None, compile=False)  # noqa: E731
    run()  # warm: first-call work is not a step's
    adaptive._Stepper.__call__ = counted
    try:
        counter = Counter()
        with counter:
            run()
        per_step = steps[0]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
    finally:
        adaptive._Stepper.__call__ = call
    events = sum(e.count for e in prof.key_averages())
    total = sum(counter.by_function.values())
    print(f"\ndefault eager wb.simulate({system!r}, n={n}): {per_step} steps; per step {total / per_step:.1f} "
          f"dispatched aten operations, {events / per_step:.1f} profiler events   (load {os.getloadavg()})\n")
    print("| function | dispatched operations per step |\n|---|---:|")
    for where, count in counter.by_function.most_common(top):
        print(f"| {where} | {count / per_step:.1f} |")


# times one warm default call of the workbench found first on sys.path (an earlier source tree, for
# --before), in its own process: the same core, after a cold call
BEFORE_PROBE = """
import sys, time, torch
sys.path.insert(0, sys.argv[1])
import workbench as wb
torch.set_num_threads(1)
system, n = sys.argv[2], int(sys.argv[3])
wb.simulate(system, n=n)
start = time.perf_counter()
wb.simulate(system, n=n)
print(time.perf_counter() - start)
"""


def default_call_table(system: str, sizes: list[int], reps: int, ref_tol: float, before: Optional[str]) -> None:
    """The call a user types, ``wb.simulate(system, n=n)`` (eager below ``COMPILE_MIN_WORK``), against
    diffrax Dopri8 (``vmap`` + ``jit``) at the same tolerance (1e-10), times and initial states;
    ``before``: a source tree of an earlier workbench, timed beside them in a process of its own per
    repetition (its import and cold call not counted). Medians of ``reps`` interleaved warm calls;
    errors are the max over the first 16 trajectories on t <= 2 against scipy DOP853 at ``ref_tol``."""
    import subprocess

    tol = 1e-10
    print(f"\ndefault call wb.simulate({system!r}, n=n) against diffrax Dopri8 (tol {tol:g}), "
          f"{reps} interleaved repetitions, medians   (load at start {os.getloadavg()})\n")
    print(f"| n |{' before (s) |' if before else ''} now (s) | diffrax (s) | now / diffrax | error (ours / diffrax) | load |")
    print(f"|---:|{'---:|' if before else ''}---:|---:|---:|---:|---|")
    for n in sizes:
        first = wb.simulate(system, n=n)
        times = first.time.values
        x0 = first.state.values[:, 0]
        run = diffrax_solver(times, tol, system)
        methods: dict[str, Callable[[], np.ndarray]] = {"now": lambda: wb.simulate(system, n=n).state.values}
        if run is not None:
            methods["diffrax"] = lambda: run(x0)
        earlier: list[float] = []
        if before:
            def probe() -> np.ndarray:
                done = subprocess.run([sys.executable, "-c", BEFORE_PROBE, before, system, str(n)], capture_output=True,
                                      text=True, check=True)
                earlier.append(float(done.stdout.split()[-1]))
                return np.empty(0)
            methods["before"] = probe
        results = measure(methods, reps)
        early = times <= 2.0
        reference = scipy_loop(x0[:16], times[early], ref_tol, system)
        error = {name: float(np.abs(results[name]["out"][:16, early] - reference).max())
                 for name in ("now", "diffrax") if name in results}
        med = {name: statistics.median(r["warm"]) for name, r in results.items()}
        before_cell = f" {statistics.median(earlier[1:]):.3g} |" if before else ""  # earlier[0]: the cold round
        ratio = med["now"] / med["diffrax"] if "diffrax" in med else float("nan")
        print(f"| {n:,} |{before_cell} {med['now']:.3g} | {med.get('diffrax', float('nan')):.3g} | {ratio:.2f} | "
              f"{error['now']:.1e} / {error.get('diffrax', float('nan')):.1e} | {os.getloadavg()[0]:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=SYSTEMS, default="lorenz63")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-10, help="tolerance of the ODE solvers")
    parser.add_argument("--ref-tol", type=float, default=1e-13, help="tolerance of the scipy DOP853 reference")
    parser.add_argument("--scipy-loop", action="store_true", help="also time the (slow) scipy loop")
    parser.add_argument("--fresh-cache", action="store_true", help="compile from an empty inductor cache")
    parser.add_argument("--skip-sde", action="store_true")
    parser.add_argument("--memory", action="store_true",
                        help="only compare simulate's memory estimate with the measured peak (n = 256, 4,096, 16,384)")
    parser.add_argument("--default-call", action="store_true",
                        help="only time the default wb.simulate(system, n=n) against diffrax at --sizes")
    parser.add_argument("--sizes", default="16,64,256,4096", help="trajectory counts of --default-call")
    parser.add_argument("--before", default=None,
                        help="with --default-call: a source tree of an earlier workbench to time beside (git archive)")
    parser.add_argument("--ops", action="store_true",
                        help="only count torch operations per eager solver step of the default call (use --n 16)")
    add_cores_option(parser)
    args = parser.parse_args()
    if args.memory:
        memory_table(args.system)
        return
    if args.default_call:
        print(f"pinned to CPU(s) {CORES}")
        torch.set_num_threads(1)
        default_call_table(args.system, [int(v) for v in args.sizes.split(",")], args.reps, args.ref_tol, args.before)
        return
    if args.ops:
        torch.set_num_threads(1)
        count_operations(args.system, args.n)
        return
    print(f"pinned to CPU(s) {CORES}")
    torch.set_num_threads(1)
    times = np.linspace(0.0, 20.0, 2001)
    early = times <= 2.0
    system = args.system
    x0 = wb.simulate(system, n=args.n, times=[0.0], seed=0, split=None).state.values[:, 0]
    reference = scipy_loop(x0, times[: early.sum()], args.ref_tol, system)
    tol = args.tol
    ours = lambda compile: lambda: wb.simulate(  # noqa: E731
        system, n=args.n, times=times, x0=x0, rtol=tol, atol=tol, split=None, compile=compile).state.values
    methods: dict[str, Callable[[], np.ndarray]] = {
        f"workbench.simulate dop853, eager (tol {tol:g})": ours(False),
        f"workbench.simulate dop853, compiled (tol {tol:g})": ours(True),
        f"torchdiffeq dopri8 batched, max-norm (tol {tol:g})": lambda: torchdiffeq_batched(x0, times, tol, system),
    }
    diffrax_run = diffrax_solver(times, tol, system)
    if diffrax_run is not None:
        methods[f"diffrax Dopri8 vmap, jit (tol {tol:g})"] = lambda: diffrax_run(x0)
    if args.scipy_loop:
        methods[f"scipy DOP853 loop (tol {tol:g})"] = lambda: scipy_loop(x0, times, tol, system)
    results = measure(methods, args.reps)
    errors = {name: float(np.abs(r["out"][:, early] - reference).max()) for name, r in results.items()}
    # the ratio column is against the eager call, the default below COMPILE_MIN_WORK
    table(f"{args.n} {system} trajectories, {len(times)} samples on [0, 20]", results, errors,
          list(methods)[0])
    batch_independence(x0, times[early], reference, tol, system)
    if args.skip_sde:
        return

    t_sde = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    dt = 0.01
    sde = {
        "workbench.simulate ornstein_uhlenbeck, euler": lambda: wb.simulate(
            "ornstein_uhlenbeck", n=args.n * 16, times=t_sde.numpy(), scheme="euler", sde_dt=dt,
            split=None, params={"theta": 1.0, "sigma": 0.5, "mu": 0.0}, x0=np.zeros((args.n * 16, 1))).state.values,
        "torchsde.sdeint direct, euler": lambda: torchsde_direct(args.n * 16, t_sde, dt, 0),
    }
    results = measure(sde, args.reps)
    table(f"{args.n * 16} Ornstein-Uhlenbeck paths, 1,001 samples, dt {dt}", results, {}, next(iter(sde)))


if __name__ == "__main__":
    main()
