"""Metrics against independent references: closed forms, scipy, and hand-computed numpy."""
import tracemalloc

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from workbench.evaluation import metrics as wm
from workbench.data.schema import make_dataset
from workbench.errors import BadParameterError


def dataset(state, times=None, mask=None, time_units="s"):
    """A schema dataset around ``state`` ((sample,) trajectory, time, variable)."""
    state = np.asarray(state, dtype=float)
    times = np.arange(state.shape[-2], dtype=float) if times is None else times
    names = [f"x{i}" for i in range(state.shape[-1])]
    return make_dataset(state, times, names, time_units=time_units, mask=mask)


def array(state, times=None):
    """``state`` as a bare DataArray with the coordinates of :func:`dataset` (it may hold NaN predictions)."""
    state = np.asarray(state, dtype=float)
    dims = ("sample", "trajectory", "time", "variable")[-state.ndim:]
    times = np.arange(state.shape[-2], dtype=float) if times is None else times
    coords = {"trajectory": np.arange(state.shape[-3]), "time": times,
              "variable": [f"x{i}" for i in range(state.shape[-1])]}
    return xr.DataArray(state, dims=dims, coords=coords)


def gaussian_crps(mu, s, y):
    """CRPS of N(mu, s^2) at y (Gneiting & Raftery 2007, eq. 21)."""
    z = (y - mu) / s
    return s * (z * (2 * scipy.stats.norm.cdf(z) - 1) + 2 * scipy.stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


# --- CRPS and energy score -------------------------------------------------------------------------

def test_crps_of_large_gaussian_ensemble_matches_closed_form():
    rng = np.random.default_rng(0)
    members, trajectories = 2000, 20
    mu, s = np.array([0.0, 3.0]), np.array([1.0, 0.5])
    z = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    y = mu + s * z[:, None]                                          # (time, variable)
    truth = np.broadcast_to(y, (trajectories, *y.shape))
    pred = mu + s * rng.standard_normal((members, trajectories, *y.shape))
    score = wm.crps(dataset(pred), dataset(truth))
    assert score.dims == ("time", "variable")
    np.testing.assert_allclose(score.values, gaussian_crps(mu, s, y), rtol=0.03)


@pytest.mark.parametrize("members, y, unfair, fair", [
    # [0, 1] at 0: mean|X-y| = 1/2, sum_ij |Xi-Xj| = 2 -> 1/2 - 2/8 and 1/2 - 2/4
    ([0.0, 1.0], 0.0, 0.25, 0.0),
    # [0, 1, 3] at 2: mean|X-y| = 4/3, sum_ij |Xi-Xj| = 12 -> 4/3 - 12/18 and 4/3 - 12/12
    ([3.0, 0.0, 1.0], 2.0, 2 / 3, 1 / 3),
])
def test_crps_fair_and_unfair_on_hand_computed_ensembles(members, y, unfair, fair):
    pred = np.asarray(members).reshape(-1, 1, 1, 1)
    truth = np.full((1, 1, 1), y)
    assert float(wm.crps(dataset(pred), dataset(truth), fair=False)[0, 0]) == pytest.approx(unfair, abs=1e-15)
    assert float(wm.crps(dataset(pred), dataset(truth), fair=True)[0, 0]) == pytest.approx(fair, abs=1e-15)


@pytest.mark.parametrize("fair", [True, False])
def test_energy_score_in_one_dimension_equals_crps(fair):
    rng = np.random.default_rng(1)
    pred, truth = dataset(rng.normal(size=(7, 4, 5, 1))), dataset(rng.normal(size=(4, 5, 1)))
    es = wm.energy_score(pred, truth, fair=fair)
    assert es.dims == ("time",)
    np.testing.assert_allclose(es.values, wm.crps(pred, truth, fair=fair).isel(variable=0).values, rtol=1e-12)


def test_energy_score_matches_brute_force_pairs():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 3, 4, 3)), rng.normal(size=(3, 4, 3))
    m = x.shape[0]
    accuracy = np.linalg.norm(x - y, axis=-1).mean(0)
    pairs = sum(np.linalg.norm(x[i] - x[j], axis=-1) for i in range(m) for j in range(m) if i != j)
    reference = (accuracy - pairs / (2 * m * (m - 1))).mean(0)
    np.testing.assert_allclose(wm.energy_score(dataset(x), dataset(y)).values, reference, rtol=1e-12)


