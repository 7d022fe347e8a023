"""Classes known before they have rows (``classes=``): predicted from their names."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from skllm_fewshot._heads import share_out

NAMES = ["alpha", "beta", "gamma"]
X = ["one two", "two three", "three four", "four five", "five six", "six seven"]


def test_share_out_keeps_the_prompt_for_classes_without_rows():
    prompt = np.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    seen = np.array([True, False, True])
    proba = share_out(prompt, np.array([[0.9, 0.1], [0.25, 0.75]]), seen)
    np.testing.assert_allclose(proba[:, 1], prompt[:, 1])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # The labelled classes share the prompt's rest (0.8, 0.4) in the head's proportions.
    np.testing.assert_allclose(proba[:, [0, 2]], [[0.72, 0.08], [0.1, 0.3]])


def test_a_prompt_scores_every_declared_class(tiny_clf):
    y = ["alpha", "beta"] * 3
    clf = tiny_clf(classes=NAMES).fit(X, y)
    assert list(clf.classes_) == NAMES
    np.testing.assert_array_equal(clf.class_count_, [3, 3, 0])
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (proba[:, 2] > 0).all()
    # The prompt shows the labelled classes' examples and names every class.
    assert "gamma" in clf.prompt_
    assert {label for _, label in clf.examples_} == {"alpha", "beta"}


@pytest.mark.parametrize("head", [LogisticRegression(), "knn"])
def test_a_head_keeps_the_prompts_probability_for_a_class_without_rows(tiny_clf, head):
    y = ["alpha", "beta"] * 3
    clf = tiny_clf(classes=NAMES, head=head).fit(X, y)
    prompt = tiny_clf(classes=NAMES).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[:, 2], prompt.predict_proba(X)[:, 2], rtol=1e-6)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X)) <= set(NAMES)
    if head != "knn":
        # Among the labelled classes the head decides, on the features read under the prompt.
        features = clf.features(X)
        alone = LogisticRegression().fit(features, y).predict_proba(features)
        np.testing.assert_allclose(proba[:, 0] / proba[:, :2].sum(axis=1), alone[:, 0], rtol=1e-6)


def test_one_labelled_class_takes_the_labelled_share(tiny_clf):
    clf = tiny_clf(classes=NAMES, head=LogisticRegression()).fit(X[:2], ["beta", "beta"])
    proba = clf.predict_proba(X)
    prompt = tiny_clf(classes=NAMES).fit(X[:2], ["beta", "beta"]).predict_proba(X)
    np.testing.assert_allclose(proba, prompt, rtol=1e-6)
    np.testing.assert_array_equal(clf.class_count_, [0, 2, 0])


def test_declared_classes_equal_to_ys_change_nothing(tiny_clf):
    y = ["alpha", "beta", "gamma"] * 2
    plain = tiny_clf(head=LogisticRegression()).fit(X, y)
    declared = tiny_clf(classes=NAMES[::-1], head=LogisticRegression()).fit(X, y)
    np.testing.assert_allclose(declared.predict_proba(X), plain.predict_proba(X))
    assert list(declared.classes_) == NAMES


def test_integer_classes_and_a_clone(tiny_clf):
    clf = tiny_clf(classes=np.array([0, 1, 2]), label_words={0: "no", 1: "yes", 2: "maybe"})
    fitted = clone(clf).fit(X, [0, 1] * 3)
    assert fitted.classes_.tolist() == [0, 1, 2]
    assert fitted.predict(X).dtype.kind == "i"


@pytest.mark.parametrize(
    "classes, y, message",
    [
        (
            ["alpha", "beta"],
            ["alpha", "gamma"] * 3,
            r"y has classes that classes= does not list: \['gamma'\]",
        ),
        (["alpha", "alpha", "beta"], ["alpha", "beta"] * 3, "name each class once"),
        (["alpha"], ["alpha"] * 6, "at least two classes"),
        ([["alpha", "beta"]], ["alpha", "beta"] * 3, "one-dimensional"),
    ],
)
def test_bad_declared_classes_are_clear_errors(tiny_clf, classes, y, message):
    with pytest.raises(ValueError, match=message):
        tiny_clf(classes=classes).fit(X, y)


def test_classes_do_not_apply_to_zero_shot_or_multi_label(tiny_clf):
    with pytest.raises(ValueError, match="with X=None, y names the classes"):
        tiny_clf(classes=NAMES, n_examples_per_class=0).fit(None, NAMES)
    with pytest.raises(ValueError, match="multi-label target's columns are its labels"):
        tiny_clf(classes=NAMES).fit(X, np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]])


def _sentiment(n_per_class):
    from conftest import SENTIMENT_X, SENTIMENT_Y

    X, y = np.array(SENTIMENT_X * 3, dtype=object), np.array(SENTIMENT_Y * 3, dtype=object)
    rows = np.concatenate([np.flatnonzero(y == c)[:n_per_class] for c in ("negative", "positive")])
    return X, X[rows], y[rows]


def test_the_search_compares_the_labelled_classes_and_completes_the_others(make_clf):
    from skllm_fewshot import FewShotLLMClassifierCV

    X, Xl, yl = _sentiment(4)
    classes = ["negative", "neutral", "positive"]
    search = FewShotLLMClassifierCV(make_clf(classes=classes), random_state=0).fit(Xl, yl)
    assert list(search.classes_) == classes
    np.testing.assert_array_equal(search.class_count_, [4, 0, 4])
    assert list(search.best_estimator_.classes_) == ["negative", "positive"]
    assert list(search.unseen_prompt_.classes_) == classes
    proba = search.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], search.unseen_prompt_.predict_proba(X)[:, 1])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(search.predict(X)) <= set(classes)
    # Every class with rows: the declared classes change nothing.
    full = FewShotLLMClassifierCV(make_clf(classes=classes), random_state=0).fit(X, np.array(_labels(X)))
    assert full.unseen_prompt_ is None and list(full.classes_) == classes


def _labels(X):
    from conftest import SENTIMENT_X, SENTIMENT_Y

    return [dict(zip(SENTIMENT_X, SENTIMENT_Y))[x] for x in X]


def test_the_search_with_one_labelled_class_is_the_prompt_over_every_class(make_clf):
    from skllm_fewshot import FewShotLLMClassifierCV

    X, Xl, yl = _sentiment(2)
    classes = ["negative", "neutral", "positive"]
    search = FewShotLLMClassifierCV(make_clf(classes=classes)).fit(Xl[:2], yl[:2])
    assert search.best_name_ == "prompt" and search.unseen_prompt_ is None
    assert list(search.best_estimator_.classes_) == classes
    assert search.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="multi-label target's columns are its labels"):
        FewShotLLMClassifierCV(make_clf(classes=classes)).fit(Xl, np.eye(2, dtype=int)[[0, 1] * 2])


def test_similar_examples_with_a_class_without_rows(tiny_clf):
    y = ["alpha", "beta"] * 3
    clf = tiny_clf(classes=NAMES, example_selection="similar", n_examples_per_class=1).fit(X, y)
    assert {label for _, label in clf.examples_for(X[:1])[0]} == {"alpha", "beta"}
    assert clf.predict_proba(X).shape == (len(X), 3)


def test_a_pickled_classifier_with_a_class_without_rows(tiny_clf):
    import pickle

    clf = tiny_clf(classes=NAMES, head=LogisticRegression()).fit(X, ["alpha", "beta"] * 3)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(again.class_count_, clf.class_count_)
