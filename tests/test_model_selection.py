"""FewShotLLMClassifierCV: the candidates cross-validated on the labelled rows, the best refitted."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RepeatedStratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skllm_fewshot import FewShotLLMClassifier, LoRAFineTuning
from skllm_fewshot._ensemble import ProductOfExperts
from skllm_fewshot._heads import ClassMeans
from skllm_fewshot._search import (
    FewShotLLMClassifierCV,
    _KeptInTraining,
    default_candidates,
    default_fallback,
    pick_within_noise,
)

X = np.array(SENTIMENT_X * 2, dtype=object)
Y = np.array(SENTIMENT_Y * 2, dtype=object)
# Two rows in each of two classes: below MIN_ROWS, where the search keeps its prompt.
X4, Y4 = ["great fun", "awful mess", "loved it", "boring film"], ["pos", "neg", "pos", "neg"]
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
    # The candidates, then the prior-class predictor that the pick must beat.
    candidates = [*default_candidates(clf), ("constant", DummyClassifier(strategy="prior"))]
    by_hand = GridSearchCV(
        Pipeline([("model", candidates[0][1])]), {"model": [c for _, c in candidates]},
        scoring="neg_log_loss", cv=cv, error_score="raise",
        refit=lambda results: pick_within_noise(results, [*NAMES, "constant"]),
    ).fit(X, Y)  # fmt: skip
    assert by_hand.best_index_ != NAMES.index("prompt")  # else the product below (next test)
    assert search.best_name_ == NAMES[by_hand.best_index_]
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand.cv_results_["mean_test_score"])
    assert search.best_score_ == pytest.approx(by_hand.cv_results_["mean_test_score"][by_hand.best_index_])
    assert search.cv_results_["mean_test_score"][-1] == pytest.approx(-np.log(3))  # the constant: uniform
    np.testing.assert_allclose(
        search.predict_proba(SENTIMENT_X), by_hand.predict_proba(SENTIMENT_X), atol=1e-9
    )
    np.testing.assert_array_equal(search.classes_, ["negative", "neutral", "positive"])
    assert set(search.predict(SENTIMENT_X)) <= set(search.classes_)


def test_one_row_per_class_fits_the_fallback(make_clf):
    clf = make_clf()
    X1, Y1 = SENTIMENT_X[:3], SENTIMENT_Y[:3]
    search = FewShotLLMClassifierCV(clf).fit(X1, Y1)
    assert search.best_name_ == "fallback" and search.cv_results_ is None and search.best_score_ is None
    assert isinstance(search.best_estimator_, ProductOfExperts)
    # The prompt times the union_C100 candidate, fitted on the class means.
    union = dict(default_candidates(clf))["union_C100"]
    fitted = search.best_estimator_.named_estimators_.union
    assert repr(fitted[:-1]) == repr(union[:-1]) and isinstance(fitted[-1], ClassMeans)
    assert repr(fitted[-1].estimator) == repr(union[-1]) and union[-1].C == 100
    expected = default_fallback(clf).fit(X1, Y1).predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(search.predict_proba(SENTIMENT_X), expected, atol=1e-9)
    # Lopsided rows (1, 2 and 2) are searched (next test); under 8 rows the search keeps
    # the prompt, which with three classes is the same product, each class one mean row.
    lopsided = FewShotLLMClassifierCV(clf).fit(SENTIMENT_X[:5], SENTIMENT_Y[:5])
    assert lopsided.best_name_ == "prompt_union" and "fallback" in lopsided.cv_results_["name"]
    assert len(lopsided.best_estimator_.named_estimators_.union[-1].estimator_.coef_) == 3
    np.testing.assert_allclose(
        lopsided.predict_proba(SENTIMENT_X),
        default_fallback(clf).fit(SENTIMENT_X[:5], SENTIMENT_Y[:5]).predict_proba(SENTIMENT_X),
        atol=1e-9,
    )
    # Two classes: the prompt alone.
    two = [i for i, label in enumerate(SENTIMENT_Y) if label != "neutral"][:3]
    binary = FewShotLLMClassifierCV(clf).fit(np.array(SENTIMENT_X)[two], np.array(SENTIMENT_Y)[two])
    assert binary.best_name_ == "fallback" and isinstance(binary.best_estimator_, FewShotLLMClassifier)
    assert binary.best_estimator_.head is None
    # A fallback of one's own.
    own = FewShotLLMClassifierCV(clf, fallback=clone(clf).set_params(calibrate=False)).fit(X1, Y1)
    assert isinstance(own.best_estimator_, FewShotLLMClassifier) and own.best_estimator_.calibrate is False


def test_a_class_with_one_row_trains_every_fold_and_the_others_are_searched():
    from sklearn.metrics import log_loss, make_scorer

    Xn, yn = make_classification(
        n_samples=40, n_features=5, n_informative=3, n_classes=3, random_state=0
    )  # fmt: skip
    yn = yn.astype(object)
    yn[yn == 2] = "c"
    yn[yn == 1] = "b"
    yn[yn == 0] = "a"
    single = int(np.flatnonzero(yn == "c")[0])
    keep = np.flatnonzero(yn != "c").tolist() + [single]
    Xl, yl = Xn[keep], yn[keep]  # "c" has a single row, "a" and "b" many
    search = numeric_search(random_state=0).fit(Xl, yl)
    assert search.best_name_ in ("lr", "nb") and search.cv_results_ is not None
    np.testing.assert_array_equal(search.classes_, ["a", "b", "c"])
    np.testing.assert_array_equal(search.class_count_, [np.sum(yl == c) for c in "abc"])
    # By hand: folds cut from the other rows (k = the rarer of "a" and "b"), the lone
    # row in every training set, and the log-loss over every class.
    rest = np.arange(len(yl) - 1)
    k = min(np.sum(yl == "a"), np.sum(yl == "b"))
    inner = RepeatedStratifiedKFold(n_splits=min(3, k), n_repeats=int(np.ceil(8 / k)), random_state=0)
    splits = [(np.r_[rest[train], len(yl) - 1], rest[test]) for train, test in inner.split(rest, yl[rest])]
    scorer = make_scorer(
        log_loss, labels=["a", "b", "c"], greater_is_better=False, response_method="predict_proba"
    )
    by_hand = GridSearchCV(
        Pipeline([("model", LogisticRegression())]), {"model": [LogisticRegression(), GaussianNB()]},
        scoring=scorer, cv=splits,
    ).fit(Xl, yl)  # fmt: skip
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"][:2], by_hand.cv_results_["mean_test_score"]
    )
    kept = _KeptInTraining(inner, np.r_[np.zeros(len(yl) - 1, dtype=bool), True])
    for (train, test), (by_hand_train, by_hand_test) in zip(kept.split(Xl, yl), splits, strict=True):
        np.testing.assert_array_equal(train, np.sort(by_hand_train))
        np.testing.assert_array_equal(test, by_hand_test)
    # One's own fallback is one more candidate, cross-validated on the same folds.
    own = numeric_search(random_state=0, fallback=GaussianNB()).fit(Xl, yl)
    assert own.cv_results_["name"].tolist() == ["lr", "nb", "fallback", "constant"]
    np.testing.assert_allclose(own.cv_results_["mean_test_score"][:2], by_hand.cv_results_["mean_test_score"])
    # With a given cv, or one class with several rows, nothing is searched: the fallback.
    assert numeric_search(cv=3, fallback=GaussianNB()).fit(Xl, yl).best_name_ == "fallback"
    two_single = np.r_[np.flatnonzero(yl == "a"), np.flatnonzero(yl == "b")[:1], len(yl) - 1]
    assert numeric_search(fallback=GaussianNB()).fit(Xl[two_single], yl[two_single]).best_name_ == "fallback"
    # Nor when fewer than half the classes have several rows (2 of 5): the folds would
    # score too little of the task.
    Xf, yf = np.vstack([Xl, Xl[:2]]), np.r_[yl, ["d", "e"]]
    assert numeric_search(fallback=GaussianNB()).fit(Xf, yf).best_name_ == "fallback"


def test_own_candidates_nested_parameters_and_pickle(make_clf):
    clf = make_clf()
    search = FewShotLLMClassifierCV(
        clf, candidates=[("prompt", clf), ("head", clone(clf).set_params(head=LogisticRegression()))], cv=2
    )
    assert search.get_params()["classifier__random_state"] == 0
    search.fit(X, Y)
    assert (
        search.best_name_ in ("prompt", "head") and len(search.cv_results_["params"]) == 3
    )  # and the constant
    restored = pickle.loads(pickle.dumps(search))
    np.testing.assert_allclose(restored.predict_proba(SENTIMENT_X), search.predict_proba(SENTIMENT_X))


@pytest.mark.parametrize(
    "params, y, error, match",
    [
        (dict(candidates=[]), Y, ValueError, "non-empty list of \\(name, estimator\\) pairs"),
        (dict(candidates=[LogisticRegression()]), Y, ValueError, "\\(name, estimator\\) pairs"),
        (
            dict(candidates=[("a", LogisticRegression()), ("a", GaussianNB())]),
            Y,
            ValueError,
            "names must be unique",
        ),
        (dict(classifier=LogisticRegression()), Y, TypeError, "must be a FewShotLLMClassifier"),
        (dict(classifier=FewShotLLMClassifier(example_selection="similar")), Y, ValueError, "'stratified'"),
        # With candidates of one's own, the default fallback still reads one prompt's features.
        (
            dict(
                classifier=FewShotLLMClassifier(example_selection="similar"),
                candidates=[("lr", GaussianNB())],
            ),
            Y[:3],
            ValueError,
            "or pass fallback=",
        ),
        (dict(), None, ValueError, "requires y"),
        (dict(classifier=FewShotLLMClassifier(classes=["a", "b"])), None, ValueError, "requires y"),
        (dict(), np.array([[0, 2], [1, 3]] * (len(X) // 2)), ValueError, "several columns of classes"),
        (dict(), np.array([[0, 1]] * len(X)), ValueError, "never present"),
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
    out, err = capsys.readouterr()
    # The plan first: what will be fitted, how many passes, and the time measured here.
    assert "8 candidates (head_C0.01," in out and "6 folds of the 18 rows" in out
    assert "passes of the model over the rows: 7" in out and "s per row read; expected: about" in out
    assert "[Pipeline]" not in out  # only the classifiers' bars are switched on, not the pipelines' lines
    # 8 candidates and the constant x 3 folds x 2 repeats, the bar at its end.
    assert "candidates x folds" in err and "54/54" in err
    assert loud.best_name_ == quiet.best_name_
    np.testing.assert_allclose(loud.cv_results_["mean_test_score"], quiet.cv_results_["mean_test_score"])
    for key in ("mean_fit_time", "std_fit_time", "mean_score_time"):
        assert loud.cv_results_[key].shape == (len(NAMES) + 1,) and (loud.cv_results_[key] >= 0).all()
    assert loud.refit_time_ > 0
    fallback = FewShotLLMClassifierCV(make_clf(), verbose=True).fit(SENTIMENT_X[:3], SENTIMENT_Y[:3])
    assert fallback.best_name_ == "fallback" and fallback.refit_time_ > 0


# Multi-label: 4 topics over 12 texts, each label present in 4-8 rows and absent in 4-8.
ML_X = np.array(SENTIMENT_X + ["great price", "bad delivery", "meh service"], dtype=object)
ML_Y = np.array([[i % 2, (i // 2) % 2, int(i % 3 == 0), int(i % 3 != 0)] for i in range(len(ML_X))])


def test_multi_label_targets_search_their_own_candidates(make_clf):
    import pandas as pd

    frame = pd.DataFrame(ML_Y, columns=["a", "b", "c", "d"])
    search = FewShotLLMClassifierCV(make_clf(), random_state=0).fit(ML_X, frame)
    assert search.multi_label_ and search.classes_.tolist() == ["a", "b", "c", "d"]
    names = [name for name, _ in default_candidates(make_clf(), multi_label=True)]
    assert names == ["head_last_C0.1", "head_last_C1", "union_last_C10", "union_last_C100", "prompt"]
    assert search.best_name_ in names and len(search.cv_results_["mean_test_score"]) == len(names) + 1
    # The default scoring for indicator targets is micro-F1, between 0 and 1.
    assert 0 <= search.best_score_ <= 1
    predicted = search.predict(ML_X)
    assert predicted.shape == ML_Y.shape and set(np.unique(predicted)) <= {0, 1}
    proba = search.predict_proba(ML_X)
    assert proba.shape == ML_Y.shape and ((proba >= 0) & (proba <= 1)).all()
    assert search.__sklearn_tags__().classifier_tags.multi_label
    assert not numeric_search().__sklearn_tags__().classifier_tags.multi_label


def test_multi_label_with_a_label_in_one_row_fits_the_prompt(make_clf):
    y = ML_Y.copy()
    y[:, 0] = 0
    y[0, 0] = 1
    search = FewShotLLMClassifierCV(make_clf()).fit(ML_X, y)
    assert search.best_name_ == "fallback" and search.best_estimator_.head is None
    assert search.predict(ML_X).shape == y.shape


def _results(*per_split):
    per_split = np.array(per_split, dtype=float)  # (n_splits, n_candidates)
    return {**{f"split{i}_test_score": row for i, row in enumerate(per_split)},
            "mean_test_score": per_split.mean(axis=0)}  # fmt: skip


def test_a_candidate_no_better_than_the_constant_does_not_replace_the_prompt():
    from skllm_fewshot._search import NOISE_SE

    names = ["union", "prompt", "constant"]
    # SST-2 with 2 rows per class: the union is about as unsure as the constant (ln 2), the
    # prompt surer and more often wrong on these rows: the union wins the mean, not the bar.
    flat = _results(
        [-0.78, -0.80, -0.693], [-0.62, -0.86, -0.693], [-0.66, -0.79, -0.693], [-0.74, -0.77, -0.693]
    )
    assert pick_within_noise(flat, names) == 1
    # A union that has learned something clears it.
    learned = _results([-0.40, -0.80, -0.693], [-0.35, -0.86, -0.693], [-0.45, -0.79, -0.693])
    assert pick_within_noise(learned, names) == 0
    # The bar is NOISE_SE standard errors of the gain over the constant, fold by fold.
    gains = np.array([0.30, 0.02, 0.25, 0.01])
    margin = gains.mean() / (gains.std(ddof=1) / 2)
    noisy = _results(*[[-0.693 + g, -0.9, -0.693] for g in gains])
    assert pick_within_noise(noisy, names) == (0 if margin > NOISE_SE else 1)
    # The prompt when best, the plain best without a prompt or a constant, never the constant.
    assert pick_within_noise(_results([-0.5, -0.4, -0.6], [-0.5, -0.3, -0.6]), names) == 1
    assert pick_within_noise(flat, ["a", "b", "constant"]) == 0
    assert pick_within_noise(flat, ["union", "prompt", "c"]) == 2  # "c" is a candidate like any other
    assert pick_within_noise(_results([-0.9, -0.8, -0.5], [-0.9, -0.8, -0.5]), names) == 1


def test_the_bar_counts_the_rows_not_the_repeated_folds():
    from skllm_fewshot.model_selection import MIN_ROWS, NOISE_SE

    names = ["union", "prompt", "constant"]
    # 2 folds repeated 4 times: 8 fold scores from the same few rows.
    gains = np.array([0.02, 0.35, 0.01, 0.30, 0.00, 0.28, 0.01, 0.03])
    folds = _results(*[[-0.693 + g, -0.9, -0.693] for g in gains])
    independent = gains.mean() / (gains.std(ddof=1) / np.sqrt(len(gains)))
    corrected = gains.mean() / (gains.std(ddof=1) * np.sqrt(1 / len(gains) + 1.0))
    assert corrected < NOISE_SE < independent
    assert pick_within_noise(folds, names) == 0  # the folds taken as independent evidence
    assert pick_within_noise(folds, names, test_train_ratio=1.0) == 1  # one held-out row per training row
    # Below MIN_ROWS labelled rows the prompt stays, however clear the folds look.
    clear = _results(*[[-0.3, -0.9, -0.693]] * 3 + [[-0.35, -0.9, -0.693]])
    assert pick_within_noise(clear, names, n_rows=MIN_ROWS) == 0
    assert pick_within_noise(clear, names, n_rows=MIN_ROWS - 1) == 1


def test_with_two_rows_in_each_of_two_classes_the_kept_prompt_shows_both(make_clf):
    # Under MIN_ROWS the rule keeps the prompt; with two rows in each of two classes the
    # search shows it both rows of each where the classifier shows one.
    clf = make_clf()
    search = FewShotLLMClassifierCV(clf, random_state=0).fit(X4, Y4)
    assert search.best_name_ == "prompt_two_examples" and search.best_score_ is None
    assert isinstance(search.best_estimator_, FewShotLLMClassifier) and search.best_estimator_.head is None
    assert sorted(text for text, _ in search.best_estimator_.examples_) == sorted(X4)
    assert clf.n_examples_per_class == 1  # the classifier itself is untouched


@pytest.mark.parametrize(
    "params, y, kept",
    [
        # The classifier's own number of examples is kept where it is not one.
        (dict(n_examples_per_class=0), Y4, "prompt"),
        (dict(n_examples_per_class=3), Y4, "prompt"),
        # A class with one row: nothing to show twice, and nothing cross-validated.
        ({}, ["pos", "neg", "pos", "pos"], "fallback"),
        # Three rows of a class: two of them shown did worse than one (docs/accuracy_log.md).
        ({}, [*Y4, "pos"], "prompt"),
        ({}, [*Y4, "pos", "neg"], "prompt"),
    ],
)
def test_the_kept_prompt_shows_two_examples_only_where_it_can(make_clf, params, y, kept):
    texts = [*X4, "a delight", "dull"][: len(y)]
    search = FewShotLLMClassifierCV(make_clf(**params), random_state=0).fit(texts, y)
    assert search.best_name_ == kept
    assert search.best_estimator_.n_examples_per_class == params.get("n_examples_per_class", 1)


def test_with_three_classes_the_kept_prompt_is_the_product_with_the_union(make_clf):
    # Two rows in each of three classes: under MIN_ROWS, so the rule keeps the prompt,
    # which with three classes or more the search replaces by default_fallback.
    X6, y6 = SENTIMENT_X[:6], SENTIMENT_Y[:6]
    clf = make_clf()
    search = FewShotLLMClassifierCV(clf, random_state=0).fit(X6, y6)
    assert search.best_name_ == "prompt_union" and search.best_score_ is None
    assert isinstance(search.best_estimator_, ProductOfExperts)
    assert search.cv_results_["name"][np.argmax(search.cv_results_["mean_test_score"][:-1])] in NAMES
    expected = default_fallback(clone(clf)).fit(X6, y6).predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(search.predict_proba(SENTIMENT_X), expected, atol=1e-9)
    # Candidates of one's own keep their own prompt.
    own = FewShotLLMClassifierCV(clf, candidates=[("prompt", clf), ("nb", clone(clf))], random_state=0)
    assert own.fit(X6, y6).best_name_ == "prompt"
    assert own.fit(X4, Y4).best_name_ == "prompt"  # two classes: nor by the two-example prompt


def test_a_candidate_may_not_take_the_constant_s_name(make_clf):
    with pytest.raises(ValueError, match="'constant' is the name"):
        FewShotLLMClassifierCV(candidates=[("constant", GaussianNB()), ("nb", GaussianNB())]).fit(
            np.ones((6, 2)), [0, 1] * 3
        )


def test_fine_tuning_joins_the_candidates_from_enough_rows(make_clf):
    from skllm_fewshot._finetuning import LoRAFineTuning
    from skllm_fewshot._search import FINE_TUNE_MIN_ROWS

    pytest.importorskip("peft")
    names = [name for name, _ in default_candidates(make_clf(), fine_tune=True)]
    assert names[-1] == "lora" and "lora" not in [
        n for n, _ in default_candidates(make_clf(), multi_label=True)
    ]
    tuned = dict(default_candidates(make_clf(), fine_tune=True))["lora"]
    assert isinstance(tuned.head, LoRAFineTuning) and tuned.calibrate is False
    # "auto": only from FINE_TUNE_MIN_ROWS rows in the rarest class (X has 6 per class).
    few = FewShotLLMClassifierCV(make_clf(), random_state=0).fit(X, Y)
    assert 6 < FINE_TUNE_MIN_ROWS and "lora" not in list(few.cv_results_["name"])
    quick = make_clf(head=LoRAFineTuning(max_steps=4, learning_rate=1e-2))
    search = FewShotLLMClassifierCV(make_clf(), fine_tune=True, random_state=0)
    search.fit(X, Y)
    assert list(search.cv_results_["name"])[-2:] == ["lora", "constant"]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # As a candidate of one's own, with its parameters.
    own = FewShotLLMClassifierCV(candidates=[("lora", quick)], random_state=0).fit(X, Y)
    assert own.best_name_ == "lora" and own.predict_proba(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="'fine_tune' parameter.*Got 'yes'"):
        FewShotLLMClassifierCV(make_clf(), fine_tune="yes").fit(X, Y)


def test_auto_fine_tunes_from_enough_rows_and_up_to_the_class_limit(make_clf):
    from skllm_fewshot._search import FINE_TUNE_MAX_CLASSES, FINE_TUNE_MIN_ROWS

    pytest.importorskip("peft")
    k = FINE_TUNE_MIN_ROWS
    # 3 classes, k rows each: within both limits.
    X3 = np.array([f"{text} ({i})" for i, text in enumerate(SENTIMENT_X * 3)][: 3 * k], dtype=object)
    Y3 = np.array((SENTIMENT_Y * 3)[: 3 * k], dtype=object)
    assert min(np.unique(Y3, return_counts=True)[1]) == k and 3 <= FINE_TUNE_MAX_CLASSES
    search = FewShotLLMClassifierCV(make_clf(), random_state=0).fit(X3, Y3)
    assert list(search.cv_results_["name"])[-2:] == ["lora", "constant"]
    # One class more than the limit, k rows each: the frozen candidates only.
    n = FINE_TUNE_MAX_CLASSES + 1
    Xn = np.array([f"{SENTIMENT_X[i % len(SENTIMENT_X)]} ({i})" for i in range(n * k)], dtype=object)
    Yn = np.array([f"class{i % n}" for i in range(n * k)], dtype=object)
    many = FewShotLLMClassifierCV(make_clf(), random_state=0).fit(Xn, Yn)
    assert list(many.cv_results_["name"]) == NAMES + ["constant"]


def test_candidates_share_one_seed_when_the_classifier_has_none(make_clf):
    base = make_clf(random_state=None)
    search = FewShotLLMClassifierCV(base, random_state=0).fit(X, Y)
    # Every default candidate draws the same examples in a fold (one prompt, one pass);
    # the classifier passed in is not changed.
    seed = search.best_estimator_.get_params().get("random_state")
    if seed is None:  # a union: the seed is on its inner classifier
        seed = [v for k, v in search.best_estimator_.get_params().items() if k.endswith("__random_state")][0]
    assert isinstance(seed, int) and base.random_state is None
    again = FewShotLLMClassifierCV(base, random_state=0).fit(X, Y)
    np.testing.assert_array_equal(again.predict_proba(X), search.predict_proba(X))


def _many_rows(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    words = {
        "positive": ["great", "loved", "wonderful", "fun"],
        "negative": ["awful", "boring", "bad", "dull"],
    }
    texts, labels = [], []
    for label, pool in words.items():
        for i in range(per_class):
            texts.append(f"{rng.choice(pool)} film number {i} {rng.choice(pool)}")
            labels.append(label)
    return np.array(texts, dtype=object), np.array(labels, dtype=object)


def test_with_many_rows_each_candidate_is_fitted_once_on_a_held_out_split(make_clf):
    from skllm_fewshot._search import HOLDOUT_BLOCKS, HOLDOUT_MIN_ROWS

    X_many, y_many = _many_rows(HOLDOUT_MIN_ROWS)
    search = FewShotLLMClassifierCV(make_clf(), fine_tune=False, random_state=0).fit(X_many, y_many)
    results = search.cv_results_
    assert list(results["name"]) == NAMES + ["constant"]
    assert [key for key in results if key.startswith("split")] == [
        f"split{i}_test_score" for i in range(HOLDOUT_BLOCKS)
    ]
    folds = np.array([results[f"split{i}_test_score"] for i in range(HOLDOUT_BLOCKS)])
    np.testing.assert_allclose(folds.mean(axis=0), results["mean_test_score"])
    assert (results["mean_fit_time"] > 0).all() and results["rank_test_score"].min() == 1
    assert search.best_name_ != "constant" and search.refit_time_ > 0
    # The pick is refitted on every row.
    assert search.predict_proba(X_many).shape == (len(X_many), 2)
    assert search.best_estimator_.classes_.tolist() == ["negative", "positive"]
    # Below the threshold, the repeated folds.
    few = FewShotLLMClassifierCV(make_clf(), fine_tune=False, random_state=0).fit(*_many_rows(8))
    assert sum(key.startswith("split") for key in few.cv_results_) == 3


def test_the_adapters_trial_fit_is_short_and_its_refit_full():
    from skllm_fewshot._finetuning import auto_steps
    from skllm_fewshot._search import ADAPTER_TRIAL_ROWS, _trial

    lora = FewShotLLMClassifier(head=LoRAFineTuning())
    trial = _trial(lora, 1000)
    assert trial.head.max_steps == auto_steps(ADAPTER_TRIAL_ROWS, 8) < auto_steps(1000, 8)
    assert lora.head.max_steps == "auto"  # the candidate itself, refitted on every row, is untouched
    fixed = FewShotLLMClassifier(head=LoRAFineTuning(max_steps=7))
    assert _trial(fixed, 1000) is fixed and _trial(FewShotLLMClassifier(), 1000).head is None


def test_the_plan_counts_the_adapters_steps(make_clf, capsys):
    pytest.importorskip("peft")
    from skllm_fewshot._finetuning import auto_steps

    quick = make_clf(head=LoRAFineTuning(max_steps=3), calibrate=False)
    search = FewShotLLMClassifierCV(
        make_clf(), candidates=[("prompt", make_clf()), ("lora", quick)], verbose=True
    )
    search.fit(X, Y)
    out = capsys.readouterr().out
    assert "adapter steps: 3 + 3 + 3 + 3 + 3 + 3 for the search, 3 more if picked" in out
    assert "s per adapter step" in out and "if the adapter is not picked" in out
    assert auto_steps(12, 8) == 20  # what "auto" would have trained