def test_fair_scores_refuse_a_single_member():
    with pytest.raises(BadParameterError, match="n_samples>=2"):
        wm.crps(dataset(np.zeros((1, 2, 3, 1))), dataset(np.zeros((2, 3, 1))))


# --- intervals -------------------------------------------------------------------------------------

def test_coverage_of_samples_from_the_true_distribution_is_nominal():
    rng = np.random.default_rng(3)
    members, trajectories, times, variables = 200, 100, 20, 2
    mu = 3 * rng.normal(size=(trajectories, 1, variables))
    s = np.exp(0.3 * rng.normal(size=(trajectories, 1, variables)))
    truth = dataset(mu + s * rng.normal(size=(trajectories, times, variables)))
    pred = dataset(mu + s * rng.normal(size=(members, trajectories, times, variables)))

    assert float(wm.coverage(pred, truth, 0.9, over="all")) == pytest.approx(0.9, abs=0.02)
    assert float(wm.coverage(pred, truth, 0.5, over="all")) == pytest.approx(0.5, abs=0.02)
    shifted = pred.assign(state=pred.state + 10 * s)
    assert float(wm.coverage(shifted, truth, 0.9, over="all")) < 0.01
    true_width = 2 * scipy.stats.norm.ppf(0.95) * s.mean()
    assert float(wm.interval_width(pred, 0.9, over="all")) == pytest.approx(true_width, rel=0.03)

    scores = wm.interval_scores(pred, truth)
    assert set(scores.data_vars) == {"coverage_50", "width_50", "coverage_90", "width_90"}
    assert scores["coverage_90"].dims == ("time",)
    xr.testing.assert_allclose(scores["coverage_90"], wm.coverage(pred, truth, 0.9))
    xr.testing.assert_allclose(scores["width_50"], wm.interval_width(pred, 0.5))


@pytest.mark.parametrize("members, points", [(8, 20_000), (32, 20_000), (1000, 2_000)])
def test_coverage_of_a_finite_calibrated_ensemble_is_nominal(members, points):
    # Truth and members are independent draws from the same (skewed) distribution, so an unbiased
    # coverage has mean `level` and standard error at most sqrt(level (1 - level) / points). Linear
    # sample quantiles cover about (M - 1)/(M + 1) of the level: 0.849 at 90% for M = 32.
    rng = np.random.default_rng(30 + members)
    trajectories = points // 10
    scale = np.exp(rng.normal(size=(trajectories, 1, 1)))
    truth = dataset(scale * rng.gamma(2.0, size=(trajectories, 10, 1)))
    pred = dataset(scale * rng.gamma(2.0, size=(members, trajectories, 10, 1)))
    scores = wm.interval_scores(pred, truth)
    for level in (0.5, 0.9):
        standard_error = np.sqrt(level * (1 - level) / points)
        observed = float(wm.coverage(pred, truth, level, over="all"))
        assert observed == pytest.approx(level, abs=4 * standard_error)
        assert float(scores[f"coverage_{_tag(level)}"].mean()) == pytest.approx(observed, rel=1e-12)


def _tag(level):
    return f"{100 * level:g}"


def rank_coverage(members, y, level):
    """Reference: the share of y's randomised-PIT range [b, b + e + 1] / (M + 1) inside the central interval."""
    m = len(members)
    below, equal = np.sum(members < y), np.sum(members == y)
    lo, hi = (1 - level) / 2 * (m + 1), (1 + level) / 2 * (m + 1)
    start, stop = below, below + equal + 1
    return max(0.0, min(stop, hi) - max(start, lo)) / (stop - start)


def test_coverage_and_width_match_numpy_and_ignore_unobserved_samples():
    rng = np.random.default_rng(4)
    x, y = np.round(rng.normal(size=(9, 3, 4, 2)), 1), np.round(rng.normal(size=(3, 4, 2)), 1)   # ties
    mask = np.ones((3, 4), dtype=bool)
    mask[0, 1] = mask[2, 3] = False
    y_stored = np.where(mask[..., None], y, 1e6)          # garbage where unobserved must not count
    inside = np.array([[[rank_coverage(x[:, i, j, k], y[i, j, k], 0.9) for k in range(2)] for j in range(4)]
                       for i in range(3)])
    observed = np.broadcast_to(mask[..., None], y.shape)
    expected = (inside * observed).sum((0, 2)) / observed.sum((0, 2))
    np.testing.assert_allclose(wm.coverage(dataset(x), dataset(y_stored, mask=mask)).values, expected)
    lo, hi = np.quantile(x, 0.05, axis=0, method="weibull"), np.quantile(x, 0.95, axis=0, method="weibull")
    np.testing.assert_allclose(wm.interval_width(dataset(x)).values, (hi - lo).mean((0, 2)))


