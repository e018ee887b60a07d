"""Neural-ODE training speed side by side: wb.fit vs a plain torchdiffeq loop vs JAX (equinox + optax, jit).

The same model and step everywhere: MLP 3-128-128-3 (tanh), RK4 with 2 substeps per sample on
windows of 20 samples of Lorenz-63 (standardised), batch 128, Adam lr 1e-3. Steps per second are
measured interleaved over ``--reps`` repetitions of ``--steps`` steps each, after a warm-up (JAX's
compile time is reported separately), one thread per process; the load average is printed.

    python benchmarks/bench_train.py [--steps 100] [--reps 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Optional

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import workbench as wb  # noqa: E402

WINDOW, BATCH, HIDDEN, SUBSTEPS, LR = 20, 128, 128, 2, 1e-3


def windows(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A batch of windows (BATCH, WINDOW, 3) from standardised trajectories (N, T, 3)."""
    traj = rng.integers(0, z.shape[0], BATCH)
    start = rng.integers(0, z.shape[1] - WINDOW + 1, BATCH)
    return z[traj[:, None], start[:, None] + np.arange(WINDOW)]


def torch_loop(z: np.ndarray, dt: float) -> Callable[[int], None]:
    import torchdiffeq

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN),
                              torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 3))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    t = torch.arange(WINDOW, dtype=torch.float32) * dt
    rng = np.random.default_rng(0)

    def run(steps: int) -> None:
        for _ in range(steps):
            batch = torch.from_numpy(windows(z, rng)).float()
            pred = torchdiffeq.odeint(lambda tt, y: net(y), batch[:, 0], t, method="rk4",
                                      options={"step_size": dt / SUBSTEPS}).transpose(0, 1)
            loss = ((pred - batch) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return run


def jax_loop(z: np.ndarray, dt: float) -> Optional[Callable[[int], None]]:
    try:
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        import optax
    except ImportError:
        return None
    model = eqx.nn.MLP(3, 3, HIDDEN, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    opt = optax.adam(LR)
    state = opt.init(eqx.filter(model, eqx.is_array))
    h = dt / SUBSTEPS

    def rollout(m, y0):
        f = jax.vmap(m)

        def sample(y, _):
            def rk4(y, _):
                k1 = f(y); k2 = f(y + h / 2 * k1); k3 = f(y + h / 2 * k2); k4 = f(y + h * k3)  # noqa: E702
                return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None
            y, _ = jax.lax.scan(rk4, y, None, length=SUBSTEPS)
            return y, y
        _, ys = jax.lax.scan(sample, y0, None, length=WINDOW - 1)
        return jnp.concatenate([y0[None], ys]).transpose(1, 0, 2)

    @eqx.filter_jit
    def step(m, s, batch):
        loss, grads = eqx.filter_value_and_grad(lambda mm: jnp.mean((rollout(mm, batch[:, 0]) - batch) ** 2))(m)
        updates, s = opt.update(grads, s)
        return eqx.apply_updates(m, updates), s, loss

    rng = np.random.default_rng(0)
    holder = {"model": model, "state": state}

    def run(steps: int) -> None:
        for _ in range(steps):
            holder["model"], holder["state"], loss = step(holder["model"], holder["state"],
                                                          jnp.asarray(windows(z, rng), dtype=jnp.float32))
        loss.block_until_ready()
    return run


def workbench_fit(ds, steps: int) -> float:
    """Seconds per optimiser step of wb.fit: the difference of a 2n-step and an n-step run (set-up and
    validation cancel)."""
    options = dict(learner="node", hidden=HIDDEN, depth=2, window=WINDOW, batch_size=BATCH, lr=LR,
                   substeps=SUBSTEPS, curriculum=False, schedule="plateau", patience=10 ** 6, seed=0,
                   progress=False)
    def seconds(n: int) -> float:
        start = time.perf_counter()
        wb.fit(ds, epochs=1, steps_per_epoch=n, **options)
        return time.perf_counter() - start
    return (seconds(2 * steps) - seconds(steps)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = wb.simulate("lorenz63", n=64, t_end=10.0, dt=0.01, seed=0, split=(0.9, 0.1, 0.0))
    train = wb.select_split(ds, "train")["state"].values
    z = ((train - train.mean((0, 1))) / train.std((0, 1))).astype(np.float32)
    loops = {"plain torchdiffeq loop": torch_loop(z, 0.01)}
    jax_run = jax_loop(z, 0.01)
    if jax_run is not None:
        start = time.perf_counter()
        jax_run(1)
        print(f"JAX compile + first step: {time.perf_counter() - start:.1f} s")
        loops["JAX (equinox + optax, jit)"] = jax_run
    rates: dict[str, list[float]] = {"wb.fit (node)": [], **{name: [] for name in loops}}
    for name, run in loops.items():
        run(5)  # warm-up
    for _ in range(args.reps):
        rates["wb.fit (node)"].append(1.0 / workbench_fit(ds, args.steps))
        for name, run in loops.items():
            start = time.perf_counter()
            run(args.steps)
            rates[name].append(args.steps / (time.perf_counter() - start))
    ours = statistics.median(rates["wb.fit (node)"])
    print(f"\nNeural ODE training steps/s (MLP 3-{HIDDEN}-{HIDDEN}-3, RK4 x{SUBSTEPS}, windows of {WINDOW}, "
          f"batch {BATCH}; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())})\n")
    print("| implementation | steps/s min | steps/s median | median / wb.fit |\n|---|---:|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | "
              f"{statistics.median(values) / ours:.2f} |")


if __name__ == "__main__":
    main()
