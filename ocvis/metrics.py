"""Evaluation metrics with abnormal = positive class.

Inputs are *normality* scores (higher = more normal, as ``Method.score_samples``); the
anomaly score is their negative. Choices (ICS feature-learning paper, Sec. 4.1.4 and
footnote 3):

* AUROC, AUPR-in (normal = positive, ranked by normality) and AUPR-out (abnormal = positive,
  ranked by anomaly) use the whole test set.
* Balanced accuracy (eq. 5) uses a threshold chosen on the validation part (the seeded 20 %
  of the test set, ``Task.val_mask``) to maximise balanced accuracy there, and is reported on
  the remaining 80 %. Without a validation mask the threshold is chosen on all samples
  (optimistic; the result says so with ``threshold_on = "all"``).

A test set with a single label gives NaN metrics and a message instead of an exception;
NaN or infinite scores are an error (a detector produced garbage).
"""
from __future__ import annotations

import math

import numpy as np

from ocvis.errors import DataError

METRICS = ("auroc", "aupr_in", "aupr_out", "bacc")


def _check(scores, y) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).ravel()
    if s.shape != y.shape:
        raise DataError(f"{len(s)} scores for {len(y)} labels")
    if len(s) == 0:
        raise DataError("no samples to evaluate")
    bad = ~np.isfinite(s)
    if bad.any():
        raise DataError(f"{int(bad.sum())} of {len(s)} scores are NaN or infinite: the "
                        "detector failed on these features (try another detector or check "
                        "the training loss)")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (normal) or 1 (abnormal)")
    return s, y.astype(np.int64)


def balanced_accuracy(y: np.ndarray, pred_abnormal: np.ndarray) -> float:
    """BACC = (TPR + TNR) / 2 with abnormal positive (paper eq. 5)."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(pred_abnormal).astype(bool)
    if y.all() or (~y).all():
        return math.nan
    tpr = (p & y).sum() / y.sum()
    tnr = (~p & ~y).sum() / (~y).sum()
    return float(0.5 * (tpr + tnr))


def best_threshold(anomaly: np.ndarray, y: np.ndarray) -> float:
    """Anomaly-score threshold maximising balanced accuracy (predict abnormal if >= t)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, anomaly)
    bacc = 0.5 * (tpr + 1.0 - fpr)
    i = int(np.argmax(bacc))
    t = float(thr[i])
    return t if np.isfinite(t) else float(np.max(anomaly)) + 1.0


def evaluate(normality, y, val_mask=None) -> dict:
    """AUROC, AUPR-in, AUPR-out, balanced accuracy (+ threshold) as fractions in [0, 1]."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = _check(normality, y)
    anomaly = -s
    out = {"n": int(len(y)), "n_abnormal": int(y.sum()), "message": ""}
    if y.min() == y.max():
        which = "normal" if y.max() == 0 else "abnormal"
        out.update(auroc=math.nan, aupr_in=math.nan, aupr_out=math.nan, bacc=math.nan,
                   threshold=math.nan, threshold_on="none",
                   message=f"the test set holds only {which} samples: metrics are undefined")
        return out
    out["auroc"] = float(roc_auc_score(y, anomaly))
    out["aupr_in"] = float(average_precision_score(1 - y, s))
    out["aupr_out"] = float(average_precision_score(y, anomaly))
    vm = None if val_mask is None else np.asarray(val_mask, bool).ravel()
    if vm is not None and vm.shape != y.shape:
        raise DataError("validation mask does not match the labels")
    if vm is not None and vm.any() and (~vm).any() and len(np.unique(y[vm])) == 2 \
            and len(np.unique(y[~vm])) == 2:
        t = best_threshold(anomaly[vm], y[vm])
        out["bacc"] = balanced_accuracy(y[~vm], anomaly[~vm] >= t)
        out["threshold_on"] = "validation"
    else:
        t = best_threshold(anomaly, y)
        out["bacc"] = balanced_accuracy(y, anomaly >= t)
        out["threshold_on"] = "all"
    out["threshold"] = -t  # in normality units: normal if score > threshold
    return out


def curves(normality, y) -> dict:
    """ROC and PR (abnormal positive) curves as numpy arrays, for plotting."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    s, y = _check(normality, y)
    if y.min() == y.max():
        raise DataError("curves need both normal and abnormal samples")
    fpr, tpr, _ = roc_curve(y, -s)
    prec, rec, _ = precision_recall_curve(y, -s)
    return {"fpr": fpr, "tpr": tpr, "precision": prec, "recall": rec}


def label_agreement(labels, classes) -> float | None:
    """How far a per-sample grouping a method made without labels (e.g. CLAD's DEC
    pseudo-labels) follows the true classes of the same samples: the normalised mutual
    information (arithmetic mean normalisation, scikit-learn's default), 1 = the same
    partition up to renaming, 0 = independent. ``None`` where the samples hold fewer than two
    true classes (a one-class task has no latent classes to find). Computed after ``fit``, on
    the evaluation side: the true classes never reach a method."""
    from sklearn.metrics import normalized_mutual_info_score

    labels, classes = np.asarray(labels), np.asarray(classes)
    if labels.shape != classes.shape or labels.ndim != 1:
        raise DataError(f"{labels.shape} labels for {classes.shape} classes")
    if len(np.unique(classes)) < 2:
        return None
    return float(normalized_mutual_info_score(classes, labels))


def grouping_agreement(columns: dict, names, classes) -> dict[str, float]:
    """:func:`label_agreement` of each column ``names`` picks from ``columns`` (a method's
    ``grouping_columns``; absent or wrong-length ones skipped), where it is defined."""
    out = {k: label_agreement(columns[k], classes) for k in names
           if k in columns and len(columns[k]) == len(classes)}
    return {k: v for k, v in out.items() if v is not None}
