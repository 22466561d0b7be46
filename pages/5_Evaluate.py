"""Evaluate: ROC / PR curves, score histograms, metrics against the paper, extreme images."""
import numpy as np
import streamlit as st

from ocvis.errors import OcvisError
from ocvis.papers import paper_value
from ocvis.ui.common import sidebar, user_errors
from ocvis.ui.figures import groups_unbalanced, pr_figure, roc_figure, score_histogram
from ocvis.ui.images import grid
from ocvis.ui.runs import arrays, finished_runs, run_label, run_picker, run_task
from ocvis.ui.evaluate import (task_of, paper_class_of, num, metrics_table,
                               metrics_of_score, per_class_table, score_help, score_sets,
                               scores_csv,
                               short_name, curves_of)

st.set_page_config(page_title="ocvis · Evaluate", layout="wide")
st.title("Evaluate")
runs = finished_runs()
if not runs:
    sidebar()
    st.info("No finished run yet: train one on the **Train** page, then come back here.")
    st.stop()

c_run, c_score = st.columns([3, 1])
with c_run:
    run = run_picker("Run", "eval_run", runs)
sidebar(run)
rid = run["id"]
with user_errors():
    a = arrays(rid)
missing = [k for k in ("test_scores", "y_test") if k not in a]
if missing:
    st.error(f"Run `{rid}` has no stored {', '.join(missing)}: it cannot be evaluated.")
    st.stop()
sets = score_sets(run, a)
score_name = c_score.selectbox("Score", list(sets), key="eval_score",
                               disabled=len(sets) < 2,
                               help="a run may store several scores (one per detector, or "
                                    "the method's own); the first is the primary one")
scores = sets.get(score_name, next(iter(sets.values())))
if len(sets) > 1 and (about := score_help(run.get("method"), score_name)):
    c_score.caption(about)
y = np.asarray(a["y_test"]).astype(int)
task_cfg = task_of(run)
unsupervised = task_cfg.get("protocol") == "unsupervised"
names = ("inlier", "outlier") if unsupervised else ("normal", "abnormal")
with user_errors():
    mt = metrics_of_score(run, score_name, scores, a)
threshold = num(mt.get("threshold"))
if unsupervised:
    st.caption("Unsupervised protocol: evaluated transductively, on the same contaminated set "
               "the method was trained on (labels never seen during training).")
if mt.get("message"):
    st.warning(mt["message"])
info = run.get("info") if isinstance(run.get("info"), dict) else {}
det = info.get("detector") if isinstance(info.get("detector"), dict) else {}
if det and not det.get("converged", True):
    st.warning(f"The {det.get('detector', 'detector')} fit of this run is not trustworthy: "
               f"{det.get('problem')}.")
elif det.get("train_outlier_fraction") is not None:
    st.caption(f"OC-SVM: {100 * det['train_outlier_fraction']:.1f} % of the training points "
               f"outside the boundary (nu = {100 * det.get('nu', 0):.0f} %), "
               f"{det.get('n_iter')} solver iterations, tol {det.get('tol', 0):.1e}.")
div = info.get("divergence")
if div:
    st.error(f"Training of this run did not converge ({div}): its scores mean little.")

# --------------------------------------------------------------------------- curves
others = [r for r in runs if r["id"] != rid]
by_id = {r["id"]: r for r in others}
compare = st.multiselect("Compare with", list(by_id), key="eval_compare",
                         format_func=lambda i: run_label(by_id[i]),
                         help="Draw the curves of other finished runs on the same axes.")
curve_sets: dict[str, dict] = {}
for r in [run] + [by_id[i] for i in compare if i in by_id]:
    c = curves_of(r, scores, mt) if r is run else curves_of(r)
    if c is None:
        st.caption(f"No curves for {short_name(r)}: its test set holds a single label.")
    else:
        curve_sets[short_name(r)] = c
if curve_sets:
    c1, c2 = st.columns(2)
    c1.plotly_chart(roc_figure(curve_sets), width="stretch", key="eval-roc")
    c2.plotly_chart(pr_figure(curve_sets, base_rate=float(y.mean())), width="stretch",
                    key="eval-pr")

st.subheader("Scores")
share = st.toggle("Each group as % of its images", key="eval_hist_share",
                  value=groups_unbalanced(y),
                  help="counts hide the smaller group when one is much larger (one-class "
                       "CIFAR-10: 1,000 normal against 9,000 abnormal test images)")
st.plotly_chart(score_histogram(scores, y, threshold, names=names, share=share),
                width="stretch", key="eval-hist")
if threshold is not None:
    where = ("the validation part (20 % of the test set); balanced accuracy is measured on the "
             "other 80 %") if mt.get("threshold_on") == "validation" else "all test samples"
    st.caption(f"Images scoring at or below the threshold {threshold:.4g} are flagged "
               f"{names[1]}. The threshold maximises balanced accuracy on {where}.")

