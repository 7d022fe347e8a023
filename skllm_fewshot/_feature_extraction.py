"""The model's features of each text, as a scikit-learn transformer.

:class:`LLMFeatures` fits a :class:`~skllm_fewshot.FewShotLLMClassifier` (its
prompt, label words and examples) and transforms texts into what the classifier's
head would read: hidden states at the label position, label log-probabilities, or
both. It goes into a ``Pipeline`` or a ``FeatureUnion``, e.g. next to a
``TfidfVectorizer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.utils.validation import check_is_fitted

from ._classifier import FewShotLLMClassifier
from ._heads import feature_names
from ._validation import validate_params

__all__ = ["LLMFeatures"]


class LLMFeatures(TransformerMixin, BaseEstimator):
    """Features of texts read by a causal LM under a few-shot prompt.

    Parameters
    ----------
    classifier : FewShotLLMClassifier, default=None
        The prompt and the features: its ``head_layers`` and ``head_features``
        say what is read (``"auto"``: the mean hidden state of middle-to-late
        layers). ``None`` is ``FewShotLLMClassifier()``. Cloned and fitted at
        ``fit``; its parameters are nested (``classifier__head_layers``).

    Attributes
    ----------
    classifier_ : FewShotLLMClassifier
        The fitted clone.
    n_features_out_ : int

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import FeatureUnion, make_pipeline
    >>> from sklearn.preprocessing import Normalizer, StandardScaler
    >>> from skllm_fewshot import LLMFeatures

    Standardised, each row scaled to unit length (as a TF-IDF row is) and weighted
    0.5, the model's block weighs the same against the n-grams whatever the model's
    hidden size; standardised alone, its hundreds of features would drown them (this
    is the balance of the ``union`` measured in ``docs/accuracy.md``):

    >>> union = FeatureUnion(
    ...     [("llm", make_pipeline(LLMFeatures(), StandardScaler(), Normalizer())),
    ...      ("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))],
    ...     transformer_weights={"llm": 0.5},
    ... )
    >>> model = make_pipeline(union, LogisticRegression(C=100))
    >>> model.fit(X_train, y_train).score(X_test, y_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {"classifier": [None, FewShotLLMClassifier]}

    def __init__(self, classifier: Any = None) -> None:
        self.classifier = classifier

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    def fit(self, X: Any, y: Any = None) -> LLMFeatures:
        """Fit the classifier's prompt on labelled texts.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)
        y : array-like of shape (n_samples,)
            The labels: the prompt's examples and label words come from them.

        Returns
        -------
        self : LLMFeatures
        """
        validate_params(self)
        if y is None:
            raise ValueError(
                "LLMFeatures needs y: the prompt's label words and examples come from the labels "
                "(in a Pipeline, fit passes y through)."
            )
        base = FewShotLLMClassifier() if self.classifier is None else self.classifier
        # A head is not needed to read features, and fitting one would cost a pass.
        self.classifier_ = clone(base).set_params(head=None).fit(X, y)
        self.n_features_out_ = self.classifier_.features(np.asarray(X, dtype=object)[:1]).shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The features of each text.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, ``n_features_out_``)
        """
        check_is_fitted(self)
        return self.classifier_.features(X)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``hidden0``, ``hidden1``, ... and ``logp_<label word>`` names.

        Parameters
        ----------
        input_features : None
            Ignored: the input is text.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self)
        clf = self.classifier_
        hidden = clf.engine_.loaded.model.config.get_text_config().hidden_size
        kind = "hidden" if clf.head_features == "auto" else clf.head_features
        return np.asarray(
            [f"llmfeatures_{n}" for n in feature_names(clf.label_words_, hidden, kind)], dtype=object
        )
