"""Heads that learn from every labelled row, the features they read, and LLMFeatures."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_X, SENTIMENT_Y
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import FeatureUnion, make_pipeline, make_union
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVR
from sklearn.utils.estimator_checks import parametrize_with_checks

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._engine import clear_feature_cache
from skllm_fewshot._feature_extraction import LLMFeatures
from skllm_fewshot._heads import ClassMeans, KNNPrompting, resolve_layers

X = SENTIMENT_X * 3
Y = SENTIMENT_Y * 3


@pytest.fixture
def make(tiny_model, bpe_tokenizer):
    def make(**params):
        return FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, random_state=0, **params)

    return make


def loop_states(model, ids, layers):
    """Hidden states at each prompt's last token, one prompt at a time, through transformers."""
    import copy

    # A copy: output_hidden_states leaves hooks on a model for good, and a model with
    # them no longer pickles (other tests pickle estimators holding the shared model).
    model = copy.deepcopy(model)
    out = []
    with torch.inference_mode():
        for row in ids:
            states = model(torch.tensor([row]), output_hidden_states=True).hidden_states
            out.append(np.stack([states[layer][0, -1].numpy() for layer in layers]))
    return np.stack(out)


def test_features_are_the_hidden_states_at_the_label_position(make, tiny_model):
    clf = make(head_layers=[1, 2], head_features="hidden").fit(X, Y)
    ids = clf.engine_.encode(SENTIMENT_X)
    expected = loop_states(tiny_model, ids, [1, 2]).mean(axis=1)
    np.testing.assert_allclose(clf.features(SENTIMENT_X), expected, atol=1e-4)


@pytest.mark.parametrize("layout", ["packed", "padded", "plain"])
def test_engine_states_match_transformers_in_every_layout(make, tiny_model, layout):
    from skllm_fewshot._scoring import PrefixCachedScorer

    engine = make().fit(X, Y).engine_
    ids = engine.encode(SENTIMENT_X)
    scorer = PrefixCachedScorer(
        tiny_model, engine.scorer.prefix_ids, engine.label_token_ids, pad_id=3, layout=layout
    )
    scores, states = scorer.score_with_states(ids, [1, -1])
    np.testing.assert_allclose(states, loop_states(tiny_model, ids, [1, 2]), atol=1e-4)
    np.testing.assert_allclose(scores, engine.log_likelihoods(SENTIMENT_X), atol=1e-4)


def test_a_head_is_fitted_on_every_training_row(make):
    clf = make(head=LogisticRegression(C=1.0), head_layers=-1).fit(X, Y)
    head = clf.head_.estimator_
    expected = LogisticRegression(C=1.0).fit(clf.features(X), Y)
    np.testing.assert_allclose(head.coef_, expected.coef_, atol=1e-6)
    proba = clf.predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(proba, expected.predict_proba(clf.features(SENTIMENT_X)), atol=1e-6)
    np.testing.assert_array_equal(clf.predict(SENTIMENT_X), clf.classes_[proba.argmax(1)])


def test_head_features_kinds(make):
    clf = make(head_layers=[1, 2]).fit(X, Y)
    n_classes, hidden = len(clf.classes_), clf.engine_.loaded.model.config.hidden_size
    for kind, width in (("hidden", hidden), ("scores", n_classes), ("both", hidden + n_classes)):
        assert clf.set_params(head_features=kind).features(SENTIMENT_X).shape == (len(SENTIMENT_X), width)
    # Label scores are log-probabilities across the labels.
    scores = clf.set_params(head_features="scores").features(SENTIMENT_X)
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, atol=1e-9)


def test_knn_prompting_votes_by_kl_divergence():
    anchors = np.log(np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.05, 0.95]]))
    knn = KNNPrompting(n_neighbors=2, alpha=0.0).fit(anchors, ["a", "a", "b", "b"])
    np.testing.assert_allclose(knn.predict_proba(np.log([[0.8, 0.2], [0.1, 0.9]])), [[1, 0], [0, 1]])
    # Smoothing keeps every probability above zero.
    assert (KNNPrompting(n_neighbors=1).fit(anchors, [0, 0, 1, 1]).predict_proba(anchors) > 0).all()


@parametrize_with_checks([ClassMeans(LogisticRegression())])
def test_class_means_is_a_scikit_learn_classifier(estimator, check):
    check(estimator)


@pytest.mark.parametrize("sparse_input", [False, True])
def test_class_means_fits_one_row_per_class_at_the_rows_length(sparse_input):
    from scipy import sparse

    X = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0], [1.0, 1.0], [3.0, 4.0]])
    y = np.array(["b", "a", "a", "a", "c"])
    model = ClassMeans(LogisticRegression(C=100)).fit(sparse.csr_matrix(X) if sparse_input else X, y)
    lengths = np.linalg.norm(X, axis=1).mean()
    means = np.array([[1 / 3, 4 / 3], [2.0, 0.0], [3.0, 4.0]])
    means *= lengths / np.linalg.norm(means, axis=1, keepdims=True)
    by_hand = LogisticRegression(C=100).fit(means, ["a", "b", "c"])
    np.testing.assert_array_equal(model.classes_, ["a", "b", "c"])
    np.testing.assert_allclose(model.estimator_.coef_, by_hand.coef_)
    np.testing.assert_allclose(model.predict_proba(X), by_hand.predict_proba(X))
    # One row per class, all of one length: the rows themselves.
    rows = ClassMeans(LogisticRegression()).fit(X[[0, 1]], ["b", "a"]).estimator_
    np.testing.assert_allclose(rows.coef_, LogisticRegression().fit(X[[0, 1]], ["b", "a"]).coef_)


