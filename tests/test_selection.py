"""Example selection and order: stratified, interleaved, and similar per query."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y, Fault, inject_fault
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.model_selection import GridSearchCV

import skllm_fewshot._classifier
from skllm_fewshot._calibration import domain_queries, mean_log_prior
from skllm_fewshot._embedding import mean_pooled_embeddings
from skllm_fewshot._prompt import DEFAULT_INSTRUCTION, FewShotPrompt
from skllm_fewshot.reference import full_label_proba, seed_first_token_proba

X, Y = SENTIMENT_X, SENTIMENT_Y
QUERIES = ["I love it", "terrible and boring", "meh, okay", "I love it", "", "wonderful chess"]


def char_counts(texts):
    """A deterministic embedding for the tests: letter counts."""
    return np.array([[t.lower().count(ch) for ch in "abcdefghijklmnopqrstuvwxyz !'"] for t in texts], float)


def reference(clf, texts, examples_per_text):
    """Each text scored by the plain loop under the prompt with its own examples."""
    tok = clf.engine_.loaded.tokenizer
    model = clf.engine_.loaded.model
    loop = full_label_proba if clf.label_scoring == "full_label" else seed_first_token_proba
    words = dict(zip(clf.classes_, clf.label_words_))

    def prompt(examples):
        return FewShotPrompt(
            instruction=DEFAULT_INSTRUCTION if clf.instruction is None else clf.instruction,
            examples=[(t, words[c]) for t, c in examples],
            label_words=clf.label_words_,
            text_name=clf.text_name,
            label_name=clf.label_name,
            prompt_format=clf.prompt_format,
        )

    if clf.calibrate == "domain":
        # The bags are scored once, under the prompt without examples.
        bags = domain_queries(X, random_state=clf.random_state)
        domain = loop(model, tok, [prompt([]).render(b, tok) for b in bags], clf.label_words_).mean(axis=0)
    rows = []
    for text, examples in zip(texts, examples_per_text):
        queries = [text] + (["N/A", "", "[MASK]"] if clf.calibrate else [])
        p = loop(model, tok, [prompt(examples).render(q, tok) for q in queries], clf.label_words_)
        if clf.calibrate:
            prior = p[1:].mean(axis=0)
            p = p[:1] / (mean_log_prior(prior, domain) if clf.calibrate == "domain" else prior)
            p /= p.sum(axis=1, keepdims=True)
        rows.append(p[0])
    return np.array(rows)


# -- order -------------------------------------------------------------------------


def test_interleave_gives_rounds_of_one_example_per_class(make_clf):
    y = ["a", "b", "c"] * 3
    for seed in range(4):
        clf = make_clf(n_examples_per_class=3, example_order="interleave", random_state=seed).fit(X, y)
        labels = [c for _, c in clf.examples_]
        assert [sorted(labels[i : i + 3]) for i in (0, 3, 6)] == [["a", "b", "c"]] * 3
    # The class order changes between rounds or seeds: no class is always last.
    lasts = {
        make_clf(n_examples_per_class=2, example_order="interleave", random_state=s)
        .fit(X, y)
        .examples_[-1][1]
        for s in range(8)
    }
    assert len(lasts) > 1


def test_interleave_with_a_short_class(make_clf):
    y = ["a", "a", "a", "a", "b", "b", "b", "b", "c"]
    with pytest.warns(UserWarning, match="fewer than n_examples_per_class=2"):
        clf = make_clf(n_examples_per_class=2, example_order="interleave").fit(X, y)
    labels = [c for _, c in clf.examples_]
    assert sorted(labels[:3]) == ["a", "b", "c"] and sorted(labels[3:]) == ["a", "b"]


def test_shuffle_is_a_permutation_of_the_stratified_picks(make_clf):
    a = make_clf(n_examples_per_class=2).fit(X, Y)
    b = make_clf(n_examples_per_class=2, example_order="interleave").fit(X, Y)
    assert sorted(a.examples_) == sorted(b.examples_)


# -- similar ---------------------------------------------------------------------------


def test_similar_picks_the_nearest_rows_of_each_class(make_clf):
    clf = make_clf(example_selection="similar", embedding=char_counts, n_examples_per_class=2).fit(X, Y)
    assert clf.examples_ is None
    sim = cosine_similarity(char_counts(QUERIES), char_counts(X))
    for q, shown in enumerate(clf.examples_for(QUERIES)):
        assert len(shown) == 6
        for c in clf.classes_:
            rows = [i for i, label in enumerate(Y) if label == c]
            best = sorted(rows, key=lambda i: (-sim[q, i], i))[:2]
            assert sorted(t for t, label in shown if label == c) == sorted(X[i] for i in best)


def test_a_training_text_gets_itself_as_example(make_clf):
    clf = make_clf(example_selection="similar", embedding=char_counts).fit(X, Y)
    for text, label, shown in zip(X, Y, clf.examples_for(X)):
        assert (text, label) in shown


@pytest.mark.parametrize("scoring", ["full_label", "first_token"])
@pytest.mark.parametrize("calibrate", [False, True, "domain"])
def test_similar_equals_the_plain_loop_with_each_texts_examples(make_clf, scoring, calibrate):
    clf = make_clf(
        example_selection="similar",
        embedding=char_counts,
        label_scoring=scoring,
        calibrate=calibrate,
        label_words={"negative": "bad", "neutral": "meh", "positive": "good"},
    ).fit(X, Y)
    p = clf.predict_proba(QUERIES)
    expected = reference(clf, QUERIES, clf.examples_for(QUERIES))
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(p.argmax(1), expected.argmax(1))
    assert clf.content_free_proba_ is None


def test_texts_with_the_same_examples_share_one_prompt(make_clf):
    clf = make_clf(example_selection="similar", embedding=char_counts).fit(X, Y)
    shown = clf.examples_for(QUERIES)
    with inject_fault(skllm_fewshot._classifier, "PromptScorer", Fault(on_call=None)) as built:
        clf.predict_proba(QUERIES)
    # One engine per prompt, each prompt with one text's examples.
    prompts = [args[1] for args in built.fault.args]
    assert len(prompts) == len({tuple(s) for s in shown}) < len(QUERIES)
    words = dict(zip(clf.classes_, clf.label_words_))
    assert {tuple(p.examples) for p in prompts} == {tuple((t, words[c]) for t, c in s) for s in shown}


def test_similar_results_do_not_depend_on_the_other_texts(make_clf):
    clf = make_clf(example_selection="similar", embedding=char_counts, n_examples_per_class=2).fit(X, Y)
    together = clf.predict_proba(QUERIES)
    alone = np.vstack([clf.predict_proba([q]) for q in QUERIES])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    # Same examples for the same text, in the same order, whatever else is predicted.
    assert clf.examples_for(QUERIES[:1]) == clf.examples_for(QUERIES)[:1]


def test_similar_with_zero_examples_is_zero_shot(make_clf):
    similar = make_clf(example_selection="similar", embedding=char_counts, n_examples_per_class=0).fit(X, Y)
    stratified = make_clf(n_examples_per_class=0).fit(X, Y)
    np.testing.assert_allclose(similar.predict_proba(QUERIES), stratified.predict_proba(QUERIES), atol=1e-6)


def test_default_embedding_is_the_models_mean_pooled_states(make_clf, tiny_model, bpe_tokenizer):
    clf = make_clf(example_selection="similar").fit(X, Y)
    expected = mean_pooled_embeddings(tiny_model, bpe_tokenizer, list(X))
    np.testing.assert_allclose(clf.selection_.pool_embeddings_, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1, atol=1e-5)
    assert clf.predict_proba(QUERIES).shape == (len(QUERIES), 3)


def test_mean_pooled_embeddings_do_not_depend_on_padding_or_cache(tiny_model, bpe_tokenizer):
    texts = ["short", "a much longer text than the others, with commas", "", "mid length text"]
    # The cache is per model: a fresh copy of the model starts with none.
    one = np.vstack(
        [mean_pooled_embeddings(copy.deepcopy(tiny_model), bpe_tokenizer, [t], batch_size=1) for t in texts]
    )
    model = copy.deepcopy(tiny_model)
    batched = mean_pooled_embeddings(model, bpe_tokenizer, texts, batch_size=4)
    np.testing.assert_allclose(one, batched, atol=1e-5)
    assert not batched[2].any()  # no tokens, no direction
    # A second call reads the cache: the model does not run.
    with inject_fault(model.model, "forward", Fault(on_call=1, error=AssertionError)) as body:
        np.testing.assert_array_equal(
            mean_pooled_embeddings(model, bpe_tokenizer, texts[::-1]), batched[::-1]
        )
    assert body.fault.calls == 0


def test_embedding_transformer_is_cloned_and_fitted(make_clf):
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3))
    clf = make_clf(example_selection="similar", embedding=vectorizer).fit(X, Y)
    assert not hasattr(vectorizer, "vocabulary_") and hasattr(
        clf.selection_.embedder.transformer_, "vocabulary_"
    )
    p = clf.predict_proba(QUERIES)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(QUERIES), p, atol=1e-9)
    assert restored.examples_for(QUERIES) == clf.examples_for(QUERIES)


def test_similar_orders_are_reproducible(make_clf):
    a = make_clf(example_selection="similar", embedding=char_counts, n_examples_per_class=2, random_state=3)
    b = make_clf(
        example_selection="similar",
        embedding=char_counts,
        n_examples_per_class=2,
        random_state=np.random.RandomState(3),
    )
    assert a.fit(X, Y).examples_for(QUERIES) == b.fit(X, Y).examples_for(QUERIES)
    orders = {
        tuple(
            make_clf(
                example_selection="similar", embedding=char_counts, n_examples_per_class=2, random_state=s
            )
            .fit(X, Y)
            .examples_for(QUERIES[:1])[0]
        )
        for s in range(6)
    }
    assert len(orders) > 1


@pytest.mark.parametrize(
    "params, match",
    [
        ({"example_selection": "nearest"}, "'example_selection' parameter"),
        ({"example_order": "sorted"}, "'example_order' parameter"),
        ({"example_selection": "similar", "embedding": 3}, "'embedding' parameter"),
        ({"example_selection": "similar", "embedding": lambda t: np.ones(len(t))}, "one row per text"),
    ],
)
def test_bad_selection_parameters(make_clf, params, match):
    with pytest.raises(ValueError, match=match):
        make_clf(**params).fit(X, Y)


def test_grid_search_over_all_prompt_parameters(make_clf):
    words = {"negative": "bad", "neutral": "meh", "positive": "good"}
    grid = {
        "n_examples_per_class": [0, 1],
        "label_scoring": ["full_label", "first_token"],
        "calibrate": [False, True],
        "example_selection": ["stratified", "similar"],
        # Both with distinct first tokens, as label_scoring="first_token" needs.
        "label_words": [words, {"negative": "sad", "neutral": "fine", "positive": "happy"}],
        "prompt_format": ["plain", "chat"],
    }
    clf = make_clf(embedding=char_counts)
    search = GridSearchCV(clf, grid, cv=3, error_score="raise").fit(X * 2, Y * 2)
    assert len(search.cv_results_["params"]) == 64
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict_proba(QUERIES).shape == (len(QUERIES), 3)
