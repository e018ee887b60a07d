"""The facts the catalog declares hold on the trajectories we generate; its errors behave like the engine's."""
import ast
import importlib.metadata
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch

import systems.errors
import workbench as wb
from workbench import errors as wb_errors
from workbench.learners import get_learner

INVARIANTS = [(name, quantity) for name in wb.systems() for quantity in wb.system(name).invariants]


@pytest.mark.parametrize("name, quantity", INVARIANTS)
def test_every_declared_invariant_holds_on_sample_paths(name, quantity):
    """ODE truth conserves it to the solver tolerance; SDE paths to rounding, whatever the noise.

    SDE invariants in the catalog are linear (S + I + R): a scheme whose step combines drift and
    diffusion evaluations (Euler-Maruyama, SRK) keeps them exactly, whereas torchsde's scalar-noise
    Milstein adds J^T g instead of J g and drifted S + I + R by up to 1.5e-2.
    """
    s = wb.system(name)
    t_end = min(s.t_end, 40.0)
    ds = wb.simulate(name, n=8, t_end=t_end, seed=3, split=None,
                     **({"params": {"sigma": s.params["sigma"].high}} if s.kind == "sde" else {}))
    p = {k: torch.tensor(v, dtype=torch.float64) for k, v in s.defaults.items()}
    values = s.invariants[quantity](torch.from_numpy(ds.state.values), p).numpy()
    drift = np.abs(values - values[:, :1]) / np.maximum(1.0, np.abs(values[:, :1]))
    tolerance = 1e-12 if s.kind == "sde" else 1e-7
    assert drift.max() < tolerance, f"{name}: relative drift of {quantity} {drift.max():.2e} ({ds.attrs['integrator']})"


@pytest.mark.parametrize("name", ["henon_heiles", "double_pendulum"])
def test_mixed_hamiltonian_systems_are_flagged_chaotic_and_say_the_regime_depends_on_energy(name):
    # Orbits from their own samplers include chaotic ones (positive finite-time exponents up to 0.13
    # and 1.26), so "non-chaotic" was wrong; one exponent would be wrong too.
    facts = wb.system(name).facts
    assert facts["chaotic"] is True and facts["regime"].startswith("energy-dependent")
    assert "max_lyapunov_exponent" not in facts


# --- errors: one family for the catalog and the engine ---------------------------------------------

def test_catalog_and_learner_errors_are_caught_by_the_builtin_classes_alike():
    with pytest.raises(KeyError, match="unknown system 'lorenz_63'; did you mean lorenz63"):
        wb.system("lorenz_63")
    with pytest.raises(KeyError, match="has no parameter 'r'"):
        wb.simulate("lorenz63", n=1, params={"r": 28.0})
    with pytest.raises(KeyError, match="has no structural option"):
        wb.system("lorenz63", dim=5)
    with pytest.raises(KeyError, match="unknown learner"):
        get_learner("neural_ode")
    with pytest.raises(ValueError, match="outside its valid range"):
        wb.simulate("lorenz63", n=1, params={"rho": 1e9})
    with pytest.raises(ValueError, match="dim >= 4"):
        wb.system("lorenz96", dim=2)
    assert wb_errors.UnknownNameError is systems.errors.UnknownNameError
    assert wb_errors.BadParameterError is systems.errors.BadParameterError


def test_the_catalog_imports_no_engine():
    code = "import sys, systems; assert 'workbench' not in sys.modules, 'systems imported the engine'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_version_has_one_home_that_no_module_reaches_through_the_package_root():
    root = pathlib.Path(wb.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(alias.name == "__version__" for alias in node.names):
                assert node.module in ("_version", "workbench._version"), f"{path} imports __version__ from the root"
    assert wb.__version__ == wb.data.schema.version() == importlib.metadata.version("dynamics-workbench")


def test_solver_errors_carry_the_failing_trajectory_as_an_attribute():
    blow_up = wb.System(name="blow_up", kind="ode", state_names=("x",), drift=lambda t, x, p: x ** 2,
                        params={}, x0_low=(0.5,), x0_high=(0.5,), t_end=3.0, dt=0.1, reference="x' = x^2",
                        equations=r"\dot x = x^2")
    x0 = np.array([[0.1], [0.2], [1.0], [0.1]])            # only trajectory 2 blows up (at t = 1)
    with pytest.raises(wb_errors.DivergenceError) as caught:
        wb.simulate(blow_up, n=4, x0=x0, split=None)
    assert caught.value.row == 2
    assert "trajectory 2" in str(caught.value)


# --- defaults a scientist relies on ----------------------------------------------------------------

@pytest.mark.parametrize("n, expected", [(16, (12, 2, 2)), (32, (26, 3, 3)), (100, (80, 10, 10)), (10, (8, 1, 1))])
def test_the_default_split_is_the_requested_fractions_and_the_file_says_what_was_done(n, expected):
    # 0.8/0.1/0.1 rounded (halves up), at least one val and one test trajectory (issue 21: 6 of 16 trained)
    ds = wb.simulate("harmonic_oscillator", n=n, t_end=0.2, dt=0.1)
    counts = tuple(int((ds["split"] == label).sum()) for label in ("train", "val", "test"))
    assert counts == expected
    stored = json.loads(ds.attrs["split"])
    assert [round(stored[k] * n) for k in ("train", "val", "test")] == list(expected)
    explicit = wb.simulate("harmonic_oscillator", n=n, t_end=0.2, dt=0.1, split=(0.8, 0.1, 0.1))
    assert int((explicit["split"] == "test").sum()) == max(1, int(0.1 * n + 0.5))
