"""Plotly figures of truth, predictions and their differences (presentation only: the numbers come
from the workbench; here they are only laid out, with axis titles that carry units)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
import xarray as xr
from plotly.subplots import make_subplots

TRUE_COLOR, LEARNED_COLOR = "#1f77b4", "#d62728"
# training curves: three clearly different hues (blue, orange, green), the full-window curve dotted
TRAIN_COLOR, VAL_HORIZON_COLOR, VAL_FULL_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"
BASELINE_COLORS = {"persistence": "#7f7f7f", "climatology": "#9467bd", "ar": "#8c564b"}
PICK_NAME = "click to start here"
ERROR_BAND_NAME = "true ± |learned - true|"
FEW_POINTS = 30  # curves with at most this many points also get markers
LOG_TICK_DIGITS = (1, 2, 5)  # log axes read 1, 2, 5, 10, 20, 50, ... (written out, not as bare digits)


def _drawable(values: np.ndarray) -> np.ndarray:
    """Non-finite values (a path that blew up, marked +inf by the workbench) as NaN: plotly leaves a gap."""
    values = np.asarray(values, dtype=float)
    return np.where(np.isfinite(values), values, np.nan)


def _finite_stretch(*arrays: np.ndarray) -> slice:
    """The leading samples where every array is finite (a blown-up path stays infinite)."""
    finite = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    return slice(0, len(finite) if finite.all() else int(np.argmin(finite)))


def _axis_value(x) -> object:
    """A point on a time axis as Plotly takes it in shapes and annotations: an ISO date string on a
    date axis (numpy dates do not serialise there), else a float."""
    if isinstance(x, str):
        return x
    if np.issubdtype(np.asarray(x).dtype, np.datetime64):
        return str(np.datetime_as_string(np.datetime64(x, "ms")))
    return float(x)


def log_axis(values) -> dict:
    """Plotly axis settings for a log axis over ``values`` with ticks at 1, 2, 5 times the powers of ten
    in their range, each labelled with its full value (``0.02``, ``20``; Plotly's ``dtick="D2"`` labels
    them ``2``, ``5``)."""
    positive = np.asarray([v for v in np.ravel(values) if v is not None], dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    if positive.size == 0:
        return {"type": "log"}
    low, high = np.floor(np.log10(positive.min())), np.ceil(np.log10(positive.max()))
    ticks = [float(f"{d * 10.0 ** k:.12g}") for k in range(int(low), int(high) + 1) for d in LOG_TICK_DIGITS]
    ticks = [t for t in ticks if positive.min() / 2.5 <= t <= positive.max() * 2.5]
    return {"type": "log", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]}


def _lines(count: int) -> str:
    """Plotly ``mode`` for a curve of ``count`` points: markers too while there are few, so that a
    single point (one epoch, one horizon) is visible at all."""
    return "lines+markers" if count <= FEW_POINTS else "lines"


def timeseries(truth: Optional[np.ndarray], pred: Optional[np.ndarray], times: np.ndarray,
               labels: Sequence[str], time_label: str, vpt_at=None, vpt_text: str = "",
               error_band: bool = False) -> go.Figure:
    """One panel per variable: truth (T, D) and prediction (T, D) over ``times`` (numbers or dates).

    Unobserved truth samples (NaN) and blown-up predictions (non-finite) are breaks in the lines, never
    straight lines across. ``error_band`` shades ``true +- |learned - true|`` around the truth: how far
    the prediction is, read from the truth (not a spread around the prediction, which reads as an
    uncertainty it is not). ``vpt_at`` is where the valid prediction time ends on the time axis (a
    number or a date); a dotted line marks it, labelled ``vpt_text``.
    """
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True)
    for i, label in enumerate(labels):
        row = i + 1
        if truth is not None and pred is not None and error_band:
            true_i = _drawable(truth[:, i])
            error = np.abs(_drawable(pred[:, i]) - true_i)
            fig.add_trace(go.Scatter(x=times, y=true_i - error, mode="lines", line={"width": 0}, showlegend=False,
                                     connectgaps=False, hoverinfo="skip", legendgroup="error"), row=row, col=1)
            fig.add_trace(go.Scatter(x=times, y=true_i + error, mode="lines", line={"width": 0}, fill="tonexty",
                                     fillcolor="rgba(214,39,40,0.15)", name=ERROR_BAND_NAME, showlegend=i == 0,
                                     connectgaps=False, hoverinfo="skip", legendgroup="error"), row=row, col=1)
        if truth is not None:
            observed = _drawable(truth[:, i])
            # with gaps, a sample between two missing ones is a point, not a line: markers show it
            fig.add_trace(go.Scatter(x=times, y=observed, name="true", line={"color": TRUE_COLOR},
                                     mode="lines+markers" if np.isnan(observed).any() else "lines",
                                     marker={"size": 4}, connectgaps=False, showlegend=i == 0, legendgroup="true"),
                          row=row, col=1)
        if pred is not None:
            fig.add_trace(go.Scatter(x=times, y=_drawable(pred[:, i]), name="learned", connectgaps=False,
                                     line={"color": LEARNED_COLOR, "dash": "dash"}, showlegend=i == 0,
                                     legendgroup="learned"), row=row, col=1)
        if vpt_at is not None:
            fig.add_vline(x=_axis_value(vpt_at), line={"color": "gray", "dash": "dot"}, row=row, col=1)
        fig.update_yaxes(title_text=label, row=row, col=1)
    if vpt_at is not None:
        fig.add_annotation(x=_axis_value(vpt_at), y=1.02, yref="paper", showarrow=False, font={"color": "gray"},
                           text=f"valid prediction time {vpt_text}")
    fig.update_layout(height=170 * len(labels) + 90, margin={"t": 40, "b": 30}, hovermode="x unified")
    fig.update_xaxes(title_text=time_label, row=len(labels), col=1)
    return fig


def hidden_readout(times: np.ndarray, truth: np.ndarray, readout: np.ndarray, names: Sequence[str],
                   labels: Sequence[str], r2: Sequence[float], time_label: str) -> go.Figure:
    """One panel per hidden variable: its true path (T, H) and its linear read-out (T, H) from a
    latent state, the read-out's test R^2 in its legend entry (``names`` label the traces, ``labels``
    the axes with units)."""
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True)
    for i, (name, label) in enumerate(zip(names, labels)):
        row = i + 1
        fig.add_trace(go.Scatter(x=times, y=_drawable(truth[:, i]), name=f"true {name} (hidden)",
                                 line={"color": TRUE_COLOR}, connectgaps=False), row=row, col=1)
        fig.add_trace(go.Scatter(x=times, y=_drawable(readout[:, i]), connectgaps=False,
                                 name=f"read-out of {name} from the latent state (test R² {r2[i]:.3g})",
                                 line={"color": LEARNED_COLOR, "dash": "dash"}), row=row, col=1)
        fig.update_yaxes(title_text=label, row=row, col=1)
    fig.update_layout(height=170 * len(labels) + 120, margin={"t": 40, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text=time_label, row=len(labels), col=1)
    return fig


# the parts of a universal differential equation's drift: what each trace is and how it is drawn (the
# truth as a wide pale band, so equations that found it show as dots on it rather than hiding it)
UDE_PARTS = (("missing", "true drift minus the known terms", TRUE_COLOR, "solid", 6, 0.35),
             ("learned", "network (learned residual)", LEARNED_COLOR, "dash", 2, 1.0),
             ("discovered", "discovered equations", "#2ca02c", "dot", 3, 1.0),
             ("known", "known terms", "#7f7f7f", "solid", 2, 0.5))


def ude_terms(parts: xr.Dataset, labels: Sequence[str], time_label: str) -> go.Figure:
    """One panel per variable along a trajectory: the known terms, the network's residual, the
    equations discovered for it and, where the truth is known, the part of the true drift the known
    terms miss (:func:`workbench.evaluation.ude_terms`); ``labels`` title the y axes with units."""
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True)
    times = parts["time"].values
    for i, label in enumerate(labels):
        for name, legend, color, dash, width, opacity in UDE_PARTS:
            if name in parts:
                fig.add_trace(go.Scatter(x=times, y=parts[name].values[:, i], name=legend, legendgroup=name,
                                         showlegend=i == 0, line={"color": color, "dash": dash, "width": width},
                                         opacity=opacity), row=i + 1, col=1)
        fig.update_yaxes(title_text=label, row=i + 1, col=1)
    fig.update_layout(height=200 * len(labels) + 120, margin={"t": 40, "b": 30}, hovermode="x unified",
                      legend={"orientation": "h", "y": -0.2})
    fig.update_xaxes(title_text=time_label, row=len(labels), col=1)
    return fig


def phase(truth: Optional[np.ndarray], pred: Optional[np.ndarray], labels: Sequence[str], i: int, j: int,
          k: Optional[int] = None, title: str = "", pick_grid: Optional[tuple[np.ndarray, np.ndarray]] = None
          ) -> go.Figure:
    """Phase portrait of arrays (N, T, D): 2-D (i, j) or 3-D (i, j, k). ``pick_grid`` (xs, ys) adds a
    layer of faint markers at those points that a click can select (lines alone cannot be selected)."""
    fig = go.Figure()
    if pick_grid is not None and k is None:
        gx, gy = np.meshgrid(*pick_grid)
        fig.add_trace(go.Scatter(x=gx.ravel(), y=gy.ravel(), mode="markers", name=PICK_NAME,
                                 marker={"size": 9, "color": "rgba(120,120,120,0.12)"},
                                 hovertemplate=f"{labels[i]} %{{x:.3g}}<br>{labels[j]} %{{y:.3g}}<extra>click to start "
                                               "here</extra>"))
    for label, arr, color, dash in (("true", truth, TRUE_COLOR, "solid"), ("learned", pred, LEARNED_COLOR, "dash")):
        if arr is None:
            continue
        for n, path in enumerate(_drawable(arr)):
            common = {"name": label, "legendgroup": label, "showlegend": n == 0, "mode": "lines",
                      "line": {"color": color, "width": 2 if k is None else 3, "dash": dash}, "opacity": 0.8}
            if k is None:
                fig.add_trace(go.Scatter(x=path[:, i], y=path[:, j], hoverinfo="skip", **common))
            else:
                fig.add_trace(go.Scatter3d(x=path[:, i], y=path[:, j], z=path[:, k], **common))
    if k is None:
        fig.update_layout(xaxis_title=labels[i], yaxis_title=labels[j])
    else:
        fig.update_layout(scene={"xaxis_title": labels[i], "yaxis_title": labels[j], "zaxis_title": labels[k]})
    fig.update_layout(title=title, height=460, margin={"t": 40, "b": 30}, clickmode="event+select")
    return fig


def vector_field(grid: xr.Dataset, which: str, labels: Sequence[str], title: str, color: str,
                 speed_range: Optional[tuple[float, float]] = None) -> go.Figure:
    """Arrows of ``grid[f"{which}_drift"]`` (a :func:`workbench.evaluation.field_on_grid` result) projected on
    the grid's plane, drawn with equal length for readability and coloured by ``speed_{which}``;
    ``speed_range`` fixes the colour scale so two panels can share it."""
    xs, ys = grid["grid_x"].values, grid["grid_y"].values
    gx, gy = np.meshgrid(xs, ys)
    drift = grid[f"{which}_drift"]
    u = drift.sel(variable=grid.attrs["horizontal"]).values
    v = drift.sel(variable=grid.attrs["vertical"]).values
    speed = grid[f"speed_{which}"].values
    length = 0.45 * min(np.ptp(xs) / max(len(xs) - 1, 1), np.ptp(ys) / max(len(ys) - 1, 1))
    un, vn = u / np.maximum(speed, 1e-300) * length, v / np.maximum(speed, 1e-300) * length
    segments_x = np.stack([gx.ravel(), gx.ravel() + un.ravel(), np.full(gx.size, np.nan)], axis=1).ravel()
    segments_y = np.stack([gy.ravel(), gy.ravel() + vn.ravel(), np.full(gy.size, np.nan)], axis=1).ravel()
    fig = go.Figure(go.Scatter(x=segments_x, y=segments_y, mode="lines", line={"color": color, "width": 1.5},
                               name=title, hoverinfo="skip", connectgaps=False))
    fig.add_trace(go.Scatter(x=gx.ravel() + un.ravel(), y=gy.ravel() + vn.ravel(), mode="markers",
                             marker={"color": speed.ravel(), "colorscale": "Viridis", "size": 4,
                                     "cmin": speed_range[0] if speed_range else None,
                                     "cmax": speed_range[1] if speed_range else None,
                                     "colorbar": {"title": "speed in<br>the plane"}},
                             name="speed", hovertemplate="speed %{marker.color:.3g}<extra></extra>"))
    # the grid plus one arrow length, not autoscaled: the true and learned panels then share their axes
    fig.update_layout(title=title, xaxis_title=labels[0], yaxis_title=labels[1], height=420, showlegend=False,
                      margin={"t": 40, "b": 30}, xaxis_range=[xs.min() - length, xs.max() + length],
                      yaxis_range=[ys.min() - length, ys.max() + length])
    return fig


def heatmap(grid: xr.Dataset, labels: Sequence[str], title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(x=grid["grid_x"].values, y=grid["grid_y"].values, z=grid["error"].values,
                               colorscale="Reds", colorbar={"title": "relative<br>error"},
                               hovertemplate="%{z:.3g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=labels[0], yaxis_title=labels[1], height=420, margin={"t": 40, "b": 30})
    return fig


def loss_curve(history: list[dict]) -> go.Figure:
    """Training loss (at the curriculum's horizon), validation loss at that same horizon (comparable
    with it) and validation loss over the full window (what selects the best weights)."""
    rows = [h for h in history if h.get("val_loss") is not None]
    epochs = [h["epoch"] for h in rows]
    fig = go.Figure()
    trained = [h for h in rows if h.get("train_loss") is not None]
    fig.add_trace(go.Scatter(x=[h["epoch"] for h in trained], y=[h["train_loss"] for h in trained],
                             name="training (at the training horizon)", mode=_lines(len(trained)),
                             line={"color": TRAIN_COLOR, "width": 2}))
    if any("val_loss_at_horizon" in h for h in rows):
        at_horizon = [h for h in rows if h.get("val_loss_at_horizon") is not None]
        fig.add_trace(go.Scatter(x=[h["epoch"] for h in at_horizon], y=[h["val_loss_at_horizon"] for h in at_horizon],
                                 name="validation (at the training horizon)", mode=_lines(len(at_horizon)),
                                 line={"color": VAL_HORIZON_COLOR, "width": 2, "dash": "dash"}))
    fig.add_trace(go.Scatter(x=epochs, y=[h["val_loss"] for h in rows], name="validation (full window)",
                             mode=_lines(len(rows)), line={"color": VAL_FULL_COLOR, "width": 2, "dash": "dot"}))
    values = [v for h in rows for v in (h.get("train_loss"), h.get("val_loss"), h.get("val_loss_at_horizon"))
              if v is not None]
    positive = bool(values) and all(v > 0 for v in values)
    fig.update_layout(xaxis_title="epoch", yaxis_title="loss (standardised units)", height=340,
                      margin={"t": 20, "b": 30}, legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(tickformat="d")  # epochs are whole numbers, also when there is only one
    fig.update_yaxes(**log_axis(values)) if positive else fig.update_yaxes(type="linear")
    return fig


def fan_chart(times: np.ndarray, quantiles: np.ndarray, truth_paths: Optional[np.ndarray], label: str,
              time_label: str, truth_name: str = "true paths") -> go.Figure:
    """Median and central 50%/90% bands from ``quantiles`` (5, T) at 5/25/50/75/95%, true paths (K, T) on top."""
    fig = go.Figure()
    for lo, hi, alpha, name in ((quantiles[0], quantiles[4], 0.15, "90% band"),
                                (quantiles[1], quantiles[3], 0.3, "50% band")):
        keep = _finite_stretch(lo, hi)  # a band ends where paths that blew up reach its quantile
        t, lo, hi = times[keep], lo[keep], hi[keep]
        fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[lo, hi[::-1]], fill="toself",
                                 fillcolor=f"rgba(214,39,40,{alpha})", line={"width": 0}, name=name))
    fig.add_trace(go.Scatter(x=times, y=_drawable(quantiles[2]), name="learned median",
                             line={"color": LEARNED_COLOR}))
    if truth_paths is not None:
        for n, path in enumerate(truth_paths):
            fig.add_trace(go.Scatter(x=times, y=_drawable(path), mode="lines", connectgaps=False,
                                     line={"color": TRUE_COLOR, "width": 1},
                                     opacity=0.5, name=truth_name, legendgroup="true", showlegend=n == 0))
    fig.update_layout(xaxis_title=time_label, yaxis_title=label, height=400, margin={"t": 20, "b": 30})
    return fig


def coverage_curve(levels: np.ndarray, observed: np.ndarray, oracle: Optional[np.ndarray]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="ideal", line={"color": "gray", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=levels, y=observed, name="learned", mode="lines+markers", line={"color": LEARNED_COLOR}))
    if oracle is not None:
        fig.add_trace(go.Scatter(x=levels, y=oracle, name="true SDE samples", mode="lines+markers",
                                 line={"color": TRUE_COLOR}))
    fig.update_layout(xaxis_title="nominal level of the central interval [probability]",
                      yaxis_title="observed coverage [fraction]", height=380, margin={"t": 20, "b": 30})
    return fig


def marginals(learned: np.ndarray, truth: np.ndarray, label: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=truth, name="true", histnorm="probability density", opacity=0.6,
                               marker_color=TRUE_COLOR))
    fig.add_trace(go.Histogram(x=learned[np.isfinite(learned)], name="learned", histnorm="probability density",
                               opacity=0.6, marker_color=LEARNED_COLOR))
    fig.update_layout(barmode="overlay", xaxis_title=label, yaxis_title="probability density [1 / unit of x]",
                      height=340, margin={"t": 20, "b": 30})
    return fig


def series(times: np.ndarray, values: np.ndarray, labels: Sequence[str], time_label: str,
           split_at: Sequence[tuple[object, str]] = ()) -> go.Figure:
    """Measured series (T, D), one panel per variable (unobserved samples as NaN are breaks), with
    optional vertical lines marking split starts (numbers or dates on the time axis)."""
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True)
    for i, label in enumerate(labels):
        fig.add_trace(go.Scatter(x=times, y=_drawable(values[:, i]), mode="lines+markers", marker={"size": 3},
                                 connectgaps=False, line={"color": TRUE_COLOR}, name=label, showlegend=False),
                      row=i + 1, col=1)
        fig.update_yaxes(title_text=label, row=i + 1, col=1)
        for x, text in split_at:
            fig.add_vline(x=_axis_value(x), line={"color": "gray", "dash": "dot"}, row=i + 1, col=1)
    for x, text in split_at:
        fig.add_annotation(x=_axis_value(x), y=1.02, yref="paper", text=text, showarrow=False, font={"color": "gray"})
    fig.update_layout(height=180 * len(labels) + 90, margin={"t": 40, "b": 30})
    fig.update_xaxes(title_text=time_label, row=len(labels), col=1)
    return fig


def holdout(times: np.ndarray, observed: np.ndarray, forecast_times: np.ndarray, quantiles: np.ndarray,
            labels: Sequence[str], time_label: str, test_start) -> go.Figure:
    """Observed series (T, D) with the forecast of its held-out tail: ``quantiles`` (3, T', D) at
    5/50/95% (equal rows for a deterministic model), one panel per variable, a line at the test start."""
    fig = make_subplots(rows=len(labels), cols=1, shared_xaxes=True)
    for i, label in enumerate(labels):
        row = i + 1
        if not np.allclose(quantiles[0, :, i], quantiles[2, :, i], equal_nan=True):
            fig.add_trace(go.Scatter(x=np.r_[forecast_times, forecast_times[::-1]],
                                     y=np.r_[quantiles[0, :, i], quantiles[2, ::-1, i]], fill="toself",
                                     fillcolor="rgba(214,39,40,0.15)", line={"width": 0}, name="90% band",
                                     showlegend=i == 0, hoverinfo="skip"), row=row, col=1)
        fig.add_trace(go.Scatter(x=times, y=_drawable(observed[:, i]), name="observed", mode="lines",
                                 connectgaps=False, line={"color": TRUE_COLOR, "width": 1.5}, showlegend=i == 0),
                      row=row, col=1)
        fig.add_trace(go.Scatter(x=forecast_times, y=quantiles[1, :, i], name="forecast from the test start",
                                 line={"color": LEARNED_COLOR, "dash": "dash"}, showlegend=i == 0), row=row, col=1)
        fig.add_vline(x=_axis_value(test_start), line={"color": "gray", "dash": "dot"}, row=row, col=1)
        fig.update_yaxes(title_text=label, row=row, col=1)
    fig.add_annotation(x=_axis_value(test_start), y=1.02, yref="paper", text="test period starts", showarrow=False,
                       font={"color": "gray"})
    fig.update_layout(height=220 * len(labels) + 90, margin={"t": 40, "b": 30}, hovermode="x unified")
    fig.update_xaxes(title_text=time_label, row=len(labels), col=1)
    return fig


def skill_by_horizon(scores, variable: str, label: str, lead_label: str) -> go.Figure:
    """Rolling-origin RMSE by horizon of the model and of every baseline in ``scores`` (an
    ``evaluate(..., mode="rolling")`` result) for one variable."""
    fig = go.Figure()
    lead = scores["lead_time"].values if "lead_time" in scores.coords else scores["horizon"].values
    fig.add_trace(go.Scatter(x=lead, y=scores["rmse"].sel(variable=variable).values, name="learned",
                             mode="lines+markers", line={"color": LEARNED_COLOR, "width": 3}))
    for name in scores.data_vars:
        if name.startswith("rmse_") and not name.startswith("rmse_skill"):
            baseline = name[len("rmse_"):]
            color = next((c for key, c in BASELINE_COLORS.items() if baseline.startswith(key)), "#17becf")
            fig.add_trace(go.Scatter(x=lead, y=scores[name].sel(variable=variable).values,
                                     name="AR(p)" if baseline == "ar" else baseline.replace("_", " "),
                                     mode="lines+markers", line={"color": color, "dash": "dot"}))
    fig.update_layout(xaxis_title=lead_label, yaxis_title=f"RMSE of {label}", height=380, margin={"t": 20, "b": 30})
    fig.update_xaxes(**log_axis(lead))
    return fig


def invariant_density(run: xr.Dataset, variable: str, label: str) -> go.Figure:
    """Learned vs true invariant density of one variable from :func:`workbench.evaluation.long_run`."""
    row = run.sel(variable=variable)
    fig = go.Figure()
    for which, color, dash in (("true", TRUE_COLOR, "solid"), ("learned", LEARNED_COLOR, "dash")):
        fig.add_trace(go.Scatter(x=row["bin_center"].values, y=row[f"density_{which}"].values, name=which,
                                 line={"color": color, "dash": dash, "shape": "hvh"}))
    fig.update_layout(xaxis_title=label, yaxis_title="probability density [1 / unit of the variable]",
                      title="invariant density (long free runs)", height=340, margin={"t": 40, "b": 30})
    return fig


def power_spectra(run: xr.Dataset, variable: str, frequency_label: str) -> go.Figure:
    """Learned vs true Welch power spectra of one variable (log scale) from :func:`workbench.evaluation.long_run`."""
    row = run.sel(variable=variable).isel(frequency=slice(1, None))  # the zero frequency is the mean, not a time scale
    fig = go.Figure()
    for which, color, dash in (("true", TRUE_COLOR, "solid"), ("learned", LEARNED_COLOR, "dash")):
        fig.add_trace(go.Scatter(x=row["frequency"].values, y=row[f"psd_{which}"].values, name=which,
                                 line={"color": color, "dash": dash}))
    fig.update_layout(xaxis_title=frequency_label, yaxis_title="power spectral density", yaxis_type="log",
                      title=f"power spectrum of {variable}", height=340, margin={"t": 40, "b": 30})
    return fig


def profile(curve: xr.DataArray) -> go.Figure:
    """A profile likelihood with its chi-square threshold and the interval where it stays below it."""
    name = curve.attrs["parameter"]
    fig = go.Figure(go.Scatter(x=curve["value"].values, y=curve.values, mode="lines+markers", name="profile"))
    fig.add_hline(y=curve.attrs["threshold"], line_dash="dash",
                  annotation_text=f"{100 * curve.attrs['level']:g}% threshold")
    for bound in ("ci_low", "ci_high"):
        if np.isfinite(curve.attrs[bound]):
            fig.add_vline(x=curve.attrs[bound], line_dash="dot", line_color="grey")
    fig.update_layout(title=f"profile likelihood of {name}", xaxis_title=f"{name} (fixed)",
                      yaxis_title="(SSR - SSR_min) / s² (others re-fitted)", height=340, margin=dict(t=50, b=40))
    return fig
