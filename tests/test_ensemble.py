"""ProductOfExperts: the experts' probabilities multiplied, as a scikit-learn classifier."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y, WORDS
from scipy.special import softmax
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import VotingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._ensemble import ProductOfExperts

X_NUM, Y_NUM = make_classification(n_samples=60, n_features=5, n_informative=3, n_classes=3, random_state=0)


def numeric_experts(**params):
    return ProductOfExperts([("lr", LogisticRegression()), ("nb", GaussianNB())], **params)


@parametrize_with_checks([numeric_experts(), numeric_experts(weights=[1.0, 0.5])])
def test_sklearn_checks(estimator, check):
    # Every check passes: the input is validated by the experts, as in VotingClassifier.
    check(estimator)


@pytest.mark.parametrize("weights", [None, [1.0, 1.0], [2.0, 0.5], [0.0, 1.0]])
def test_proba_is_the_normalised_weighted_product(weights):
    model = numeric_experts(weights=weights).fit(X_NUM, Y_NUM)
    lr = LogisticRegression().fit(X_NUM, Y_NUM)
    nb = GaussianNB().fit(X_NUM, Y_NUM)
    w = [1.0, 1.0] if weights is None else weights
    expected = softmax(
        w[0] * np.log(lr.predict_proba(X_NUM)) + w[1] * np.log(nb.predict_proba(X_NUM)), axis=1
    )
    np.testing.assert_allclose(model.predict_proba(X_NUM), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(model.predict(X_NUM), model.classes_[expected.argmax(1)])
    np.testing.assert_allclose(model.predict_log_proba(X_NUM), np.log(expected), rtol=1e-8, atol=1e-10)
    if weights == [0.0, 1.0]:  # a zero weight leaves the other expert alone
        np.testing.assert_allclose(model.predict_proba(X_NUM), nb.predict_proba(X_NUM), atol=1e-12)


def test_all_zero_weights_predict_uniform():
    model = numeric_experts(weights=[0, 0]).fit(X_NUM, Y_NUM)
    np.testing.assert_allclose(model.predict_proba(X_NUM[:4]), np.full((4, 3), 1 / 3))


def test_a_zero_probability_does_not_veto():
    # One expert says 0 for the class the other is sure of: the product stays finite.
    class Certain(LogisticRegression):
        def predict_proba(self, X):
            proba = np.zeros((len(X), len(self.classes_)))
            proba[:, 0] = 1.0
            return proba

    model = ProductOfExperts([("sure", Certain()), ("lr", LogisticRegression())]).fit(X_NUM, Y_NUM)
    proba = model.predict_proba(X_NUM)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_nested_parameters_in_a_grid_search():
    model = ProductOfExperts([("lr", LogisticRegression()), ("nb", GaussianNB())])
    assert model.get_params()["lr__C"] == 1.0
    grid = GridSearchCV(model, {"lr__C": [0.01, 1.0], "weights": [[1, 1], [1, 0]]}, cv=3).fit(X_NUM, Y_NUM)
    assert grid.best_estimator_.named_estimators_.lr.C == grid.best_params_["lr__C"]
    # A whole expert can be replaced, and a parameter set with it lands on the new one.
    model.set_params(nb=LogisticRegression(), nb__C=0.5)
    assert isinstance(model.estimators[1][1], LogisticRegression) and model.estimators[1][1].C == 0.5
    with pytest.raises(ValueError, match="no estimator 'svm'"):
        model.set_params(svm__C=1.0)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"estimators": []}, ValueError, "non-empty list"),
        ({"estimators": [LogisticRegression()]}, ValueError, r"\(name, estimator\) pairs"),
        ({"estimators": [("a", LogisticRegression()), ("a", GaussianNB())]}, ValueError, "unique"),
        ({"estimators": [("a__b", LogisticRegression())]}, ValueError, "not valid"),
        ({"estimators": [("svm", LinearSVC())]}, TypeError, "'svm' .*LinearSVC.* has no predict_proba"),
        ({"weights": [1.0]}, ValueError, "2 finite non-negative"),
        ({"weights": [1.0, -1.0]}, ValueError, "2 finite non-negative"),
    ],
)
def test_errors_at_fit(params, error, match):
    model = numeric_experts().set_params(**params)
    with pytest.raises(error, match=match):
        model.fit(X_NUM, Y_NUM)


def test_experts_must_agree_on_the_classes():
    class Reversed(LogisticRegression):
        def fit(self, X, y):
            super().fit(X, y)
            self.classes_ = self.classes_[::-1]
            return self

    with pytest.raises(ValueError, match="'rev' has classes"):
        ProductOfExperts([("lr", LogisticRegression()), ("rev", Reversed())]).fit(X_NUM, Y_NUM)


X_TEXT = SENTIMENT_X * 2
Y_TEXT = SENTIMENT_Y * 2


@pytest.fixture
def prompt_and_tfidf(tiny_model, bpe_tokenizer):
    prompt = FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, label_words=WORDS, random_state=0)
    tfidf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)), LogisticRegression(C=10))
    return ProductOfExperts([("prompt", prompt), ("tfidf", tfidf)])


def test_prompt_times_tfidf_on_texts(prompt_and_tfidf):
    model = clone(prompt_and_tfidf).fit(X_TEXT, Y_TEXT)
    prompt = clone(prompt_and_tfidf.estimators[0][1]).fit(X_TEXT, Y_TEXT)
    tfidf = clone(prompt_and_tfidf.estimators[1][1]).fit(X_TEXT, Y_TEXT)
    queries = ["what a lovely day", "terrible service"]
    expected = softmax(np.log(prompt.predict_proba(queries)) + np.log(tfidf.predict_proba(queries)), axis=1)
    np.testing.assert_allclose(model.predict_proba(queries), expected, rtol=1e-6, atol=1e-9)
    assert list(model.classes_) == ["negative", "neutral", "positive"]
    # The prompt keeps its parameters and is tunable through the product.
    assert model.get_params()["prompt__n_examples_per_class"] == prompt.n_examples_per_class
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict_proba(queries), model.predict_proba(queries), rtol=1e-6)


def test_experts_see_the_original_labels(tiny_model, bpe_tokenizer):
    # Label words keyed by the user's labels: VotingClassifier fits its experts on 0..n-1
    # and the prompt cannot find its words; the product fits them on the labels themselves.
    y = np.array([{"negative": -1, "neutral": 0, "positive": 1}[label] for label in Y_TEXT])
    words = {-1: "bad", 0: "meh", 1: "good"}
    prompt = FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, label_words=words, random_state=0)
    tfidf = make_pipeline(TfidfVectorizer(), LogisticRegression())
    model = ProductOfExperts([("prompt", prompt), ("tfidf", tfidf)]).fit(X_TEXT, y)
    np.testing.assert_array_equal(model.classes_, [-1, 0, 1])
    assert set(model.predict(X_TEXT)) <= {-1, 0, 1}
    with pytest.raises(ValueError, match="label_words"):
        VotingClassifier([("prompt", prompt), ("tfidf", tfidf)], voting="soft").fit(X_TEXT, y)
