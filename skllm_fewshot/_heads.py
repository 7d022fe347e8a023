"""Heads: from what the engine computes for each text to class probabilities.

Two kinds, behind one interface (``fit(engine, texts, y)``, ``predict_proba(engine,
texts)``, ``features(engine, texts)``):

- :class:`PromptHead`: the label-token softmax of the prompt, calibrated or not.
  It learns nothing from the labelled rows beyond the prompt's examples.
- :class:`FeatureHead`: a scikit-learn classifier fitted on features of **every**
  labelled row, read under the few-shot prompt at the position that predicts the
  label: hidden states of chosen layers, the label log-likelihoods, or both
  (FADS-ICL, Li et al. 2024; hidden-state probes, Cho et al. 2025). Rows go through
  the prefix cache, so each costs only its own tokens.

:class:`KNNPrompting` (Xu et al. 2023) is a head estimator of its own: nearest
labelled rows by the KL divergence of their label distributions. :class:`ClassMeans`
fits a classifier on one mean row per class, for rows as lopsided as 1 against 3.

For a 0/1 indicator target, :class:`MultiLabelPromptHead` (each label's ``"yes"``
probability, calibrated) and :class:`MultiLabelFeatureHead` (one-vs-rest on the same
features) are the same two kinds per label; their thresholds come from
:mod:`skllm_fewshot._multilabel`, which owns the target side and imports nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from scipy import sparse
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.multiclass import OneVsRestClassifier
from sklearn.utils.extmath import row_norms
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from ._calibration import domain_queries, mean_log_prior
from ._multilabel import fixed_thresholds, tune_thresholds
from ._scoring import softmax
from ._validation import Interval, validate_params

__all__ = [
    "HEAD_FEATURES",
    "ClassMeans",
    "FeatureHead",
    "KNNPrompting",
    "MultiLabelFeatureHead",
    "MultiLabelPromptHead",
    "PromptHead",
    "UnseenClassesHead",
    "feature_names",
    "share_out",
]

HEAD_FEATURES = ("auto", "hidden", "scores", "both")

# The hidden-state layers read by default, as fractions of the model's depth: a
# mean of middle-to-late layers, where the task is more linearly readable than at
# the last layer (measured in docs/accuracy.md).
DEFAULT_DEPTHS = (0.55, 0.65, 0.8)


def resolve_layers(layers: Any, n_layers: int) -> list[int]:
    """The hidden-state layers to read, in transformers' numbering.

    ``"auto"`` is :data:`DEFAULT_DEPTHS` of the model's depth; an int or a list of
    ints are layers (negative: from the end, -1 the final states).

    Examples
    --------
    >>> from skllm_fewshot._heads import resolve_layers
    >>> resolve_layers("auto", 30), resolve_layers(-1, 30)
    ([16, 20, 24], [-1])
    """
    if isinstance(layers, str) and layers == "auto":
        return sorted({max(1, min(n_layers, round(f * n_layers))) for f in DEFAULT_DEPTHS})
    values = [layers] if isinstance(layers, (int, np.integer)) else list(layers)
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"head_layers={layers!r} is not valid; use 'auto', an int or a list of ints.")
    return [int(v) for v in values]


def feature_matrix(scores: np.ndarray, states: np.ndarray, kind: str) -> np.ndarray:
    """One row per text: the mean of the layers' states, the label log-probabilities, or both.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._heads import feature_matrix
    >>> feature_matrix(np.zeros((2, 3)), np.ones((2, 2, 4)), "both").shape
    (2, 7)
    """
    parts = []
    if kind in ("hidden", "both"):
        parts.append(states.mean(axis=1).astype(np.float64))
    if kind in ("scores", "both"):
        # Normalised across the labels: what the prompt predicts, not how long the words are.
        parts.append(np.log(np.maximum(softmax(scores), 1e-300)))
    return np.hstack(parts)


def feature_names(label_words: Sequence[str], hidden_size: int, kind: str) -> list[str]:
    """Names of :func:`feature_matrix`'s columns."""
    hidden = [f"hidden{i}" for i in range(hidden_size)]
    scores = [f"logp_{w}" for w in label_words]
    return {"hidden": hidden, "scores": scores, "both": hidden + scores}[kind]


