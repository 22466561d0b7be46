"""Plotly figure builders (pure: data in, figure out; testable without a browser)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
LOG_TERMS_HIDDEN = ("l2",)


def loss_figure(history: list[dict], height: int = 360, smooth: int = 1) -> go.Figure:
    """One line per (stage, loss term) against the global step; negative terms (dispersion)
    are plotted as they are, on a second axis when their scale differs."""
    fig = go.Figure()
    if not history:
        fig.update_layout(height=height, annotations=[dict(text="waiting for the first step…",
                                                           showarrow=False, x=0.5, y=0.5,
                                                           xref="paper", yref="paper")])
        return fig
    steps = np.fromiter((r["global_step"] for r in history), float, len(history))
    stages = []
    for r in history:
        if r["stage"] not in stages:
            stages.append(r["stage"])
    terms: list[str] = []
    for r in history:
        for k in r["losses"]:
            if k not in terms:
                terms.append(k)
    dash = {s: d for s, d in zip(stages, ["solid", "dot", "dash", "dashdot"] * 4)}
    small_terms = {"cls", "disp1", "disp2", "l2"}
    for ti, term in enumerate(terms):
        for stage in stages:
            sel = [i for i, r in enumerate(history) if r["stage"] == stage and term in r["losses"]]
            if not sel:
                continue
            y = np.array([history[i]["losses"][term] for i in sel], float)
            if smooth > 1 and len(y) > smooth:
                y = np.convolve(y, np.ones(smooth) / smooth, mode="same")
            fig.add_trace(go.Scattergl(
                x=steps[sel], y=y, mode="lines", name=f"{term} · {stage}",
                line=dict(color=PALETTE[ti % len(PALETTE)], dash=dash[stage]),
                yaxis="y2" if term in small_terms else "y",
                visible="legendonly" if term in LOG_TERMS_HIDDEN else True))
    for s in stages[1:]:
        first = next(r["global_step"] for r in history if r["stage"] == s)
        fig.add_vline(x=first - 0.5, line=dict(color="#999", dash="dot"),
                      annotation_text=s, annotation_position="top left")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="step", yaxis_title="reconstruction / total",
                      yaxis2=dict(title="closeness / dispersion", overlaying="y", side="right",
                                  showgrid=False),
                      legend=dict(orientation="h", y=-0.2), uirevision="losses")
    return fig


def histogram_with_threshold(values: np.ndarray, threshold: float, *, groups=None,
                             names=("typical", "atypical"), xaxis: str = "SSIM",
                             height: int = 320, nbins: int = 60) -> go.Figure:
    """Histogram of ``values`` (optionally split by a boolean ``groups``) + a threshold line."""
    fig = go.Figure()
    values = np.asarray(values, float)
    lo, hi = float(values.min()), float(values.max())
    size = (hi - lo) / nbins if hi > lo else 1.0
    bins = dict(start=lo, end=hi + size, size=size)
    if groups is None:
        fig.add_histogram(x=values, xbins=bins, name="all", marker_color=PALETTE[0])
    else:
        g = np.asarray(groups, bool)
        fig.add_histogram(x=values[~g], xbins=bins, name=names[0], marker_color="#2ca02c")
        fig.add_histogram(x=values[g], xbins=bins, name=names[1], marker_color="#ffbf00")
    fig.add_vline(x=threshold, line=dict(color="#d62728", width=2),
                  annotation_text=f"threshold {threshold:.3f}")
    fig.update_layout(barmode="overlay", height=height, xaxis_title=xaxis,
                      yaxis_title="images", margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h"))
    fig.update_traces(opacity=0.75)
    return fig
