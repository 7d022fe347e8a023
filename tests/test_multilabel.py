"""Zero-shot from class names and descriptions, and multi-label classification."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import SENTIMENT_X, SENTIMENT_Y
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import classification_report, f1_score
from sklearn.model_selection import GridSearchCV, KFold

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._calibration import domain_queries
from skllm_fewshot._multilabel import decide, tune_thresholds
from skllm_fewshot.datasets import load_customer_messages
from skllm_fewshot.reference import full_label_proba

NAMES = ["negative", "neutral", "positive"]


@pytest.fixture
def make(tiny_model, bpe_tokenizer):
    def make(**params):
        return FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, random_state=0, **params)

    return make


@pytest.fixture(scope="module")
def messages():
    frame = load_customer_messages()
    return frame["text"], frame.drop(columns="text")


# -- zero-shot -----------------------------------------------------------------------


@pytest.mark.parametrize("calibrate", [True, False])
def test_zero_shot_equals_the_prompt_without_examples(make, calibrate):
    zero = make(n_examples_per_class=0, calibrate=calibrate).fit(None, NAMES)
    rows = make(n_examples_per_class=0, calibrate=calibrate).fit(SENTIMENT_X, SENTIMENT_Y)
    assert zero.prompt_ == rows.prompt_ and list(zero.classes_) == NAMES
    np.testing.assert_allclose(zero.predict_proba(SENTIMENT_X), rows.predict_proba(SENTIMENT_X), atol=1e-9)


def test_zero_shot_errors(make):
    with pytest.raises(ValueError, match=r"fit\(None, y\) is zero-shot"):
        make(n_examples_per_class=0).fit(None, None)
    with pytest.raises(ValueError, match="n_examples_per_class=1; use n_examples_per_class=0"):
        make().fit(None, NAMES)
    with pytest.raises(ValueError, match="only one class"):
        make(n_examples_per_class=0).fit(None, ["a"])


@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
@pytest.mark.parametrize("scoring", ["full_label", "first_token"])
def test_label_descriptions_are_demonstrations(make, prompt_format, scoring):
    described = {"negative": "unhappy", "neutral": "neither", "positive": "happy"}
    words = {"negative": "bad", "neutral": "meh", "positive": "good"}
    clf = make(
        n_examples_per_class=0,
        label_descriptions=described,
        prompt_format=prompt_format,
        label_scoring=scoring,
        label_words=words,
    ).fit(None, NAMES)
    # Each description is shown as a text of its class, before any other example.
    for name in NAMES:
        assert f"Text:\n'{described[name]}'\nLabel:\n{words[name]}" in clf.prompt_.replace("\r", "")
    assert clf.predict_proba(SENTIMENT_X).shape == (len(SENTIMENT_X), 3)
    # With rows as well, the descriptions come first.
    both = make(n_examples_per_class=1, label_descriptions=described, label_words=words).fit(
        SENTIMENT_X, SENTIMENT_Y
    )
    first_row = min(both.prompt_.index(f"'{t}'") for t, _ in both.examples_)
    assert all(both.prompt_.index(f"'{d}'") < first_row for d in described.values())


def test_multi_label_descriptions_show_one_label_each(make, messages):
    topics = list(messages[1].columns)
    described = {t: f"about {t}" for t in topics}
    clf = make(n_examples_per_class=0, multi_label=True, label_descriptions=described).fit(None, topics)
    assert "'about price'\nprice: yes\nquality: no\ndelivery: no\nservice: no" in clf.prompt_


def test_label_descriptions_must_cover_every_class(make):
    with pytest.raises(ValueError, match="no description for the classes \\['neutral'\\]"):
        make(n_examples_per_class=0, label_descriptions={"negative": "a", "positive": "b"}).fit(None, NAMES)
    with pytest.raises(TypeError, match="'label_descriptions' parameter"):
        make(n_examples_per_class=0, label_descriptions=["a", "b", "c"]).fit(None, NAMES)


# -- multi-label -----------------------------------------------------------------------


def test_customer_messages_ship_with_the_package(messages):
    X, Y = messages
    assert len(X) == 120 and list(Y.columns) == ["price", "quality", "delivery", "service"]
    assert (Y.sum(axis=0) >= 35).all() and (Y.sum(axis=1) >= 1).all()


@pytest.mark.parametrize("kind", ["dataframe", "numpy", "sparse"])
def test_indicator_in_indicator_out(make, messages, kind):
    X, Y = messages[0][:40], messages[1][:40]
    y = {"dataframe": Y, "numpy": Y.to_numpy(), "sparse": sp.csr_matrix(Y.to_numpy())}[kind]
    words = None if kind == "dataframe" else dict(enumerate(Y.columns))
    clf = make(label_words=words).fit(X, y)
    assert clf.multi_label_
    expected_classes = list(Y.columns) if kind == "dataframe" else [0, 1, 2, 3]
    assert list(clf.classes_) == expected_classes
    assert "price: yes" in clf.prompt_ or "price: no" in clf.prompt_
    pred, proba = clf.predict(X[:7]), clf.predict_proba(X[:7])
    assert pred.shape == proba.shape == (7, 4)
    assert set(np.unique(pred)) <= {0, 1} and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(pred, (proba >= clf.head_.thresholds_).astype(int))


@pytest.mark.parametrize("calibrate", [False, True, "domain"])
def test_label_probabilities_equal_a_plain_per_label_loop(
    make, messages, tiny_model, bpe_tokenizer, calibrate
):
    X, Y = messages[0][:30], messages[1][:30]
    clf = make(calibrate=calibrate).fit(X, Y)
    queries = list(messages[0][30:36]) + ["", "'"]

    def loop(texts):
        prompts = [clf.prompt_.replace("{}", t) for t in texts]
        return np.stack(
            [full_label_proba(tiny_model, bpe_tokenizer, prompts, [f"{w}: yes", f"{w}: no"])[:, 0]
             for w in clf.label_words_], axis=1,
        )  # fmt: skip

    expected = loop(queries)
    if calibrate:
        prior = loop(["N/A", "", "[MASK]"]).mean(axis=0)
        if calibrate == "domain":
            # Per label, the mean of the two priors' log-odds.
            domain = loop(domain_queries(X, random_state=clf.random_state)).mean(axis=0)
            prior = expit((logit(prior) + logit(domain)) / 2)
        odds = expected / (1 - expected) / (prior / (1 - prior))
        expected = odds / (1 + odds)
    np.testing.assert_allclose(clf.predict_proba(queries), expected, atol=1e-4)


def test_each_label_is_one_branch_after_the_query(make, messages):
    """The query's tokens are computed once; every label adds only its own tokens."""
    X, Y = messages
    multi = make().fit(X[:40], Y[:40])
    single = make(n_examples_per_class=0).fit(None, list(Y.columns))
    nodes = len(multi.engine_.scorer.trie.tokens)
    words = sum(len(ids) for ids in multi.label_token_ids_)
    assert nodes < words  # "word:" is shared by its yes and no branch
    assert len(multi.label_token_ids_) == 2 * len(single.label_token_ids_)