class PromptHead:
    """The prompt's label-token softmax (``head=None``), calibrated or not.

    ``calibrate=True`` divides by the content-free queries' probabilities
    (contextual calibration); ``"domain"`` by those and the mean probabilities of
    random bags of the training texts' words, averaged in log space
    (:mod:`~skllm_fewshot._calibration`); ``"batch"`` by the mean probabilities of
    the training texts (batch calibration, Zhou et al. 2024). What is learnt from
    the training texts is estimated once at fit, so that no prediction depends on
    the other texts of its batch.
    """

    def __init__(self, calibrate: bool | str, random_state: Any = None) -> None:
        self.calibrate = calibrate
        self.random_state = random_state

    def _uncalibrated(self, engine: Any, texts: Sequence[str]) -> np.ndarray:
        return engine.proba(texts)

    def _content_free(self, engine: Any) -> np.ndarray:
        return engine.content_free_proba()

    def _combined(self, content_free: np.ndarray, domain: np.ndarray) -> np.ndarray:
        return mean_log_prior(content_free, domain)

    def fit(self, engine: Any, texts: Sequence[str], y: np.ndarray) -> PromptHead:
        batch = self.calibrate == "batch" and len(texts) > 0
        self.prior_ = self._uncalibrated(engine, texts).mean(axis=0) if batch else None
        queries = domain_queries(texts, random_state=self.random_state) if self.calibrate == "domain" else []
        self.domain_prior_ = self._uncalibrated(engine, queries).mean(axis=0) if queries else None
        return self

    def prior(self, engine: Any) -> np.ndarray | None:
        """What the probabilities under ``engine``'s prompt are divided by (None: by
        the content-free queries when calibrated, else nothing)."""
        if self.domain_prior_ is not None:
            # Each prompt's own content-free bias, with the domain's measured at fit.
            return self._combined(self._content_free(engine), self.domain_prior_)
        return self.prior_

    def predict_proba(
        self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        return engine.proba(
            texts, calibrate=bool(self.calibrate), prior=self.prior(engine), truncated=truncated
        )


class FeatureHead:
    """A scikit-learn classifier on the engine's features of every labelled row.

    Parameters
    ----------
    estimator : classifier
        Cloned and fitted at :meth:`fit`; ``KNNPrompting`` reads the label scores.
    layers : "auto", int or list of int
        Hidden-state layers (see :func:`resolve_layers`).
    kind : {"auto", "hidden", "scores", "both"}
        Which features; ``"auto"`` is ``"scores"`` for :class:`KNNPrompting` and
        ``"hidden"`` otherwise.
    """

    def __init__(self, estimator: Any, layers: Any = "auto", kind: str = "auto") -> None:
        self.estimator = estimator
        self.layers = layers
        self.kind = (
            ("scores" if isinstance(estimator, KNNPrompting) else "hidden") if kind == "auto" else kind
        )

    def features(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        n_layers = engine.loaded.model.config.get_text_config().num_hidden_layers
        layers = resolve_layers(self.layers, n_layers) if self.kind != "scores" else []
        return feature_matrix(*engine.features(texts, layers, truncated), self.kind)

    def fit(self, engine: Any, texts: Sequence[str], y: np.ndarray) -> FeatureHead:
        features = self.features(engine, texts)
        self.estimator_ = clone(self.estimator)
        try:
            self.estimator_.fit(features, y)
        except ValueError as exc:
            counts = dict(zip(*np.unique(y, return_counts=True)))
            raise ValueError(
                f"The head {type(self.estimator).__name__} could not be fitted on {len(y)} labelled rows "
                f"(per class: {', '.join(f'{c!r}: {n}' for c, n in counts.items())}): {exc} Give it more "
                "labelled rows, a smaller cv, or a head without internal cross-validation (e.g. "
                "LogisticRegression instead of LogisticRegressionCV)."
            ) from exc
        return self

    def predict_proba(
        self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        return self.estimator_.predict_proba(self.features(engine, texts, truncated))


def share_out(prompt_proba: np.ndarray, seen_proba: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Each class without a labelled row keeps the prompt's probability; the classes
    with rows (``seen``) share out the rest as ``seen_proba`` says.

    The prompt reads a class from its name, so it is the one judge of whether a text
    belongs to a class nobody has labelled yet; among the labelled classes, what was
    learnt from the rows decides.

    Parameters
    ----------
    prompt_proba : ndarray of shape (n_texts, n_classes)
    seen_proba : ndarray of shape (n_texts, n_seen)
        Rows sum to 1, over the classes with rows in class order.
    seen : ndarray of bool of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._heads import share_out
    >>> share_out(np.array([[0.5, 0.2, 0.3]]), np.array([[0.9, 0.1]]), np.array([True, False, True]))
    array([[0.72, 0.2 , 0.08]])
    """
    proba = np.array(prompt_proba, dtype=np.float64)
    rest = 1.0 - proba[:, ~seen].sum(axis=1, keepdims=True)
    proba[:, seen] = rest * seen_proba
    return proba


class UnseenClassesHead:
    """A head for the classes with labelled rows, completed by the prompt for the
    classes declared without any (the classifier's ``classes=``): see :func:`share_out`.

    Parameters
    ----------
    head : Head
        Fitted on the labelled rows (skipped while they show a single class, which
        then takes all the labelled classes' share).
    prompt : PromptHead
        The prompt's probabilities over every class.
    seen : ndarray of bool of shape (n_classes,)
    """

    def __init__(self, head: Any, prompt: PromptHead, seen: np.ndarray) -> None:
        self.head = head
        self.prompt = prompt
        self.seen = seen

    def fit(self, engine: Any, texts: Sequence[str], y: np.ndarray) -> UnseenClassesHead:
        self.prompt.fit(engine, texts, y)
        self.head_fitted_ = int(self.seen.sum()) > 1
        if self.head_fitted_:
            self.head.fit(engine, texts, y)
        return self

    def features(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        return self.head.features(engine, texts, truncated)

    def predict_proba(
        self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        prompt = self.prompt.predict_proba(engine, texts, truncated)
        if not self.head_fitted_:
            return share_out(prompt, np.ones((len(prompt), 1)), self.seen)
        proba = np.asarray(self.head.predict_proba(engine, texts), dtype=np.float64)
        if proba.shape[1] == len(self.seen):  # a head that scores every label (fine-tuning)
            proba = proba[:, self.seen]
            proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-300)
        return share_out(prompt, proba, self.seen)


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

    def predict_proba(
        self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        return engine.label_proba(
            texts, calibrate=bool(self.calibrate), prior=self.prior(engine), truncated=truncated
        )


class MultiLabelFeatureHead:
    """One-vs-rest: the head's classifier per label, on the same features of every row."""

    def __init__(self, feature_head: Any, threshold: Any = "auto") -> None:
        self.feature_head = feature_head
        self.threshold = threshold

    def fit(self, engine: Any, texts: Sequence[str], Y: np.ndarray) -> MultiLabelFeatureHead:
        head = self.feature_head
        head.estimator = OneVsRestClassifier(clone(head.estimator))
        head.fit(engine, texts, Y)
        self.thresholds_ = fixed_thresholds(self.threshold, Y.shape[1])
        return self

    def features(self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        return self.feature_head.features(engine, texts, truncated)

    def predict_proba(
        self, engine: Any, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        return self.feature_head.predict_proba(engine, texts, truncated)


class KNNPrompting(ClassifierMixin, BaseEstimator):
    """kNN Prompting (Xu et al., ICLR 2023): nearest labelled rows by KL divergence.

    Each row is a distribution over the labels (the label log-probabilities the
    engine reads under the prompt). A text's class probabilities are the votes of
    its ``n_neighbors`` nearest rows by ``KL(row || text)``, smoothed by ``alpha``.

    Parameters
    ----------
    n_neighbors : int, default=5
    alpha : float, default=0.5
        Added to every class's votes, so that no probability is zero.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot import KNNPrompting
    >>> X = np.log([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]])
    >>> KNNPrompting(n_neighbors=1).fit(X, [0, 0, 1, 1]).predict(np.log([[0.85, 0.15]]))
    array([0])
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, n_neighbors: int = 5, alpha: float = 0.5) -> None:
        self.n_neighbors = n_neighbors
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> KNNPrompting:
        validate_params(self)
        X, y = validate_data(self, X, y)
        self.classes_ = unique_labels(y)
        self.anchors_ = softmax(X)
        self.anchor_classes_ = np.searchsorted(self.classes_, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        query = softmax(X)
        eps = 1e-12
        # KL(anchor || query) for every pair.
        a = self.anchors_[None, :, :]
        divergence = (a * (np.log(a + eps) - np.log(query[:, None, :] + eps))).sum(axis=2)
        # No more neighbours than the smallest class has rows: with one row per class,
        # five neighbours would vote for every class but the farthest.
        k = min(self.n_neighbors, int(np.bincount(self.anchor_classes_).min()))
        nearest = np.argsort(divergence, axis=1, kind="stable")[:, :k]
        votes = np.zeros((len(X), len(self.classes_)))
        np.add.at(votes, (np.arange(len(X))[:, None], self.anchor_classes_[nearest]), 1.0)
        votes += self.alpha
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class ClassMeans(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """``estimator`` fitted on one row per class: the mean of its rows, at the rows' mean length.

    With one row in a class and several in another, a classifier fitted on the rows
    leans to the fuller class twice over: a large-margin boundary passes next to the
    lone row, and a mean of several rows is shorter than one row, so nearer to every
    text that resembles none of them. On SST-2 with 1 row of one class and 2-4 of the
    other, a union fitted on the rows made the prompt's product fall from 0.69 to
    0.54; fitted on the class means at the rows' length, every class counts once and
    stands as far out as the others (docs/accuracy_log.md, "Lopsided rows"). With one
    row per class it is ``estimator`` fitted on the rows.

    Parameters
    ----------
    estimator : classifier
        Fitted on the class means; it gives the probabilities.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    estimator_ : classifier
        Fitted on ``n_classes`` rows, one per class, in ``classes_`` order.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skllm_fewshot._heads import ClassMeans
    >>> X = [[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0]]
    >>> ClassMeans(LogisticRegression()).fit(X, ["a", "a", "a", "b"]).predict([[0.45, 0.55]])
    array(['b'], dtype='<U1')
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # TF-IDF rows: the means are dense, n_classes of them
        return tags

    def fit(self, X: Any, y: Any) -> ClassMeans:
        X, y = validate_data(self, X, y, accept_sparse="csr")
        check_classification_targets(y)
        self.classes_, index = np.unique(y, return_inverse=True)
        members = sparse.csr_matrix((np.ones(len(y)), (index, np.arange(len(y)))))
        means = members @ X / np.bincount(index)[:, None]
        means = means.toarray() if sparse.issparse(means) else np.asarray(means)
        lengths = np.linalg.norm(means, axis=1, keepdims=True)
        means *= row_norms(X).mean() / np.maximum(lengths, 1e-12)
        self.estimator_ = clone(self.estimator).fit(means, self.classes_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return self.estimator_.predict_proba(validate_data(self, X, accept_sparse="csr", reset=False))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
