"""Neural-ODE training side by side: wb.fit vs a plain torchdiffeq loop vs JAX (equinox + optax, jit).

The same model and step everywhere: MLP 3-128-128-3 (tanh) whose output is multiplied by the data's
rate of change (``workbench.training.prepare.characteristic_rate``, 7.2 per unit time here, as wb.fit's
continuous-time learners do), RK4 with 2 substeps per sample on windows of 20 samples of Lorenz-63
(standardised with the training split's statistics), batch 128, Adam lr 3e-3 (wb.fit's default),
gradient-norm clip 1, one thread per process, the process pinned to ``--cores`` CPUs (default 1) so
that every implementation computes on the same cores. Four tables:

* steps per second, interleaved over ``--reps`` repetitions of ``--steps`` steps after a warm-up,
  with the process CPU time per step beside the wall time (on a shared machine the CPU time moves
  less with the load). wb.fit runs twice: a short run, which its ``compile="auto"`` rule leaves
  eager, and a run planned long enough for the rule to compile the training step
  (``workbench.training.config.AUTO_COMPILE_STEPS``), stopped early by its callback;
* compile times: ``torch.compile`` of wb.fit's training step with an empty inductor cache (this
  script points ``TORCHINDUCTOR_CACHE_DIR`` at a new folder) and JAX's ``jit``, each with its
  first step;
* other learners (``--learners``, default the discrete maps ``resnet,rknet,lmnet``): wb.fit steps/s
  eager vs ``compile=True`` on the same data, window, batch and width (no peer implementation);
* time to accuracy: wall time and steps until the window MSE on a fixed held-out set (windows
  tiling each validation trajectory: wb.fit's own validation windows) first
  reaches each of ``--targets`` (1e-2, 3e-3, 1e-3, 3e-4), evaluated every ``--every`` steps in both,
  with the evaluations and the compile time in both clocks (each compiles afresh in the process,
  torch with a warm inductor cache unless ``--skip speed``; the cache is a new folder unless
  ``TORCHINDUCTOR_CACHE_DIR`` names one, so a second run with the same folder measures a machine's
  later runs). The two runs are interleaved epoch by
  epoch (JAX trains in wb.fit's callback, on its own clock), so a machine that slows down slows
  both; each stops at ``--cap`` seconds of its own time and says "not reached".
  Both follow one recipe, step for step, with full windows from the first step: ``--schedule
  cosine`` (default) anneals the learning rate to 1% over ``--total-steps`` planned steps, as wb.fit's
  cosine schedule does over its epochs; ``plateau`` halves it after 4 evaluations without
  improvement (torch's ReduceLROnPlateau rule, re-implemented for optax). wb.fit runs its default
  path (``compile="auto"`` compiles a run this long).

    python benchmarks/bench_train.py [--steps 100] [--reps 3] [--cap 600] [--targets 1e-2,3e-3,1e-3,3e-4] [--every 50]
                                     [--schedule cosine|plateau] [--total-steps 12000]
                                     [--learners resnet,rknet,lmnet] [--skip speed|learners|accuracy]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Optional

from pinning import add_cores_option, pin_from_argv  # noqa: E402

CORES = pin_from_argv()  # before numpy, torch and JAX start threads
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_train_inductor_"))
# a cache folder given by the caller may hold this script's compiled step from an earlier run
CACHE_DIR = os.environ["TORCHINDUCTOR_CACHE_DIR"]
CACHE_WAS_WARM = os.path.isdir(CACHE_DIR) and any(os.scandir(CACHE_DIR))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.training.config import AUTO_COMPILE_STEPS  # noqa: E402
from workbench.training.prepare import EVALUATION_WINDOWS, evaluation_starts, prepare

WINDOW, BATCH, HIDDEN, SUBSTEPS, LR, CLIP, DT = 20, 128, 128, 2, 3e-3, 1.0, 0.01
PLATEAU_PATIENCE, PLATEAU_THRESHOLD = 4, 1e-4  # torch's ReduceLROnPlateau as wb.fit uses it
WB_OPTIONS = dict(learner="node", hidden=HIDDEN, depth=2, window=WINDOW, batch_size=BATCH, lr=LR, clip=CLIP,
                  substeps=SUBSTEPS, curriculum=False, patience=10 ** 6, seed=0, progress=False)
LEARNER_OPTIONS = dict(hidden=HIDDEN, depth=2, window=WINDOW, batch_size=BATCH, lr=LR, clip=CLIP, curriculum=False,
                       seed=0, progress=False)
Run = Callable[[int], None]


def windows(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A batch of windows (BATCH, WINDOW, 3) from standardised trajectories (N, T, 3)."""
    traj = rng.integers(0, z.shape[0], BATCH)
    start = rng.integers(0, z.shape[1] - WINDOW + 1, BATCH)
    return z[traj[:, None], start[:, None] + np.arange(WINDOW)]


