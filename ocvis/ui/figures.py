"""Plotly figure builders (pure: data in, figure out; testable without a browser)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
LOG_TERMS_HIDDEN = ("l2",)
#: how the loss terms the methods log are named on the chart's axes
TERM_NAMES = {"rec": "reconstruction", "total": "total", "cls": "closeness",
              "disp": "dispersion", "disp1": "dispersion", "disp2": "dispersion",
              "ic": "intra-class", "l2": "L2", "ce": "cross-entropy", "kl": "KL",
              "svdd": "SVDD distance", "contrastive": "contrastive"}
SECOND_AXIS_RATIO = 10.0  # a term this many times smaller or larger than the total moves right


def loss_figure(history: list[dict], height: int = 360, smooth: int = 1) -> go.Figure:
    """One line per (stage, loss term) against the global step; each axis is titled with the
    terms it carries (:data:`TERM_NAMES`); a term whose typical size differs from the total's
    by more than :data:`SECOND_AXIS_RATIO` (an L2 penalty, a dispersion term) is drawn on a
    second axis; negative terms (dispersion) are plotted as they are."""
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

    def size(term: str) -> float:
        v = np.abs([r["losses"][term] for r in history if term in r["losses"]], dtype=float)
        v = v[np.isfinite(v)]
        return float(np.median(v)) if len(v) else 0.0

    # a term whose typical size is far from the total's goes on a second axis (an L2 penalty
    # or a dispersion term next to a reconstruction error) so neither line is flat
    ref = size("total") if "total" in terms else size(terms[0])
    right = {t for t in terms
             if ref > 0 and not (ref / SECOND_AXIS_RATIO <= size(t) <= ref * SECOND_AXIS_RATIO)}
    for ti, term in enumerate(terms):
        for stage in stages:
            sel = [i for i, r in enumerate(history) if r["stage"] == stage and term in r["losses"]]
            if not sel:
                continue
            y = np.array([history[i]["losses"][term] for i in sel], float)
            if smooth > 1 and len(y) > smooth:
                y = np.convolve(y, np.ones(smooth) / smooth, mode="same")
            # SVG lines: a few thousand points redraw faster than WebGL without a GPU
            fig.add_trace(go.Scatter(
                x=steps[sel], y=y, mode="lines", name=f"{term} · {stage}",
                line=dict(color=PALETTE[ti % len(PALETTE)], dash=dash[stage]),
                yaxis="y2" if term in right else "y",
                visible="legendonly" if term in LOG_TERMS_HIDDEN else True))

    def title(ts) -> str:
        return " / ".join(dict.fromkeys(TERM_NAMES.get(t, t) for t in ts))

    for s in stages[1:]:
        first = next(r["global_step"] for r in history if r["stage"] == s)
        fig.add_vline(x=first - 0.5, line=dict(color="#999", dash="dot"),
                      annotation_text=s, annotation_position="top left")
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="step",
                      yaxis_title=title(t for t in terms if t not in right),
                      yaxis2=dict(title=title(t for t in terms if t in right), overlaying="y",
                                  side="right", showgrid=False, visible=bool(right)),
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


GROUP_COLORS = ("#2ca02c", "#ffbf00", "#9e9e9e", "#d62728")  # typical, atypical, test n, test a


def latent_scatter(xy: np.ndarray, group: np.ndarray, score: np.ndarray | None = None,
                   color_by: str = "group", names=None, height: int = 560,
                   title: str = "", values: np.ndarray | None = None,
                   value_label: str = "anomaly", categorical: bool = False,
                   value_names=None) -> go.Figure:
    """WebGL scatter of a 2-D projection in the feature-learning paper's four groups (Fig. 3),
    coloured by anomaly score (``color_by="score"``, ``score`` = normality) or by any
    per-point ``values`` (``color_by="values"``; ``categorical`` for labels such as
    pseudo-labels; ``value_names[v]``, where given, names category ``v`` in the legend, e.g.
    a dataset's class names). ``customdata`` = row index into ``xy`` for selections."""
    from ocvis.projection import GROUP_NAMES

    names = names or GROUP_NAMES
    fig = go.Figure()
    # float32 / int32 halve the base64 payload the browser decodes (14,000 points: 420 ->
    # 230 kB of JSON), which is most of a cached page switch besides drawing
    xy = np.asarray(xy, np.float32)
    rows = np.arange(len(xy), dtype=np.int32)
    if color_by == "score" and score is not None:
        values, value_label, categorical = -np.asarray(score, np.float32), "anomaly", False
        color_by = "values"
    if color_by == "values" and values is not None and categorical:
        for i, v in enumerate(np.unique(values)):
            sel = values == v
            label = f"{value_label} {v}"
            if value_names is not None and str(v).lstrip("-").isdigit() \
                    and 0 <= int(v) < len(value_names) and str(value_names[int(v)]) != str(v):
                label = str(value_names[int(v)])  # "airplane", not "true class 0"
            fig.add_trace(go.Scattergl(
                x=xy[sel, 0], y=xy[sel, 1], mode="markers", customdata=rows[sel],
                name=f"{label} ({int(sel.sum())})",
                marker=dict(size=4, color=PALETTE[i % len(PALETTE)], opacity=0.8),
                hovertemplate=f"{label}<br>row %{{customdata}}<extra></extra>"))
    elif color_by == "values" and values is not None:
        vals = np.asarray(values, np.float32)
        # a few far-out scores (OC-SVM decision values have a long tail) would otherwise
        # take the whole colour range and paint every other point alike: map the 1st-99th
        # percentile to the colours; the hover still shows each point's own value
        lo, hi = np.nanpercentile(vals, [1, 99]) if np.isfinite(vals).any() else (0, 1)
        fig.add_trace(go.Scattergl(
            x=xy[:, 0], y=xy[:, 1], mode="markers", customdata=rows, name="samples",
            marker=dict(size=4, color=vals, colorscale="Viridis", opacity=0.8,
                        cmin=float(lo), cmax=float(max(hi, lo + 1e-12)),
                        colorbar=dict(title=value_label)),
            hovertemplate=f"row %{{customdata}}<br>{value_label} "
                          "%{marker.color:.3f}<extra></extra>"))
    else:
        # the many test abnormal points at the back, atypical (few) on top
        for g in (3, 0, 2, 1):
            sel = group == g
            if not sel.any():
                continue
            fig.add_trace(go.Scattergl(
                x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=f"{names[g]} ({sel.sum()})",
                customdata=rows[sel],
                marker=dict(size=4 if g >= 2 else 5, color=GROUP_COLORS[g],
                            opacity=0.4 if g == 3 else 0.8),
                hovertemplate=f"{names[g]}<br>row %{{customdata}}<extra></extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=title or None,
                      # under the x-axis title, not over it
                      legend=dict(orientation="h", yanchor="top", y=-0.12),
                      dragmode="lasso", xaxis_title="dim 1", yaxis_title="dim 2")
    return fig


# ----------------------------------------------------------------------------- evaluation
def _curve_area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` (``x`` in any monotone order)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    if len(x) < 2:
        return float("nan")
    return float(abs(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0)))


def _pct(v) -> str:
    """``0.9876`` -> ``"98.8"``; missing / NaN -> ``"–"``."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not np.isfinite(v) else f"{100 * v:.1f}"


def roc_figure(curves_by_name: dict[str, dict], height: int = 380) -> go.Figure:
    """ROC curves (abnormal = positive) of several runs, AUROC in the legend, + chance diagonal.

    Each value holds ``fpr`` and ``tpr`` (as :func:`ocvis.metrics.curves`) and optionally
    ``auroc`` (a fraction; computed from the curve when missing).
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (50.0)",
                             line=dict(color="#999", dash="dash", width=1), hoverinfo="skip"))
    for i, (name, c) in enumerate(curves_by_name.items()):
        fpr, tpr = np.asarray(c["fpr"], float), np.asarray(c["tpr"], float)
        auc = c.get("auroc")
        auc = _curve_area(fpr, tpr) if auc is None else auc
        fig.add_trace(go.Scatter(
            x=fpr, y=tpr, mode="lines", name=f"{name} (AUROC {_pct(auc)})",
            line=dict(color=PALETTE[i % len(PALETTE)], width=2, shape="hv"),
            hovertemplate="FPR %{x:.3f}<br>TPR %{y:.3f}<extra>" + str(name) + "</extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="false positive rate (normal flagged)", range=[0, 1]),
                      yaxis=dict(title="true positive rate (abnormal caught)", range=[0, 1.02]),
                      legend=dict(orientation="h", y=-0.2), title="ROC")
    return fig


def pr_figure(curves_by_name: dict[str, dict], base_rate: float | None = None,
              height: int = 380) -> go.Figure:
    """Precision-recall curves with abnormal = positive, AUPR-out in the legend.

    Each value holds ``precision`` and ``recall`` and optionally ``aupr_out`` (a fraction;
    trapezoidal area when missing). ``base_rate`` (share of abnormal test samples) is drawn
    as the chance level.
    """
    fig = go.Figure()
    if base_rate is not None and np.isfinite(base_rate):
        fig.add_trace(go.Scatter(x=[0, 1], y=[base_rate, base_rate], mode="lines",
                                 name=f"chance ({_pct(base_rate)})", hoverinfo="skip",
                                 line=dict(color="#999", dash="dash", width=1)))
    for i, (name, c) in enumerate(curves_by_name.items()):
        rec, prec = np.asarray(c["recall"], float), np.asarray(c["precision"], float)
        ap = c.get("aupr_out")
        ap = _curve_area(rec, prec) if ap is None else ap
        fig.add_trace(go.Scatter(
            x=rec, y=prec, mode="lines", name=f"{name} (AUPR-out {_pct(ap)})",
            line=dict(color=PALETTE[i % len(PALETTE)], width=2, shape="hv"),
            hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra>" + str(name)
                          + "</extra>"))
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="recall (abnormal caught)", range=[0, 1]),
                      yaxis=dict(title="precision (flagged that are abnormal)", range=[0, 1.02]),
                      legend=dict(orientation="h", y=-0.2), title="Precision-recall (abnormal)")
    return fig


def groups_unbalanced(y) -> bool:
    """Whether one group of labels ``y`` (0 / 1) holds over three times the other's images
    (then a histogram draws each group as a share of its own images)."""
    y = np.asarray(y).ravel().astype(bool)
    small, large = sorted((int(y.sum()), int((~y).sum())))
    return small > 0 and large > 3 * small


def score_histogram(scores, y, threshold: float | None = None, *,
                    names: tuple[str, str] = ("normal", "abnormal"), height: int = 340,
                    nbins: int = 60, share: bool | None = None) -> go.Figure:
    """Overlaid histograms of the normality scores of normal (``y == 0``) and abnormal
    (``y == 1``) samples, with the decision threshold (normal if score > threshold).

    ``share``: draw each group as the percentage of that group per bin instead of counts, so
    both shapes are visible when one group is much larger (one-class CIFAR-10: 1,000 normal
    against 9,000 abnormal test images). ``None`` chooses it when the larger group has more
    than three times the images of the smaller one.
    """
    s = np.asarray(scores, float).ravel()
    y = np.asarray(y).ravel().astype(bool)
    n_abn, n_nor = int(y.sum()), int((~y).sum())
    if share is None:
        share = groups_unbalanced(y)
    fig = go.Figure()
    finite = s[np.isfinite(s)]
    # bins over the central 99 % (a few far outliers would squeeze everything into one bar);
    # the outliers are clipped into the first / last bin and the axis title says so
    lo, hi = (float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.5))) \
        if len(finite) else (0.0, 1.0)
    if threshold is not None and np.isfinite(threshold):
        lo, hi = min(lo, float(threshold)), max(hi, float(threshold))
    size = (hi - lo) / nbins if hi > lo else 1.0
    bins = dict(start=lo, end=hi + size, size=size)
    clipped = np.clip(s, lo, hi)
    norm = "percent" if share else ""
    fig.add_histogram(x=clipped[~y], xbins=bins, name=f"{names[0]} ({n_nor})",
                      marker_color="#1f77b4", histnorm=norm)
    fig.add_histogram(x=clipped[y], xbins=bins, name=f"{names[1]} ({n_abn})",
                      marker_color="#d62728", histnorm=norm)
    if threshold is not None and np.isfinite(threshold):
        fig.add_vline(x=float(threshold), line=dict(color="#222", width=2, dash="dash"),
                      annotation_text=f"threshold {float(threshold):.4g}",
                      annotation_position="top")
    fig.update_layout(barmode="overlay", height=height, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="normality score (higher = more normal; the 0.5 % "
                                  "extremes at each end are drawn in the end bins)",
                      yaxis_title="% of its group" if share else "test images",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_traces(opacity=0.6)
    return fig


def metrics_bar(values_by_name: dict[str, dict], metrics: tuple[str, ...] | None = None,
                height: int = 320) -> go.Figure:
    """Grouped bars: one group per metric, one bar per name (e.g. two runs, ours vs paper).

    Values are percentages; missing or NaN values leave a gap.
    """
    if metrics is None:
        metrics = tuple(dict.fromkeys(k for v in values_by_name.values() for k in v))
    fig = go.Figure()
    for i, (name, vals) in enumerate(values_by_name.items()):
        ys = []
        for m in metrics:
            v = vals.get(m)
            try:
                v = float(v)
            except (TypeError, ValueError):
                v = None
            ys.append(v if v is not None and np.isfinite(v) else None)
        fig.add_bar(x=list(metrics), y=ys, name=str(name),
                    marker_color=PALETTE[i % len(PALETTE)],
                    text=[f"{v:.1f}" if v is not None else "" for v in ys],
                    textposition="outside", cliponaxis=False)
    fig.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=40, b=10),
                      yaxis=dict(title="%", range=[0, 105]), legend=dict(orientation="h"))
    return fig