def test_zero_shot_multi_label_equals_the_prompt_without_examples(make, messages):
    X, Y = messages
    # Fitted without texts, the default calibration has only its content-free queries.
    zero = make(n_examples_per_class=0, multi_label=True).fit(None, list(Y.columns))
    rows = make(n_examples_per_class=0, calibrate=True).fit(X[:40], Y[:40])
    assert zero.prompt_ == rows.prompt_
    np.testing.assert_allclose(zero.predict_proba(X[:5]), rows.predict_proba(X[:5]), atol=1e-9)
    assert zero.predict(X[:5]).shape == (5, 4)


def test_examples_show_every_label(make, messages):
    X, Y = messages
    clf = make(n_examples_per_class=2).fit(X[:60], Y[:60])
    shown = np.array([row for _, row in clf.examples_])
    assert (shown.sum(axis=0) >= 2).all()


def test_multi_label_errors(make, messages):
    X, Y = messages[0][:20], messages[1][:20].copy()
    Y["refund"] = 0
    with pytest.raises(ValueError, match=r"labels \['refund'\] are never present"):
        make().fit(X, Y)
    with pytest.raises(ValueError, match="multi_label=True needs y as a 0/1 indicator"):
        make(multi_label=True).fit(SENTIMENT_X, SENTIMENT_Y)
    with pytest.raises(ValueError, match="only 0 and 1"):
        make().fit(X, messages[1][:20] * 2 + 0)
    with pytest.raises(ValueError, match="'threshold' parameter"):
        make(threshold=1.5).fit(X, messages[1][:20])


def test_at_least_one_label():
    proba = np.array([[0.1, 0.3], [0.7, 0.2]])
    np.testing.assert_array_equal(decide(proba, np.array([0.5, 0.5]), False), [[0, 0], [1, 0]])
    np.testing.assert_array_equal(decide(proba, np.array([0.5, 0.5]), True), [[0, 1], [1, 0]])


def test_thresholds_are_tuned_only_with_enough_rows():
    rng = np.random.RandomState(0)
    proba = rng.rand(40, 2)
    Y = np.column_stack([proba[:, 0] > 0.7, np.r_[np.ones(3), np.zeros(37)]]).astype(int)
    thresholds = tune_thresholds(proba, Y)
    assert 0.6 < thresholds[0] < 0.75 and thresholds[1] == 0.5


def test_sklearn_metrics_grid_search_clone_and_pickle(make, messages, tiny_model_dir, bpe_tokenizer):
    X, Y = messages[0][:36], messages[1][:36]
    clf = make().fit(X, Y)
    pred = clf.predict(X)
    assert 0 <= f1_score(Y, pred, average="micro") <= 1
    assert "price" in classification_report(Y, pred, target_names=list(Y.columns), zero_division=0)
    search = GridSearchCV(make(), {"at_least_one": [False, True]}, scoring="f1_micro", cv=KFold(3)).fit(X, Y)
    assert search.best_estimator_.multi_label_
    assert clone(clf).get_params() == clf.get_params()
    by_path = FewShotLLMClassifier(tiny_model_dir, tokenizer=bpe_tokenizer, random_state=0).fit(X, Y)
    restored = pickle.loads(pickle.dumps(by_path))
    np.testing.assert_allclose(restored.predict_proba(X[:5]), by_path.predict_proba(X[:5]))
    np.testing.assert_array_equal(restored.predict(X[:5]), by_path.predict(X[:5]))


def test_heads_apply_one_vs_rest(make, messages):
    X, Y = messages[0][:40], messages[1][:40]
    clf = make(head=LogisticRegression(C=1.0)).fit(X, Y)
    proba = clf.predict_proba(X[:6])
    assert proba.shape == (6, 4)
    features = clf.features(X[:6])
    per_label = [LogisticRegression(C=1.0).fit(clf.features(X), Y.iloc[:, j]) for j in range(4)]
    expected = np.column_stack([m.predict_proba(features)[:, 1] for m in per_label])
    np.testing.assert_allclose(proba, expected, atol=1e-6)


def test_tags_say_multi_label(make):
    from sklearn.utils import get_tags

    assert get_tags(make()).classifier_tags.multi_label
