"""A product of experts: classifiers whose class probabilities are multiplied.

:class:`ProductOfExperts` fits several classifiers on the same rows and predicts the
normalised, weighted geometric mean of their probabilities: a sum of log-probabilities.
It is how a prompt and a classifier trained on the labelled rows combine their
evidence when there are few rows. A classifier that knows nothing (TF-IDF on one row
per class) is close to uniform and leaves the prompt's ranking as it was; one that has
seen a telling n-gram moves it. scikit-learn's ``VotingClassifier(voting="soft")``
takes the arithmetic mean instead, where a flat expert dilutes a confident one, and it
fits its estimators on integer-encoded labels, which a classifier that prompts with
the label words cannot use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils import Bunch
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._validation import check_named_estimators, copy_input_attributes, shared_input_tags, validate_params

__all__ = ["ProductOfExperts"]


class ProductOfExperts(ClassifierMixin, BaseEstimator):
    """Multiply the class probabilities of several classifiers.

    Each estimator is cloned and fitted on the same ``X`` and ``y`` (with the
    original labels, so that a :class:`~skllm_fewshot.FewShotLLMClassifier` keeps its
    label words). The predicted log-probabilities are the weighted sum of the
    estimators' log-probabilities, normalised over the classes.

    Parameters
    ----------
    estimators : list of (str, estimator)
        The experts, each with a name (for nested parameters: ``prompt__calibrate``).
        Each needs ``predict_proba``. An expert can be replaced with ``set_params``.
    weights : array-like of shape (n_estimators,), default=None
        Exponent of each expert's probabilities (non-negative); ``None`` is 1 for each.

    Attributes
    ----------
    estimators_ : list of estimator
        The fitted clones, in order.
    named_estimators_ : Bunch
        The fitted clones by name.
    classes_ : ndarray of shape (n_classes,)
        The class labels, the same for every expert.

    See Also
    --------
    sklearn.ensemble.VotingClassifier : The arithmetic mean of the probabilities.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.naive_bayes import MultinomialNB
    >>> from sklearn.pipeline import make_pipeline
    >>> from skllm_fewshot import ProductOfExperts
    >>> X = ["great film", "awful film", "great plot", "awful plot"]
    >>> y = ["pos", "neg", "pos", "neg"]
    >>> model = ProductOfExperts([
    ...     ("lr", make_pipeline(TfidfVectorizer(), LogisticRegression())),
    ...     ("nb", make_pipeline(TfidfVectorizer(), MultinomialNB())),
    ... ]).fit(X, y)
    >>> model.predict(["a great one"])
    array(['pos'], dtype='<U3')

    With the prompt (a model is needed, so not run here):

    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> model = ProductOfExperts([
    ...     ("prompt", FewShotLLMClassifier(n_examples_per_class=1)),
    ...     ("tfidf", make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)),
    ...                             LogisticRegression(C=10))),
    ... ])
    >>> model.fit(X_train, y_train).predict_proba(X_test)  # doctest: +SKIP
    """

    # The pairs and the weights' length are checked by _validate_experts, which names
    # the estimator that is wrong.
    _parameter_constraints: dict = {"estimators": [list, tuple], "weights": [None, "array-like"]}

    def __init__(self, estimators: Sequence[tuple[str, Any]], *, weights: Any = None) -> None:
        self.estimators = estimators
        self.weights = weights

    def __sklearn_tags__(self):
        return shared_input_tags(super().__sklearn_tags__(), self.estimators)

    def _names(self) -> list[str]:
        try:
            return [name for name, _ in self.estimators]
        except (TypeError, ValueError):  # not (name, estimator) pairs: fit says why
            return []

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=False)
        if deep and self._names():
            for name, estimator in self.estimators:
                params[name] = estimator
                if hasattr(estimator, "get_params"):
                    params.update(
                        {f"{name}__{key}": value for key, value in estimator.get_params(deep=True).items()}
                    )
        return params

    def set_params(self, **params: Any) -> ProductOfExperts:
        # The list first (it may replace experts), then whole experts, then their parameters.
        if "estimators" in params:
            self.estimators = params.pop("estimators")
        names = self._names()
        replaced = {key: params.pop(key) for key in list(params) if key in names}
        if replaced:  # names were found, so self.estimators holds pairs
            self.estimators = [(name, replaced.get(name, estimator)) for name, estimator in self.estimators]
        nested: dict[str, dict[str, Any]] = defaultdict(dict)
        for key in [key for key in params if "__" in key]:
            name, sub = key.split("__", 1)
            if name not in names:
                raise ValueError(
                    f"Invalid parameter {key!r} for {type(self).__name__}: no estimator {name!r}."
                )
            nested[name][sub] = params.pop(key)
        super().set_params(**params)
        for name, estimator in self.estimators if nested else ():
            if name in nested:
                estimator.set_params(**nested[name])
        return self

    def _validate_experts(self) -> np.ndarray:
        names = check_named_estimators(self.estimators, "estimators", reserved=("estimators", "weights"))
        if self.weights is None:
            return np.ones(len(names))
        weights = np.asarray(self.weights, dtype=float)
        if weights.shape != (len(names),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(
                f"weights must be {len(names)} finite non-negative numbers, one per estimator; got {self.weights!r}."
            )
        return weights

    def fit(self, X: Any, y: Any, **fit_params: Any) -> ProductOfExperts:
        """Fit a clone of each expert on ``X`` and ``y``.

        Parameters
        ----------
        X : array-like
            The input every expert takes (texts for a prompt and a TF-IDF pipeline).
        y : array-like of shape (n_samples,)
        **fit_params : dict
            Passed to every expert's ``fit`` (e.g. ``sample_weight``).

        Returns
        -------
        self : ProductOfExperts
        """
        validate_params(self)
        self.weights_ = self._validate_experts()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.estimators_ = [clone(estimator).fit(X, y, **fit_params) for _, estimator in self.estimators]
        self.classes_ = self.estimators_[0].classes_
        for (name, _), fitted in zip(self.estimators, self.estimators_):
            if not np.array_equal(fitted.classes_, self.classes_):
                raise ValueError(
                    f"Estimator {name!r} has classes {list(fitted.classes_)}, the first has {list(self.classes_)}."
                )
        self.named_estimators_ = Bunch(
            **{name: fitted for (name, _), fitted in zip(self.estimators, self.estimators_)}
        )
        return copy_input_attributes(self, self.estimators_[0])

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Normalised weighted sum of the experts' log-probabilities.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        total = 0.0
        for weight, estimator in zip(self.weights_, self.estimators_):
            if weight == 0:
                continue
            # A zero probability stays finite, so that another expert can still outvote it.
            total = total + weight * np.log(np.maximum(estimator.predict_proba(X), np.finfo(float).tiny))
        if np.isscalar(total):  # every weight is 0: no evidence
            return np.full(
                (len(self.estimators_[0].predict_proba(X)), len(self.classes_)), -np.log(len(self.classes_))
            )
        return log_softmax(total, axis=1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Normalised weighted geometric mean of the experts' probabilities.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest product of probabilities.

        Parameters
        ----------
        X : array-like

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # predict_log_proba first: it raises NotFittedError before classes_ is read.
        log_proba = self.predict_log_proba(X)
        return self.classes_[np.argmax(log_proba, axis=1)]
