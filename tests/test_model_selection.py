"""FewShotLLMClassifierCV: the candidates cross-validated on the labelled rows, the best refitted."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot.ensemble import ProductOfExperts
from skllm_fewshot.model_selection import FewShotLLMClassifierCV, default_candidates, default_fallback

X = np.array(SENTIMENT_X * 2, dtype=object)
Y = np.array(SENTIMENT_Y * 2, dtype=object)
NAMES = ["head_C0.01", "head_C0.1", "union_C30", "union_C100", "union_C300", "union_C1000",
         "prompt", "prompt_batch"]  # fmt: skip


def numeric_search(**params):
    return FewShotLLMClassifierCV(candidates=[("lr", LogisticRegression()), ("nb", GaussianNB())], **params)


@parametrize_with_checks([numeric_search(), numeric_search(cv=3, fallback=GaussianNB())])
def test_sklearn_checks(estimator, check):
    # Every check passes on numeric candidates: the input is validated by them.
    check(estimator)


def test_default_candidates_are_made_from_the_classifier(make_clf):
    clf = make_clf(calibrate=True, n_examples_per_class=2)
    candidates = default_candidates(clf)
    assert [name for name, _ in candidates] == NAMES
    named = dict(candidates)
    assert named["prompt"].head is None and named["prompt"].calibrate is True
    assert named["prompt_batch"].calibrate == "batch"
    assert named["head_C0.1"].head[-1].C == 0.1 and named["head_C0.1"].n_examples_per_class == 2
    union = named["union_C100"]
    assert union[-1].C == 100 and union[0].transformer_weights == {"llm": 0.5}
    assert union[0].transformer_list[0][1][0].classifier.n_examples_per_class == 2
    assert clf.head is None and clf.calibrate is True  # the classifier itself is untouched


def test_fit_is_the_grid_search_over_the_candidates(make_clf):
    clf = make_clf()
    search = FewShotLLMClassifierCV(clf, random_state=0).fit(X, Y)
    # The default folds: min(3, k) stratified, repeated ceil(8 / k) times (k = 6 here).
    cv = RepeatedStratifiedKFold(n_splits=3, n_repeats=2, random_state=0)
    candidates = default_candidates(clf)
    by_hand = GridSearchCV(
        Pipeline([("model", candidates[0][1])]), {"model": [c for _, c in candidates]},
        scoring="neg_log_loss", cv=cv, error_score="raise",
    ).fit(X, Y)  # fmt: skip
    assert search.best_name_ == NAMES[by_hand.best_index_]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand.cv_results_["mean_test_score"])
    assert search.best_score_ == pytest.approx(by_hand.best_score_)
    np.testing.assert_allclose(search.predict_proba(SENTIMENT_X), by_hand.predict_proba(SENTIMENT_X), atol=1e-9)
    np.testing.assert_array_equal(search.classes_, ["negative", "neutral", "positive"])
    assert set(search.predict(SENTIMENT_X)) <= set(search.classes_)


def test_one_row_per_class_fits_the_fallback(make_clf):
    clf = make_clf()
    X1, Y1 = SENTIMENT_X[:3], SENTIMENT_Y[:3]
    search = FewShotLLMClassifierCV(clf).fit(X1, Y1)
    assert search.best_name_ == "fallback" and search.cv_results_ is None and search.best_score_ is None
    assert isinstance(search.best_estimator_, ProductOfExperts)
    # The prompt times the union_C100 candidate.
    union = dict(default_candidates(clf))["union_C100"]
    assert repr(search.best_estimator_.named_estimators_.union) == repr(union) and union[-1].C == 100
    expected = default_fallback(clf).fit(X1, Y1).predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(search.predict_proba(SENTIMENT_X), expected, atol=1e-9)
    # A fallback of one's own.
    own = FewShotLLMClassifierCV(clf, fallback=clone(clf).set_params(calibrate=False)).fit(X1, Y1)
    assert isinstance(own.best_estimator_, FewShotLLMClassifier) and own.best_estimator_.calibrate is False


def test_own_candidates_nested_parameters_and_pickle(make_clf):
    clf = make_clf()
    search = FewShotLLMClassifierCV(
        clf, candidates=[("prompt", clf), ("head", clone(clf).set_params(head=LogisticRegression()))], cv=2
    )
    assert search.get_params()["classifier__random_state"] == 0
    search.fit(X, Y)
    assert search.best_name_ in ("prompt", "head") and len(search.cv_results_["params"]) == 2
    restored = pickle.loads(pickle.dumps(search))
    np.testing.assert_allclose(restored.predict_proba(SENTIMENT_X), search.predict_proba(SENTIMENT_X))


@pytest.mark.parametrize(
    "params, y, error, match",
    [
        (dict(candidates=[]), Y, ValueError, "non-empty list of \\(name, estimator\\) pairs"),
        (dict(candidates=[LogisticRegression()]), Y, ValueError, "\\(name, estimator\\) pairs"),
        (dict(candidates=[("a", LogisticRegression()), ("a", GaussianNB())]), Y, ValueError, "names must be unique"),
        (dict(classifier=LogisticRegression()), Y, TypeError, "must be a FewShotLLMClassifier"),
        (dict(classifier=FewShotLLMClassifier(example_selection="similar")), Y, ValueError, "'stratified'"),
        # With candidates of one's own, the default fallback still reads one prompt's features.
        (dict(classifier=FewShotLLMClassifier(example_selection="similar"),
              candidates=[("lr", GaussianNB())]), Y[:3], ValueError, "or pass fallback="),
        (dict(), None, ValueError, "requires y"),
        (dict(), np.array([[0, 1]] * len(X)), ValueError, "single-label"),
        (dict(), np.array(["a"] * len(X)), ValueError, "at least 2 classes"),
    ],
)
def test_clear_errors(make_clf, params, y, error, match):
    params.setdefault("classifier", make_clf())
    with pytest.raises(error, match=match):
        FewShotLLMClassifierCV(**params).fit(X, y)


def test_a_candidate_without_predict_proba_is_refused(make_clf):
    from sklearn.svm import LinearSVC

    with pytest.raises(TypeError, match="'svm' \\(LinearSVC\\) has no predict_proba"):
        FewShotLLMClassifierCV(make_clf(), candidates=[("svm", LinearSVC())]).fit(X, Y)


def test_numeric_candidates_search_as_grid_search():
    Xn, yn = make_classification(n_samples=60, n_features=5, random_state=0)
    search = numeric_search(cv=3).fit(Xn, yn)
    by_hand = GridSearchCV(
        Pipeline([("model", LogisticRegression())]), {"model": [LogisticRegression(), GaussianNB()]},
        scoring="neg_log_loss", cv=3,
    ).fit(Xn, yn)  # fmt: skip
    assert search.best_name_ == ["lr", "nb"][by_hand.best_index_]
    assert search.n_features_in_ == 5


def test_verbose_shows_one_bar_over_candidates_and_folds_and_times_are_reported(make_clf, capsys):
    quiet = FewShotLLMClassifierCV(make_clf(), random_state=0).fit(X, Y)
    assert capsys.readouterr().err == ""
    loud = FewShotLLMClassifierCV(make_clf(), random_state=0, verbose=True).fit(X, Y)
    err = capsys.readouterr().err
    # 8 candidates x 3 folds x 2 repeats, the bar at its end.
    assert "candidates x folds" in err and "48/48" in err
    assert loud.best_name_ == quiet.best_name_
    np.testing.assert_allclose(loud.cv_results_["mean_test_score"], quiet.cv_results_["mean_test_score"])
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time"):
        assert loud.cv_results_[key].shape == (len(NAMES),) and (loud.cv_results_[key] >= 0).all()
    assert loud.refit_time_ > 0
    fallback = FewShotLLMClassifierCV(make_clf(), verbose=True).fit(SENTIMENT_X[:3], SENTIMENT_Y[:3])
    assert fallback.best_name_ == "fallback" and fallback.refit_time_ > 0
