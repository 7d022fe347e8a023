"""Multi-label classification: indicator targets, per-label heads and thresholds.

Each label is judged on its own: after the query, every label's ``"word: yes"`` and
``"word: no"`` are scored as branches of the label trie, so the query's tokens are
computed once and the cost grows with the labels' tokens, not with labels x query
(:meth:`~skllm_fewshot.engine.PromptScorer.label_proba`). A label is predicted when
its probability reaches its threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.multiclass import type_of_target

from .heads import PromptHead

__all__ = ["MultiLabelFeatureHead", "MultiLabelPromptHead", "check_indicator", "decide", "is_indicator", "tune_thresholds"]

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
    >>> from skllm_fewshot.multilabel import check_indicator
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


def tune_thresholds(proba: np.ndarray, Y: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the threshold with the best F1 on these rows (``default`` when too few).

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot.multilabel import tune_thresholds
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


class MultiLabelPromptHead(PromptHead):
    """Each label's probability of ``"yes"`` under the prompt, calibrated or not."""

    def __init__(self, calibrate: bool | str, threshold: Any = "auto", random_state: Any = None) -> None:
        super().__init__(calibrate, random_state)
        self.threshold = threshold

    def _uncalibrated(self, engine: Any, texts: Sequence[str]) -> np.ndarray:
        return engine.label_proba(texts)

    def _content_free(self, engine: Any) -> np.ndarray:
        return engine.content_free_label_proba()

    def _combined(self, content_free: np.ndarray, domain: np.ndarray) -> np.ndarray:
        # Per label, the mean of the two log-odds of "yes".
        odds = logit(np.clip(content_free, 1e-12, 1 - 1e-12)) + logit(np.clip(domain, 1e-12, 1 - 1e-12))
        return expit(odds / 2)

    def fit(self, engine: Any, texts: Sequence[str], Y: np.ndarray) -> MultiLabelPromptHead:
        super().fit(engine, texts, Y)
        n_labels = len(engine.prompt.label_words)
        if self.threshold != "auto":
            self.thresholds_ = np.full(n_labels, float(self.threshold))
        elif len(texts):
            self.thresholds_ = tune_thresholds(self.predict_proba(engine, texts), Y)
        else:
            self.thresholds_ = np.full(n_labels, 0.5)
        return self

    def predict_proba(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        return engine.label_proba(texts, calibrate=bool(self.calibrate), prior=self.prior(engine), truncated=truncated)


class MultiLabelFeatureHead:
    """One-vs-rest: the head's classifier per label, on the same features of every row."""

    def __init__(self, feature_head: Any, threshold: Any = "auto") -> None:
        self.feature_head = feature_head
        self.threshold = threshold

    def fit(self, engine: Any, texts: Sequence[str], Y: np.ndarray) -> MultiLabelFeatureHead:
        head = self.feature_head
        head.estimator = OneVsRestClassifier(clone(head.estimator))
        head.fit(engine, texts, Y)
        # Probabilities on the rows the head was fitted on are too sure to tune on.
        self.thresholds_ = np.full(Y.shape[1], 0.5 if self.threshold == "auto" else float(self.threshold))
        return self

    def features(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        return self.feature_head.features(engine, texts, truncated)

    def predict_proba(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        return self.feature_head.predict_proba(engine, texts, truncated)