# --------------------------------------------------------------------------- metrics
normal_class = paper_class_of(run, a)
dataset = task_cfg.get("dataset", "")
left, right = st.columns([2, 3])
with left:
    st.subheader("Metrics")
    table = metrics_table(run, normal_class, mt, score_name)
    st.dataframe(table, hide_index=True, width="stretch", key="eval-metrics",
                 placeholder="–",
                 column_config={c: st.column_config.NumberColumn(format="%.1f")
                                for c in table.columns if c != "metric"})
    if normal_class is None:
        st.caption("Paper values are shown for one-class runs with a single normal class, "
                   "named scenarios and the unsupervised protocol.")
    elif paper_value(run.get("method", ""), dataset, normal_class, "auroc",
                     task_cfg.get("protocol", "one-class"), score_name) is None:
        mean = paper_value(run.get("method", ""), dataset, "mean", "auroc",
                           task_cfg.get("protocol", "one-class"), score_name)
        if mean is not None:
            st.caption(f"The paper reports only the mean over {dataset}'s classes for "
                       f"{run.get('method')} ({score_name}): AUROC {mean:.1f}.")
        else:
            where = str(normal_class)
            if where.startswith("mean@outlier_ratio="):  # an unsupervised run's key
                where = f"(mean over classes) at {where.split('=', 1)[1]} outliers"
            st.caption(f"The papers report no value for {run.get('method')}'s score "
                       f"`{score_name}` on {dataset} {where}.")
with right:
    st.subheader("Per normal class")
    pc = per_class_table(runs, dataset, run.get("method", ""), run.get("preset", ""),
                         score=score_name, like=run)
    if pc.empty:
        st.caption("No run with a single normal class for this dataset, method and "
                   "setting.")
    else:
        st.dataframe(pc, hide_index=True, width="stretch", key="eval-per-class",
                     placeholder="–",
                     column_config={c: st.column_config.NumberColumn(format="%.1f")
                                    for c in ("AUROC ours", "AUROC paper", "BACC ours",
                                              "BACC paper")})
        st.caption(f"Finished {run.get('method')} runs on {dataset} with this run's "
                   f"setting (preset `{run.get('preset')}`, protocol, training-set size and "
                   f"options; only the seed may differ), score `{score_name}`, mean over "
                   "seeds.")

# --------------------------------------------------------------------------- images
st.subheader("Most anomalous and most normal test images")
c1, c2 = st.columns([1, 2])
k = c1.slider("Images per group", 5, 40, 10, step=5, key="eval_k")
pools = {"all": "all test images", "normal": f"{names[0]} only", "abnormal": f"{names[1]} only"}
pool = c2.radio("Among", list(pools), format_func=pools.get, horizontal=True, key="eval_pool",
                help=f"'{names[0]} only' shows the {names[0]} images that look most anomalous "
                     f"(false alarms); '{names[1]} only' the {names[1]} images that look most "
                     "normal (misses).")
try:
    task = run_task(rid)
except OcvisError as exc:
    task = None
    st.warning(f"The test images cannot be rebuilt: {exc}")
if task is not None and len(task.x_test) != len(scores):
    st.warning(f"The rebuilt test set has {len(task.x_test)} images but the run stored "
               f"{len(scores)} scores: images are not shown.")
    task = None
if task is not None:
    idx = np.arange(len(scores)) if pool == "all" else np.flatnonzero(y == (pool == "abnormal"))
    order = idx[np.argsort(scores[idx], kind="stable")]
    classes = a.get("test_classes")

    def caption(ix: np.ndarray) -> str:
        def one(i: int) -> str:
            cls = task.class_names[int(classes[i])] if classes is not None else "?"
            return f"{cls} ({scores[i]:.3g})"
        return ("Normality score in brackets, reading order: "
                + ", ".join(one(int(i)) for i in ix))

    g1, g2 = st.columns(2)
    for col, title, ix in ((g1, "Most anomalous", order[:k].copy()),
                           (g2, "Most normal", order[::-1][:k].copy())):
        col.markdown(f"**{title}** · true class and normality score")
        if len(ix):
            col.image(grid(task.x_test[ix], ncols=10, scale=2), caption=caption(ix))
        else:
            col.caption("No image in this group.")

# --------------------------------------------------------------------------- export
st.download_button("Download per-sample scores (CSV)", scores_csv(a, threshold, scores, sets),
                   file_name=f"{rid}-scores.csv", mime="text/csv", key="eval_csv",
                   on_click="ignore",
                   help="index, class, label (1 = abnormal), normality score, anomaly score "
                        "(= −normality), validation flag")
