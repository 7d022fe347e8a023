"""Multi-label classification: indicator targets and per-label thresholds.

Each label is judged on its own: after the query, every label's ``"word: yes"`` and
``"word: no"`` are scored as branches of the label trie, so the query's tokens are
computed once and the cost grows with the labels' tokens, not with labels x query
(:meth:`~skllm_fewshot._engine.PromptScorer.label_proba`). A label is predicted when
its probability reaches its threshold.

This module owns the target side: what an indicator ``y`` is (:func:`is_indicator`,
:func:`check_indicator`), the per-label thresholds (:func:`tune_thresholds`) and the
decision (:func:`decide`). The multi-label heads that produce the probabilities,
``MultiLabelPromptHead`` and ``MultiLabelFeatureHead``, live with the other heads in
:mod:`skllm_fewshot._heads`, which imports this module (never the other way round).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.multiclass import type_of_target

__all__ = ["check_indicator", "decide", "fixed_thresholds", "is_indicator", "tune_thresholds"]

# Rows per label, with and without it, before a threshold is tuned on the training rows.
MIN_ROWS_TO_TUNE = 5


def is_indicator(y: Any) -> bool:
    """Whether ``y`` is a multi-label 0/1 indicator matrix (numpy, sparse or a DataFrame)."""
    if y is None or isinstance(y, (str, bytes)):
        return False
    if hasattr(y, "columns") and getattr(y, "ndim", 1) == 2:
        y = y.to_numpy()
    try:
        return type_of_target(y) == "multilabel-indicator"
    except (ValueError, TypeError):
        return False


def check_indicator(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """The label names and the indicator of a multi-label target.

    A DataFrame's column names are the labels; an unnamed matrix's are ``0..n-1``.

    Returns
    -------
    names : ndarray of shape (n_labels,)
    indicator : ndarray of shape (n_samples, n_labels), int

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._multilabel import check_indicator
    >>> names, Y = check_indicator(np.array([[1, 0], [1, 1]]))
    >>> names.tolist(), Y.tolist()
    ([0, 1], [[1, 0], [1, 1]])
    """
    if hasattr(y, "columns"):
        names, values = np.asarray(list(y.columns)), y.to_numpy()
    else:
        values = y.toarray() if hasattr(y, "toarray") else np.asarray(y)
        names = np.arange(values.shape[1])
    indicator = values.astype(int)
    if not np.isin(indicator, (0, 1)).all():
        raise ValueError("A multi-label y must hold only 0 and 1 (label absent or present).")
    never = [n for n, column in zip(names, indicator.T) if not column.any()]
    if never:
        raise ValueError(
            f"The labels {[n.item() if hasattr(n, 'item') else n for n in never]} are never present in y; "
            "each label needs at least one row that has it. Drop those columns."
        )
    return names, indicator


def fixed_thresholds(threshold: Any, n_labels: int) -> np.ndarray:
    """Per-label thresholds of a head fitted on the rows it would tune on: not tuned.

    Its probabilities on the rows it was fitted on are too sure to tune on, so
    ``"auto"`` is 0.5 for every label; a number is that number.

    Parameters
    ----------
    threshold : "auto" or float
    n_labels : int

    Returns
    -------
    ndarray of shape (n_labels,)

    Examples
    --------
    >>> from skllm_fewshot._multilabel import fixed_thresholds
    >>> fixed_thresholds("auto", 2), fixed_thresholds(0.3, 1)
    (array([0.5, 0.5]), array([0.3]))
    """
    return np.full(n_labels, 0.5 if threshold == "auto" else float(threshold))


def tune_thresholds(proba: np.ndarray, Y: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the threshold with the best F1 on these rows (``default`` when too few).

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._multilabel import tune_thresholds
    >>> p = np.linspace(0, 1, 20)[:, None]
    >>> tune_thresholds(p, (p > 0.3).astype(int)).round(2).tolist()
    [0.29]
    """
    out = np.full(Y.shape[1], default)
    for j in range(Y.shape[1]):
        positives = int(Y[:, j].sum())
        if positives < MIN_ROWS_TO_TUNE or len(Y) - positives < MIN_ROWS_TO_TUNE:
            continue
        order = np.sort(np.unique(proba[:, j]))
        # Midpoints between the seen probabilities: every distinct decision.
        candidates = (order[1:] + order[:-1]) / 2 if len(order) > 1 else order
        f1 = [_f1(Y[:, j], proba[:, j] >= t) for t in candidates]
        out[j] = candidates[int(np.argmax(f1))]
    return out


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float(np.sum(truth & predicted))
    return 2 * tp / max(1.0, float(truth.sum() + predicted.sum()))


def decide(proba: np.ndarray, thresholds: np.ndarray, at_least_one: bool) -> np.ndarray:
    """The indicator of predicted labels; with ``at_least_one``, the likeliest when none passes."""
    out = (proba >= thresholds).astype(int)
    if at_least_one:
        empty = ~out.any(axis=1)
        out[empty, np.argmax(proba[empty] - thresholds, axis=1)] = 1
    return out