def test_knn_head_reads_the_label_scores(make):
    clf = make(head="knn").fit(X, Y)
    assert clf.head_.kind == "scores"
    proba = clf.predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_grid_search_over_head_parameters_computes_each_row_once(make, monkeypatch):
    from skllm_fewshot._scoring import PrefixCachedScorer

    real = PrefixCachedScorer.score_with_states
    scored = []

    def counting(self, prompts, layers):
        scored.append(len(prompts))
        return real(self, prompts, layers)

    monkeypatch.setattr(PrefixCachedScorer, "score_with_states", counting)
    rows = {}
    for grid in ([1.0], [0.01, 0.1, 1.0, 10.0]):
        clear_feature_cache()
        scored.clear()
        GridSearchCV(make(head=LogisticRegression()), {"head__C": grid}, cv=3).fit(X, Y)
        rows[len(grid)] = sum(scored)
    # Four candidates cost what one does: each fold's rows (and content-free queries)
    # are computed once under the fold's prompt, then read from the feature cache.
    assert rows[4] == rows[1] > 0


def test_head_must_be_a_classifier(make):
    with pytest.raises(ValueError, match="'head' parameter"):
        make(head=SVR()).fit(X, Y)
    with pytest.raises(ValueError, match="'head' parameter"):
        make(head="linear").fit(X, Y)


def test_too_few_rows_for_the_heads_cv_is_explained(make):
    with pytest.raises(ValueError, match=r"could not be fitted on 6 labelled rows.*per class.*smaller cv"):
        make(head=LogisticRegressionCV(cv=5)).fit(SENTIMENT_X[:6], SENTIMENT_Y[:6])


def test_head_requires_one_prompt(make):
    with pytest.raises(ValueError, match="example_selection=.stratified. with them"):
        make(head=LogisticRegression(), example_selection="similar").fit(X, Y)


def test_bad_head_layers_and_features(make):
    with pytest.raises(ValueError, match="head_layers"):
        make(head=LogisticRegression(), head_layers="middle").fit(X, Y)
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        make(head=LogisticRegression(), head_layers=7).fit(X, Y)
    with pytest.raises(ValueError, match="head_features"):
        make(head=LogisticRegression(), head_features="logits").fit(X, Y)


def test_auto_layers_follow_the_models_depth():
    assert resolve_layers("auto", 30) == [16, 20, 24]
    assert resolve_layers("auto", 2) == [1, 2]
    assert resolve_layers([3, -1], 30) == [3, -1]


def test_pickled_head_predicts_the_same_without_weights(make, tiny_model_dir, bpe_tokenizer):
    clf = FewShotLLMClassifier(
        tiny_model_dir, tokenizer=bpe_tokenizer, head=LogisticRegression(), random_state=0
    )
    clf.fit(X, Y)
    blob = pickle.dumps(clf)
    assert len(blob) < 200_000  # the head and the fitted state, not the weights
    np.testing.assert_allclose(pickle.loads(blob).predict_proba(SENTIMENT_X), clf.predict_proba(SENTIMENT_X))


def test_nested_head_parameters_and_clone(make):
    clf = make(head=make_pipeline(StandardScaler(), LogisticRegression()))
    assert "head__logisticregression__C" in clf.get_params()
    clf.set_params(head__logisticregression__C=0.01)
    copy = clone(clf)
    assert copy.head is not clf.head and copy.get_params()["head__logisticregression__C"] == 0.01


def test_llm_features_in_a_union_with_tfidf(make):
    features = LLMFeatures(make())
    union = make_union(make_pipeline(features, StandardScaler()), TfidfVectorizer())
    model = make_pipeline(union, LogisticRegression(C=10)).fit(X, Y)
    assert model.score(X, Y) > 0.5
    names = union.get_feature_names_out()
    hidden = features.classifier_.engine_.loaded.model.config.hidden_size
    assert sum(n.startswith("pipeline__llmfeatures_hidden") for n in names) == hidden
    assert features.transform(SENTIMENT_X).shape == (len(SENTIMENT_X), features.n_features_out_)


def test_llm_features_weighted_union_as_documented(make):
    # LLMFeatures' docstring recipe: the model's block of unit length, weighted 0.5.
    block = make_pipeline(LLMFeatures(make()), StandardScaler(), Normalizer())
    union = FeatureUnion([("llm", block), ("tfidf", TfidfVectorizer())], transformer_weights={"llm": 0.5})
    model = make_pipeline(union, LogisticRegression(C=100)).fit(X, Y)
    hidden = block[0].n_features_out_
    rows = union.transform(SENTIMENT_X).toarray()
    np.testing.assert_allclose(np.linalg.norm(rows[:, :hidden], axis=1), 0.5, rtol=1e-6)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(SENTIMENT_X), model.predict_proba(SENTIMENT_X))


def test_llm_features_needs_labels(make):
    with pytest.raises(ValueError, match="LLMFeatures needs y"):
        LLMFeatures(make()).fit(X)


def test_batch_calibration_divides_by_the_training_texts_mean(make):
    raw = make(calibrate=False).fit(X, Y)
    batch = make(calibrate="batch").fit(X, Y)
    prior = raw.predict_proba(X).mean(axis=0)
    expected = raw.predict_proba(SENTIMENT_X) / prior
    np.testing.assert_allclose(
        batch.predict_proba(SENTIMENT_X), expected / expected.sum(1, keepdims=True), atol=1e-9
    )
    # A text's probabilities do not depend on the other texts it is predicted with.
    np.testing.assert_allclose(
        batch.predict_proba(SENTIMENT_X[:1]), batch.predict_proba(SENTIMENT_X)[:1], atol=1e-9
    )
