"""Plotly figures of truth, predictions and their differences (presentation only, no numerics)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TRUE_COLOR, LEARNED_COLOR = "#1f77b4", "#d62728"


def timeseries(truth: Optional[np.ndarray], pred: Optional[np.ndarray], times: np.ndarray,
               names: Sequence[str], vpt: Optional[float] = None, band: Optional[np.ndarray] = None) -> go.Figure:
    """One panel per variable: truth (T, D) and prediction (T, D), optional |error| band and VPT line."""
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=list(names))
    for i, name in enumerate(names):
        row = i + 1
        if pred is not None and band is not None:
            fig.add_trace(go.Scatter(x=np.r_[times, times[::-1]], y=np.r_[pred[:, i] - band[:, i],
                                     (pred[:, i] + band[:, i])[::-1]], fill="toself", line={"width": 0},
                                     fillcolor="rgba(214,39,40,0.15)", name="|error|", showlegend=i == 0,
                                     hoverinfo="skip"), row=row, col=1)
        if truth is not None:
            fig.add_trace(go.Scatter(x=times, y=truth[:, i], name="true", line={"color": TRUE_COLOR},
                                     showlegend=i == 0, legendgroup="true"), row=row, col=1)
        if pred is not None:
            fig.add_trace(go.Scatter(x=times, y=pred[:, i], name="learned", line={"color": LEARNED_COLOR, "dash": "dash"},
                                     showlegend=i == 0, legendgroup="learned"), row=row, col=1)
        if vpt is not None:
            fig.add_vline(x=float(times[0] + vpt), line={"color": "gray", "dash": "dot"}, row=row, col=1)
    if vpt is not None:
        fig.add_annotation(x=float(times[0] + vpt), y=1.02, yref="paper", text=f"valid prediction time {vpt:.2f}",
                           showarrow=False, font={"color": "gray"})
    fig.update_layout(height=170 * len(names) + 80, margin={"t": 40, "b": 30}, hovermode="x unified")
    fig.update_xaxes(title_text="time", row=len(names), col=1)
    return fig


def phase(truth: Optional[np.ndarray], pred: Optional[np.ndarray], names: Sequence[str], i: int, j: int,
          k: Optional[int] = None, title: str = "") -> go.Figure:
    """Phase portrait of arrays (N, T, D): 2-D (i, j) or 3-D (i, j, k)."""
    fig = go.Figure()
    for label, arr, color, dash in (("true", truth, TRUE_COLOR, "solid"), ("learned", pred, LEARNED_COLOR, "dash")):
        if arr is None:
            continue
        for n, path in enumerate(arr):
            common = {"name": label, "legendgroup": label, "showlegend": n == 0, "mode": "lines",
                      "line": {"color": color, "width": 2 if k is None else 3, "dash": dash}, "opacity": 0.8}
            if k is None:
                fig.add_trace(go.Scatter(x=path[:, i], y=path[:, j], **common))
            else:
                fig.add_trace(go.Scatter3d(x=path[:, i], y=path[:, j], z=path[:, k], **common))
    if k is None:
        fig.update_layout(xaxis_title=names[i], yaxis_title=names[j])
    else:
        fig.update_layout(scene={"xaxis_title": names[i], "yaxis_title": names[j], "zaxis_title": names[k]})
    fig.update_layout(title=title, height=460, margin={"t": 40, "b": 30})
    return fig


def vector_field(gx: np.ndarray, gy: np.ndarray, u: np.ndarray, v: np.ndarray, names: Sequence[str],
                 title: str, color: str, speed_range: Optional[tuple[float, float]] = None) -> go.Figure:
    """Arrows of a 2-D field on a grid (u, v of shape (ny, nx)), normalised for readability;
    ``speed_range`` fixes the colour scale so two panels can share it."""
    speed = np.hypot(u, v)
    scale = 0.45 * min(np.ptp(gx[0]) / max(gx.shape[1] - 1, 1), np.ptp(gy[:, 0]) / max(gy.shape[0] - 1, 1))
    un, vn = u / np.maximum(speed, 1e-12) * scale, v / np.maximum(speed, 1e-12) * scale
    xs, ys = [], []
    for x0, y0, du, dv in zip(gx.ravel(), gy.ravel(), un.ravel(), vn.ravel()):
        xs += [x0, x0 + du, None]
        ys += [y0, y0 + dv, None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 1.5}, name=title,
                               hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=gx.ravel() + un.ravel(), y=gy.ravel() + vn.ravel(), mode="markers",
                             marker={"color": speed.ravel(), "colorscale": "Viridis", "size": 4,
                                     "cmin": speed_range[0] if speed_range else None,
                                     "cmax": speed_range[1] if speed_range else None,
                                     "colorbar": {"title": "speed"}}, name="speed", hovertemplate="speed %{marker.color:.3g}"))
    fig.update_layout(title=title, xaxis_title=names[0], yaxis_title=names[1], height=420, showlegend=False,
                      margin={"t": 40, "b": 30})
    return fig


def heatmap(gx: np.ndarray, gy: np.ndarray, values: np.ndarray, names: Sequence[str], title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(x=gx[0], y=gy[:, 0], z=values, colorscale="Reds", colorbar={"title": "rel. error"}))
    fig.update_layout(title=title, xaxis_title=names[0], yaxis_title=names[1], height=420, margin={"t": 40, "b": 30})
    return fig


def loss_curve(history: list[dict]) -> go.Figure:
    epochs = [h["epoch"] for h in history]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=epochs[1:], y=[h["train_loss"] for h in history[1:]], name="train"))
    fig.add_trace(go.Scatter(x=epochs, y=[h["val_loss"] for h in history], name="validation"))
    positive = all((h["val_loss"] or 1) > 0 for h in history)
    fig.update_layout(xaxis_title="epoch", yaxis_title="loss", yaxis_type="log" if positive else "linear",
                      height=320, margin={"t": 20, "b": 30})
    return fig


def fan_chart(times: np.ndarray, samples: np.ndarray, truth_paths: Optional[np.ndarray], name: str) -> go.Figure:
    """Median and central 50%/90% bands of ``samples`` (S, T) with true sample paths (K, T) on top."""
    q = np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    fig = go.Figure()
    for lo, hi, alpha, label in ((q[0], q[4], 0.15, "90% band"), (q[1], q[3], 0.3, "50% band")):
        fig.add_trace(go.Scatter(x=np.r_[times, times[::-1]], y=np.r_[lo, hi[::-1]], fill="toself",
                                 fillcolor=f"rgba(214,39,40,{alpha})", line={"width": 0}, name=label))
    fig.add_trace(go.Scatter(x=times, y=q[2], name="learned median", line={"color": LEARNED_COLOR}))
    if truth_paths is not None:
        for n, path in enumerate(truth_paths):
            fig.add_trace(go.Scatter(x=times, y=path, mode="lines", line={"color": TRUE_COLOR, "width": 1},
                                     opacity=0.5, name="true paths", legendgroup="true", showlegend=n == 0))
    fig.update_layout(xaxis_title="time", yaxis_title=name, height=400, margin={"t": 20, "b": 30})
    return fig


def coverage_curve(levels: np.ndarray, observed: np.ndarray, oracle: Optional[np.ndarray]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], name="ideal", line={"color": "gray", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=levels, y=observed, name="learned", mode="lines+markers", line={"color": LEARNED_COLOR}))
    if oracle is not None:
        fig.add_trace(go.Scatter(x=levels, y=oracle, name="true SDE samples", mode="lines+markers",
                                 line={"color": TRUE_COLOR}))
    fig.update_layout(xaxis_title="nominal level of the central interval", yaxis_title="empirical coverage",
                      height=380, margin={"t": 20, "b": 30})
    return fig


def marginals(learned: np.ndarray, truth: np.ndarray, name: str) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=truth, name="true", histnorm="probability density", opacity=0.6,
                               marker_color=TRUE_COLOR))
    fig.add_trace(go.Histogram(x=learned, name="learned", histnorm="probability density", opacity=0.6,
                               marker_color=LEARNED_COLOR))
    fig.update_layout(barmode="overlay", xaxis_title=name, yaxis_title="density", height=340, margin={"t": 20, "b": 30})
    return fig