def held_out_windows(z: np.ndarray) -> np.ndarray:
    """wb.fit's validation windows: on every trajectory at ``workbench.training.prepare.evaluation_starts``."""
    n_start = z.shape[1] - WINDOW + 1
    starts = evaluation_starts(n_start, WINDOW, EVALUATION_WINDOWS // z.shape[0])
    return np.concatenate([z[:, s:s + WINDOW] for s in starts])


class Schedule:
    """wb.fit's learning rate for the JAX run, epoch by epoch: ``"cosine"`` over ``epochs`` (the
    trainer's formula, read at the start of each epoch) or ``"plateau"`` (torch's ReduceLROnPlateau:
    mode min, relative threshold, no cooldown, read after each evaluation)."""

    def __init__(self, kind: str, epochs: int) -> None:
        self.kind, self.epochs, self.lr = kind, epochs, LR
        self.best, self.bad = math.inf, 0

    def before_epoch(self, epoch: int) -> float:
        if self.kind == "cosine":
            self.lr = LR * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * epoch / max(1, self.epochs - 1))))
        return self.lr

    def after_evaluation(self, value: float) -> None:
        if self.kind != "plateau":
            return
        if value < self.best * (1 - PLATEAU_THRESHOLD):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad > PLATEAU_PATIENCE:
            self.bad, self.lr = 0, self.lr * 0.5


