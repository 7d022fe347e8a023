"""Threads give the results of sequential calls: on one estimator, on two estimators
sharing one cached model, and on an estimator whose engine is rebuilt after
unpickling while two threads use it (issue 5)."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pytest
from conftest import MIXED, SCORINGS, SENTIMENT_X, SENTIMENT_Y, WORDS, Fault, inject_fault, run_together
from sklearn.base import clone

import skllm_fewshot._classifier

X, Y = SENTIMENT_X, SENTIMENT_Y
CLF_PARAMS = {"label_words": WORDS, "batch_size": 2}


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
def test_two_threads_on_one_estimator_match_sequential_calls(make_clf, scoring, prompt_format):
    sequential = make_clf(label_scoring=scoring, prompt_format=prompt_format).fit(X, Y)
    a, b = MIXED, list(reversed(MIXED))
    expected_a, expected_b = sequential.predict_proba(a), sequential.predict_proba(b)
    for _ in range(3):
        # A fresh estimator each round: both threads race to build its lazy prefix cache.
        clf = make_clf(label_scoring=scoring, prompt_format=prompt_format).fit(X, Y)
        # The lambdas run before the loop moves on: binding the loop variable late is what is meant.
        got_a, got_b = run_together(lambda: clf.predict_proba(a), lambda: clf.predict_proba(b))  # noqa: B023
        np.testing.assert_array_equal(got_a, expected_a)
        np.testing.assert_array_equal(got_b, expected_b)


def test_two_estimators_sharing_one_cached_model_match_sequential_calls(path_clf):
    one = path_clf(label_scoring="full_label", n_examples_per_class=2).fit(X, Y)
    two = path_clf(label_scoring="first_token", prompt_format="chat", random_state=3).fit(X, Y)
    assert one.engine_.loaded.model is two.engine_.loaded.model  # one model, from the process-wide cache
    expected = [one.predict_proba(MIXED), two.predict_proba(MIXED)]
    for _ in range(3):
        one, two = clone(one).fit(X, Y), clone(two).fit(X, Y)
        got = run_together(lambda: one.predict_proba(MIXED), lambda: two.predict_proba(MIXED))  # noqa: B023
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("scoring", SCORINGS)
def test_unpickled_estimator_used_from_two_threads_at_once(path_clf, scoring):
    clf = path_clf(label_scoring=scoring).fit(X, Y)
    expected = clf.predict_proba(MIXED)
    blob = pickle.dumps(clf)
    with inject_fault(skllm_fewshot._classifier, "PromptScorer", Fault(on_call=None)) as built:
        for i in range(3):
            restored = pickle.loads(blob)
            assert built.fault.calls == i  # the engine is not in the pickle: nothing built yet
            got = run_together(lambda: restored.predict_proba(MIXED), lambda: restored.predict(MIXED))  # noqa: B023
            np.testing.assert_array_equal(got[0], expected)
            np.testing.assert_array_equal(got[1], clf.classes_[expected.argmax(1)])
    assert built.fault.calls == 3  # once per restored estimator, not once per thread


class OverlapCounter:
    """Proxy of a tokenizer that records how many threads are inside a call at once."""

    def __init__(self, tokenizer):
        self.tokenizer, self.guard = tokenizer, threading.Lock()
        self.inside = self.most_inside = 0

    def __call__(self, *args, **kwargs):
        with self.guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            time.sleep(0.001)  # widens the window in which another thread could enter
            return self.tokenizer(*args, **kwargs)
        finally:
            with self.guard:
                self.inside -= 1

    def __getattr__(self, name):
        return getattr(self.tokenizer, name)


def test_tokenizer_calls_never_overlap_across_threads(make_clf):
    # A fast tokenizer sets split_special_tokens on its shared backend just before
    # encoding: overlapping calls read "<|im_start|>" in a query as the special token.
    clf = make_clf(prompt_format="chat").fit(X, Y)
    tokens = clf.engine_.tokens
    special, plain = ["x <|im_start|> y", "<|im_end|>"] * 4, X
    expected = tokens.encode(special), tokens.encode(plain)
    with inject_fault(tokens, "tokenizer", OverlapCounter) as counter:
        for _ in range(10):
            got = run_together(lambda: tokens.encode(special), lambda: tokens.encode(plain))
            assert got[0] == expected[0] and got[1] == expected[1]
    assert counter.most_inside == 1