def test_coverage_of_a_diverged_ensemble_is_undefined_not_a_miss():
    x, y = np.zeros((4, 1, 2, 1)), np.zeros((1, 2, 1))
    x[2, 0, 1, 0] = np.nan
    np.testing.assert_array_equal(np.isnan(wm.coverage(array(x), dataset(y)).values), [False, True])


# --- valid prediction time -------------------------------------------------------------------------

def vpt_case():
    """Truth and a prediction whose normalized error is the table ``d`` below (crossing 0.4 at known times)."""
    rng = np.random.default_rng(5)
    times = 1.0 + 0.5 * np.arange(8)
    truth = rng.normal(size=(3, 8, 2)) * [1.0, 2.0]
    scale = np.sqrt(np.var(truth[..., 0]) + np.var(truth[..., 1]))
    d = np.stack([0.15 * np.arange(8),                       # exceeds at k=3 -> vpt = 2.5 - 1.0
                  np.where(np.arange(8) == 5, 0.5, 0.3),     # exceeds at k=5 only -> 3.5 - 1.0
                  np.full(8, 0.1)])                          # never -> full horizon 4.5 - 1.0
    pred = truth + d[..., None] * scale * np.array([0.6, 0.8])   # unit direction
    return times, truth, pred[None], d


def test_valid_prediction_time_on_a_constructed_error_curve():
    times, truth, pred, d = vpt_case()
    truth_ds, pred_ds = dataset(truth, times), dataset(pred, times)
    np.testing.assert_allclose(wm.normalized_error(pred_ds, truth_ds).values, d, rtol=1e-12, atol=1e-15)
    out = wm.valid_prediction_time(pred_ds, truth_ds, threshold=0.4, lyapunov=0.9)
    np.testing.assert_array_equal(out["vpt"].values, [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(out["vpt_lyapunov"].values, np.array([1.5, 2.5, 3.5]) * 0.9)
    assert out["vpt"].attrs["units"] == "s" and out["vpt_lyapunov"].attrs["units"] == "1"
    assert "vpt_lyapunov" not in wm.valid_prediction_time(pred_ds, truth_ds)


def test_valid_prediction_time_skips_unobserved_and_stops_at_divergence():
    times, truth, pred, _ = vpt_case()
    mask = np.ones((3, 8), dtype=bool)
    mask[1, 5] = False                      # the only exceedance of trajectory 1 is unobserved
    pred[0, 2, 6] = np.nan                  # trajectory 2 diverges at k=6
    out = wm.valid_prediction_time(array(pred, times), dataset(truth, times, mask=mask))
    np.testing.assert_array_equal(out["vpt"].values, [1.5, 3.5, 3.0])


def test_valid_prediction_time_from_error_counts_from_the_first_time():
    error = xr.DataArray([[0.5, 0.1], [0.1, 0.2]], dims=("trajectory", "time"), coords={"time": [10.0, 10.25]})
    np.testing.assert_array_equal(wm.valid_prediction_time_from_error(error)["vpt"].values, [0.0, 0.25])


# --- Wasserstein-1 ---------------------------------------------------------------------------------

def test_wasserstein1_equals_scipy_for_different_pool_sizes_ties_and_masks():
    rng = np.random.default_rng(6)
    a = np.round(rng.normal(size=(7, 5, 3, 2)), 1)           # rounding makes ties
    b = np.round(rng.normal(0.3, 1.5, size=(13, 3, 2)), 1)
    mask = rng.random((13, 3)) > 0.3
    mask[:, 0] |= ~mask.any(1)                               # datasets refuse never-observed trajectories
    w = wm.wasserstein1(dataset(a), dataset(b, mask=mask))
    assert w.dims == ("time", "variable")
    for t in range(3):
        for v in range(2):
            reference = scipy.stats.wasserstein_distance(a[:, :, t, v].ravel(), b[mask[:, t], t, v])
            assert float(w[t, v]) == pytest.approx(reference, rel=1e-12, abs=1e-14)
    at_one = wm.wasserstein1(dataset(a), dataset(b, mask=mask), times=[1.0])
    xr.testing.assert_allclose(at_one, w.isel(time=[1]))


def test_wasserstein1_memory_is_linear_in_the_pool_sizes():
    # Datasets carry per-trajectory coordinates (trajectory ids, split); pooling must not broadcast them
    # into a pool_a x pool_b array. 8k x 4k float64 would be 256 MB; the sorted merge needs well under 10.
    rng = np.random.default_rng(8)
    a = dataset(rng.normal(size=(8, 1000, 1, 1)))
    b = dataset(rng.normal(0.5, 1.0, size=(4000, 1, 1)))
    tracemalloc.start()
    try:
        w = wm.wasserstein1(a, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10e6
    assert float(w[0, 0]) == pytest.approx(scipy.stats.wasserstein_distance(a.state.values.ravel(),
                                                                            b.state.values.ravel()), rel=1e-12)
    big_a, big_b = rng.normal(size=(2, 100_000, 1, 1)), rng.gamma(2.0, size=(100_000, 1, 1))
    big = wm.wasserstein1(dataset(big_a), dataset(big_b))
    reference = scipy.stats.wasserstein_distance(big_a.ravel(), big_b.ravel())
    assert float(big[0, 0]) == pytest.approx(reference, rel=1e-10)


# --- deterministic errors with a mask --------------------------------------------------------------

def masked_case():
    rng = np.random.default_rng(7)
    truth, pred = rng.normal(size=(3, 4, 2)), rng.normal(size=(2, 3, 4, 2))
    mask = np.ones((3, 4), dtype=bool)
    mask[1, 2] = mask[0, 0] = False
    pred[1, 1, 2] = np.nan                      # a prediction at an unobserved sample does not matter
    return truth, pred, mask


def test_rmse_and_normalized_error_match_numpy_and_ignore_unobserved_samples():
    truth, pred, mask = masked_case()
    mean = pred.mean(0)
    observed = np.broadcast_to(mask[..., None], truth.shape)
    squared = np.where(observed, (mean - truth) ** 2, 0.0)
    rmse = np.sqrt(squared.sum((0, 2)) / observed.sum((0, 2)))
    scale = np.sqrt(sum(np.var(truth[..., v][mask]) for v in range(2)))
    normalized = np.where(mask, np.linalg.norm(np.nan_to_num(mean - truth), axis=-1) / scale, np.nan)

    garbage = np.where(observed, truth, 123.0)
    as_dataset = dataset(garbage, mask=mask)
    as_array = xr.DataArray(np.where(observed, truth, np.nan), dims=("trajectory", "time", "variable"))
    for truth_input in (as_dataset, as_array):
        np.testing.assert_allclose(wm.rmse(array(pred), truth_input).values, rmse, rtol=1e-12)
        np.testing.assert_allclose(wm.normalized_error(array(pred), truth_input).values, normalized, rtol=1e-12)
    result = wm.rmse(array(pred), as_dataset)
    assert result.dims == ("time",) and result.attrs["long_name"]


def test_a_diverged_prediction_is_not_skipped():
    truth, pred, mask = masked_case()
    pred[0, 2, 3, 1] = np.nan                   # observed sample
    assert np.isnan(wm.rmse(array(pred), dataset(truth, mask=mask)).values[3])
    assert wm.normalized_error(array(pred), dataset(truth, mask=mask)).values[2, 3] == np.inf


def test_inputs_with_different_coordinates_are_refused():
    truth, pred, _ = masked_case()
    with pytest.raises(BadParameterError, match="coordinates"):
        wm.rmse(array(pred, times=np.arange(4) + 0.5), dataset(truth))


# --- energies, vector fields, oracle ---------------------------------------------------------------

def test_energy_drift_and_mse_hand_computed():
    h = xr.DataArray([[2.0, 2.5, 1.0], [-4.0, -4.0, -2.0]], dims=("trajectory", "time"))
    np.testing.assert_allclose(wm.energy_drift(h).values, [[0, 0.25, 0.5], [0, 0, 0.5]])
    second = xr.DataArray([[2.0, 3.0, 2.0], [-4.0, -4.0, -4.0]], dims=("trajectory", "time"))
    ensemble = xr.concat([h, second], "sample")                 # drifts [[0, .5, 0], [0, 0, 0]]
    np.testing.assert_allclose(wm.energy_drift(ensemble).values, [[0, 0.375, 0.25], [0, 0, 0.25]])

    pred = xr.DataArray([[1.0, 2.0], [3.0, 4.0]], dims=("trajectory", "time"))
    true = xr.DataArray([[1.0, 1.0], [1.0, np.nan]], dims=("trajectory", "time"))
    assert float(wm.energy_mse(pred, true)) == pytest.approx((0 + 1 + 4) / 3)


def test_vector_field_error_and_oracle_ratio_hand_computed():
    learned, true = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    assert float(wm.vector_field_error(learned, true)) == pytest.approx(1 / np.sqrt(5))
    model = xr.DataArray([2.0, 3.0], dims="time", name="crps", attrs={"long_name": "fair CRPS"})
    ratio = wm.oracle_relative(model, xr.DataArray([1.0, 2.0], dims="time"))
    np.testing.assert_allclose(ratio.values, [2.0, 1.5])
    assert ratio.attrs["units"] == "1" and "true SDE" in ratio.attrs["description"]


def test_oracle_relative_se_matches_the_spread_of_the_ratio_over_replicates():
    # Independent reference: draw many replicate test sets of n trajectories with correlated model and
    # oracle scores; the standard deviation of mean(a)/mean(b) across replicates is the true standard
    # error that the delta-method formula estimates from a single replicate.
    rng = np.random.default_rng(9)
    n, replicates = 12, 4000
    difficulty = rng.gamma(2.0, size=(replicates, n, 1))                   # shared per-trajectory factor
    a = difficulty * rng.gamma(8.0, 0.15, size=(replicates, n, 5))          # model ~20% worse on average
    b = difficulty * rng.gamma(8.0, 0.125, size=(replicates, n, 5))
    ratios = a.mean((1, 2)) / b.mean((1, 2))
    dims = ("trajectory", "time")
    estimates = np.array([float(wm.oracle_relative_se(xr.DataArray(a[r], dims=dims, name="crps"),
                                                      xr.DataArray(b[r], dims=dims)))
                          for r in range(200)])
    assert np.median(estimates) == pytest.approx(ratios.std(), rel=0.15)
    one = wm.oracle_relative_se(xr.DataArray(a[0], dims=dims, name="crps"), xr.DataArray(b[0], dims=dims))
    assert one.name == "crps_oracle_relative_se"


def test_per_trajectory_scores_average_to_the_pooled_ones():
    rng = np.random.default_rng(10)
    pred, truth = dataset(rng.normal(size=(6, 4, 5, 2))), dataset(rng.normal(size=(4, 5, 2)))
    xr.testing.assert_allclose(wm.crps(pred, truth, per_trajectory=True).mean("trajectory"),
                               wm.crps(pred, truth), check_dim_order=False)
    xr.testing.assert_allclose(wm.energy_score(pred, truth, per_trajectory=True).mean("trajectory"),
                               wm.energy_score(pred, truth))


def test_an_ensemble_with_a_path_at_infinity_scores_infinite_not_unobserved():
    # member 2 blew up at t=1 (Model.predict(on_divergence="mark") sets such paths to +inf)
    x = np.array([0.0, 1.0, 2.0, 3.0])[:, None, None, None] * np.ones((4, 1, 2, 2))
    y = np.full((1, 2, 2), 1.5)
    clean = x.copy()
    x[2, 0, 1] = np.inf
    pred, truth = array(x), dataset(y)
    for score in (wm.crps, wm.energy_score):
        blown, finite = score(pred, truth), score(array(clean), truth)
        assert np.isposinf(blown.isel(time=1)).all()
        np.testing.assert_array_equal(blown.isel(time=0).values, finite.isel(time=0).values)
    assert np.isposinf(wm.interval_width(pred, level=0.9).isel(time=1))
    q = wm.sample_quantiles(pred, [0.05, 0.95])
    assert np.isfinite(q.sel(quantile=0.05)).all() and np.isposinf(q.sel(quantile=0.95).isel(time=1)).all()
    assert np.isfinite(wm.coverage(pred, truth, level=0.5).values).all(), "+inf ranks above the truth"