def torch_loop(z: np.ndarray, rate: float) -> Run:
    import torchdiffeq

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 3))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    t = torch.arange(WINDOW, dtype=torch.float32) * DT
    rng = np.random.default_rng(0)

    def run(steps: int) -> None:
        for _ in range(steps):
            batch = torch.from_numpy(windows(z, rng)).float()
            pred = torchdiffeq.odeint(lambda tt, y: rate * net(y), batch[:, 0], t, method="rk4",
                                      options={"step_size": DT / SUBSTEPS}).transpose(0, 1)
            loss = ((pred - batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return run


class JaxTrainer:
    """The same model, solver, loss and recipe in JAX: ``run(steps)`` trains, ``evaluate()`` scores
    the held-out windows, ``set_lr(lr)`` is the schedule's hook."""

    def __init__(self, z: np.ndarray, held_out: np.ndarray, rate: float):
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import optax

        self.jnp = jnp
        model = eqx.nn.MLP(3, 3, HIDDEN, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
        opt = optax.chain(optax.clip_by_global_norm(CLIP), optax.inject_hyperparams(optax.adam)(learning_rate=LR))
        h = DT / SUBSTEPS

        def rollout(m, y0):
            f = lambda y: rate * jax.vmap(m)(y)  # noqa: E731

            def sample(y, _):
                def rk4(y, _):
                    k1 = f(y); k2 = f(y + h / 2 * k1); k3 = f(y + h / 2 * k2); k4 = f(y + h * k3)  # noqa: E702
                    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None
                y, _ = jax.lax.scan(rk4, y, None, length=SUBSTEPS)
                return y, y
            _, ys = jax.lax.scan(sample, y0, None, length=WINDOW - 1)
            return jnp.concatenate([y0[None], ys]).transpose(1, 0, 2)

        def loss(m, batch):
            return jnp.mean((rollout(m, batch[:, 0]) - batch) ** 2)

        @eqx.filter_jit
        def step(m, s, batch):
            value, grads = eqx.filter_value_and_grad(loss)(m, batch)
            updates, s = opt.update(grads, s, eqx.filter(m, eqx.is_array))
            return eqx.apply_updates(m, updates), s, value

        self.step, self.score = step, eqx.filter_jit(loss)
        self.model, self.state = model, opt.init(eqx.filter(model, eqx.is_array))
        self.z, self.held_out = z, jnp.asarray(held_out, dtype=jnp.float32)
        self.rng = np.random.default_rng(0)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            batch = self.jnp.asarray(windows(self.z, self.rng), dtype=self.jnp.float32)
            self.model, self.state, value = self.step(self.model, self.state, batch)
        value.block_until_ready()

    def evaluate(self) -> float:
        return float(self.score(self.model, self.held_out))

    def set_lr(self, lr: float) -> None:
        self.state[1].hyperparams["learning_rate"] = self.jnp.asarray(lr, dtype=self.jnp.float32)


def jax_trainer(z: np.ndarray, held_out: np.ndarray, rate: float) -> Optional[JaxTrainer]:
    try:
        return JaxTrainer(z, held_out, rate)
    except ImportError:
        return None


def wb_fit(ds: Any, steps: int, compiled: bool) -> None:
    """One wb.fit run of ``steps`` optimiser steps; ``compiled`` plans a run long enough for the
    ``compile="auto"`` rule to compile and stops it after its first epoch."""
    epochs = AUTO_COMPILE_STEPS if compiled else 1
    wb.fit(ds, epochs=epochs, steps_per_epoch=steps, callback=lambda record: False, **WB_OPTIONS)


def seconds(run: Callable[[], None]) -> tuple[float, float]:
    """Wall and process CPU seconds of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def speed_table(ds: Any, z: np.ndarray, rate: float, jax: Optional[JaxTrainer], steps: int, reps: int) -> None:
    """Steps/s and CPU ms/step, interleaved; wb.fit's per-step time is the difference of a 2n-step and
    an n-step run, so set-up and validation cancel."""
    def wb_step(compiled: bool) -> Callable[[], tuple[float, float]]:
        def measure() -> tuple[float, float]:
            long = seconds(lambda: wb_fit(ds, 2 * steps, compiled))
            short = seconds(lambda: wb_fit(ds, steps, compiled))
            return (long[0] - short[0]) / steps, (long[1] - short[1]) / steps
        return measure

    def per_step(run: Run) -> Callable[[], tuple[float, float]]:
        def measure() -> tuple[float, float]:
            wall, cpu = seconds(lambda: run(steps))
            return wall / steps, cpu / steps
        return measure

    contenders = {"wb.fit, short run (auto: eager)": wb_step(False),
                  "wb.fit, long run (auto: compiled)": wb_step(True),
                  "plain torchdiffeq loop": per_step(torch_loop(z, rate))}
    if jax is not None:
        contenders["JAX (equinox + optax, jit)"] = per_step(jax.run)
    for measure in contenders.values():  # warm-up
        measure()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, measure in contenders.items():
            results[name].append(measure())
    ours = statistics.median(1 / wall for wall, _ in results["wb.fit, short run (auto: eager)"])
    print(f"\nTraining steps/s (MLP 3-{HIDDEN}-{HIDDEN}-3, RK4 x{SUBSTEPS}, windows of {WINDOW}, batch {BATCH}; "
          f"{reps} interleaved reps of {steps} steps; load average after: {load()})\n")
    print("| implementation | steps/s min | steps/s median | CPU ms/step median | median / wb.fit eager |\n"
          "|---|---:|---:|---:|---:|")
    for name, values in results.items():
        rates = [1 / wall for wall, _ in values]
        print(f"| {name} | {min(rates):.1f} | {statistics.median(rates):.1f} | "
              f"{1e3 * statistics.median(cpu for _, cpu in values):.0f} | {statistics.median(rates) / ours:.2f} |")


def compile_table(ds: Any, jax: Optional[JaxTrainer]) -> None:
    """First-call times: wb.fit's one-step run with the compiled step (empty inductor cache) minus the
    same run eager, and JAX's first (compiling) step minus a later one."""
    wb_fit(ds, 1, False)  # eager warm-up: imports, first-touch allocations
    eager = seconds(lambda: wb_fit(ds, 1, False))[0]
    compiled = seconds(lambda: wb_fit(ds, 1, True))[0]
    print(f"\nCompile time, first call minus a warm one (load average after: {load()})\n")
    print("| what | seconds |\n|---|---:|")
    print(f"| torch.compile of wb.fit's training step, empty inductor cache | {compiled - eager:.1f} |")
    if jax is not None:
        first = seconds(lambda: jax.run(1))[0]
        warm = seconds(lambda: jax.run(1))[0]
        print(f"| JAX jit of the training step | {first - warm:.1f} |")


def learner_table(ds: Any, learners: list[str], steps: int, reps: int) -> None:
    """wb.fit steps/s eager vs compiled (``compile=True``) for other gradient learners on the same
    data, window, batch and width; per-step time from a 2n- minus an n-step run, interleaved."""
    def rate(learner: str, compiled: bool) -> float:
        def run(n: int) -> float:
            fit = lambda: wb.fit(ds, learner, epochs=1, steps_per_epoch=n, compile=compiled,  # noqa: E731
                                 **LEARNER_OPTIONS)
            return seconds(fit)[0]
        return steps / (run(2 * steps) - run(steps))

    for learner in learners:  # warm-up, compiling each learner's step once
        rate(learner, False), rate(learner, True)
    results: dict[tuple[str, bool], list[float]] = {(name, c): [] for name in learners for c in (False, True)}
    for _ in range(reps):
        for key in results:
            results[key].append(rate(*key))
    print(f"\nOther learners, wb.fit steps/s eager vs compiled (hidden {HIDDEN}, windows of {WINDOW}, batch {BATCH}; "
          f"{reps} interleaved reps of {steps} steps; load average after: {load()})\n")
    print("| learner | eager steps/s median | compiled steps/s median | compiled / eager |\n|---|---:|---:|---:|")
    for name in learners:
        eager, compiled = (statistics.median(results[name, c]) for c in (False, True))
        print(f"| {name} | {eager:.1f} | {compiled:.1f} | {compiled / eager:.2f} |")


class Race:
    """One contender in the interleaved time-to-accuracy run: its own clock, steps, best held-out
    MSE and the (seconds, steps) at which it first reached each target."""

    def __init__(self, targets: list[float], cap: float):
        self.targets, self.cap = targets, cap
        self.seconds, self.steps, self.best = 0.0, 0, math.inf
        self.hits: dict[float, tuple[float, int]] = {}

    def record(self, seconds: float, steps: int, value: float) -> None:
        self.seconds, self.steps, self.best = seconds, steps, min(self.best, value)
        for target in self.targets:
            if value <= target and target not in self.hits:
                self.hits[target] = (seconds, steps)

    @property
    def done(self) -> bool:
        return len(self.hits) == len(self.targets) or self.seconds >= self.cap


def time_to_accuracy(ds: Any, z: np.ndarray, held_out: np.ndarray, rate: float, targets: list[float], every: int,
                     cap: float, schedule: str, total_steps: int, cache: str) -> None:
    """Seconds and steps until the held-out window MSE first reaches each of ``targets``, the two
    contenders interleaved every ``every`` steps so both meet the same machine conditions: after each
    wb.fit epoch its callback runs JAX for ``every`` steps. Each clock counts only its own work
    (wb.fit's elapsed time minus the time spent in the callback)."""
    ours, theirs = Race(targets, cap), Race(targets, cap)
    jax = jax_trainer(z, held_out, rate)
    epochs = max(1, total_steps // every)
    lr, in_callback = Schedule(schedule, epochs), 0.0

    def jax_epoch() -> None:
        start = time.perf_counter()
        jax.set_lr(lr.before_epoch(theirs.steps // every))
        jax.run(every)
        value = jax.evaluate()
        theirs.record(theirs.seconds + time.perf_counter() - start, theirs.steps + every, value)
        lr.after_evaluation(value)

    def interleave(record: dict[str, Any]) -> bool:
        nonlocal in_callback
        start = time.perf_counter()
        ours.record(record["elapsed"] - in_callback, record["epoch"] * every, record["val_loss"])
        if jax is not None and not theirs.done and theirs.steps < epochs * every:
            jax_epoch()
        in_callback += time.perf_counter() - start
        return not ours.done

    torch._dynamo.reset()  # wb.fit compiles in its clock, as JAX jits in its own
    wb.fit(ds, epochs=epochs, steps_per_epoch=every, callback=interleave, schedule=schedule,
           compile="auto" if epochs * every >= AUTO_COMPILE_STEPS else True, **WB_OPTIONS)
    while jax is not None and not theirs.done and theirs.steps < epochs * every:
        jax_epoch()
    print(f"\nTime to window MSE on {len(held_out)} held-out windows ({schedule} schedule over {epochs * every} "
          f"steps, evaluated every {every} steps, interleaved epoch by epoch; compile and evaluations included, "
          f"torch compiling with {cache} inductor cache; cap {cap:.0f} s each; load average after: {load()})\n")
    print("| implementation | " + " | ".join(f"MSE <= {t:g}: s (steps)" for t in targets)
          + " | best MSE | ran s (steps) |\n|---|" + "---:|" * (len(targets) + 2))
    rows = [("wb.fit (compiled)", ours)] + ([("JAX (equinox + optax, jit)", theirs)] if jax is not None else [])
    for name, race in rows:
        cells = [f"{race.hits[t][0]:.0f} ({race.hits[t][1]})" if t in race.hits else "not reached" for t in targets]
        print(f"| {name} | " + " | ".join(cells) + f" | {race.best:.2e} | {race.seconds:.0f} ({race.steps}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cap", type=float, default=600.0, help="seconds per time-to-accuracy run")
    parser.add_argument("--targets", default="1e-2,3e-3,1e-3,3e-4", help="window MSE thresholds, comma-separated")
    parser.add_argument("--every", type=int, default=50, help="steps between evaluations")
    parser.add_argument("--schedule", choices=("cosine", "plateau"), default="cosine",
                        help="learning-rate schedule of the time-to-accuracy runs")
    parser.add_argument("--total-steps", type=int, default=12_000,
                        help="planned steps of the time-to-accuracy runs (the cosine schedule's length)")
    add_cores_option(parser)
    parser.add_argument("--learners", default="resnet,rknet,lmnet",
                        help="gradient learners for the eager-vs-compiled table, comma-separated ('' to skip)")
    parser.add_argument("--skip", choices=("speed", "learners", "accuracy"), action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = wb.simulate("lorenz63", n=64, t_end=10.0, dt=DT, seed=0, split=(0.9, 0.1, 0.0))
    train = wb.select_split(ds, "train")["state"].values
    mean, std = train.mean((0, 1)), train.std((0, 1))
    z = ((train - mean) / std).astype(np.float32)
    held_out = held_out_windows(((wb.select_split(ds, "val")["state"].values - mean) / std).astype(np.float32))
    rate = prepare(ds, torch.device("cpu")).rate  # what wb.fit gives its learner
    print(f"load average at start: {load()}; pinned to CPU(s) {CORES}; the data's rate {rate:.3f} per unit time")
    if "speed" not in args.skip:
        jax = jax_trainer(z, held_out, rate)
        compile_table(ds, jax)
        speed_table(ds, z, rate, jax, args.steps, args.reps)
    if "learners" not in args.skip and args.learners:
        learner_table(ds, args.learners.split(","), args.steps, args.reps)
    if "accuracy" not in args.skip:
        targets = sorted((float(t) for t in args.targets.split(",")), reverse=True)
        time_to_accuracy(ds, z, held_out, rate, targets, args.every, args.cap, args.schedule, args.total_steps,
                         "a warm" if CACHE_WAS_WARM or "speed" not in args.skip else "an empty")


if __name__ == "__main__":
    main()
