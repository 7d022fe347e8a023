"""Faults in the middle of a call: an exception or a KeyboardInterrupt leaves the
estimator usable, with no half-built cache, no lock held, and later results equal
to a clean run (issue 5).

Faults are injected with ``inject_fault`` (conftest): into the scorer's ``score``,
a decoder layer's ``forward``, the engine's tokenizer, or the engine class the
classifier builds engines with.
"""

from __future__ import annotations

import copy
import pickle
import threading

import numpy as np
import pytest
import torch
from conftest import SCORINGS, SENTIMENT_X, SENTIMENT_Y, TEXTS, WORDS, Fault, completes, inject_fault

import skllm_fewshot._classifier
from skllm_fewshot._tokenization import TOKENIZER_LOCK

X, Y = SENTIMENT_X, SENTIMENT_Y
CLF_PARAMS = {"label_words": WORDS, "batch_size": 2}


@pytest.fixture(scope="module")
def clf_model(tiny_model):
    """A copy of the tiny model, so that the faults injected into its layers touch no other test."""
    return copy.deepcopy(tiny_model)


def second_layer(model):
    """Where a fault stops a forward: the first decoder layer has run (and extended any cache)."""
    return model.model.layers[1]


def prefix_snapshot(scorer):
    return [(k.clone(), v.clone()) for k, v in scorer.prefix_kv()]


def assert_prefix_unchanged(scorer, snapshot):
    assert scorer.has_prefix_cache  # kept, not dropped (prefix_kv() would rebuild it)
    kv = scorer.prefix_kv()
    assert len(kv) == len(snapshot)
    for (k, v), (k0, v0) in zip(kv, snapshot):
        assert k.shape == k0.shape and torch.equal(k, k0) and torch.equal(v, v0)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_exception_in_the_second_batch_leaves_the_estimator_usable(make_clf, scoring):
    clean = make_clf(label_scoring=scoring).fit(X, Y).predict_proba(TEXTS)
    clf = make_clf(label_scoring=scoring).fit(X, Y)
    # Not out-of-memory: no retry.
    with inject_fault(clf.engine_.scorer, "score", Fault(on_call=2, error=RuntimeError)) as score:
        with pytest.raises(RuntimeError, match="injected"):
            clf.predict_proba(TEXTS)
    # It failed in the middle: one batch done, one failed, one left.
    assert [len(prompts) for (prompts,) in score.fault.args] == [2, 2]
    np.testing.assert_array_equal(clf.predict_proba(TEXTS), clean)
    np.testing.assert_array_equal(clf.predict(TEXTS), clf.classes_[clean.argmax(1)])


@pytest.mark.parametrize("scoring", SCORINGS)
def test_interrupt_while_building_the_prefix_cache_leaves_none(make_clf, clf_model, scoring):
    # Uncalibrated: calibration scores content-free queries at fit, which builds the cache.
    clean = make_clf(label_scoring=scoring, calibrate=False).fit(X, Y).predict_proba(TEXTS)
    clf = make_clf(label_scoring=scoring, calibrate=False).fit(X, Y)
    scorer = clf.engine_.scorer
    assert not scorer.has_prefix_cache  # lazy: built on first use
    fault = Fault(on_call=1)  # the first forward is the prefix's
    with inject_fault(second_layer(clf_model), "forward", fault), pytest.raises(KeyboardInterrupt):
        clf.predict_proba(TEXTS)
    assert fault.calls == 1
    assert not scorer.has_prefix_cache  # absent, not half built
    assert not scorer.is_building
    np.testing.assert_array_equal(completes(lambda: clf.predict_proba(TEXTS)), clean)
    assert (
        scorer.has_prefix_cache and len(scorer.prefix_kv()) == clf_model.config.num_hidden_layers
    )  # complete now


def fitted_with_layout(make_clf, scoring, layout):
    clf = make_clf(label_scoring=scoring).fit(X, Y)
    # "padded" is the GPU's layout (the prefix cache expanded to the batch), forced here on the CPU.
    clf.engine_.scorer.layout = layout
    return clf


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("layout", ["packed", "padded"])
@pytest.mark.parametrize("batch", [1, 2], ids=["first-batch", "second-batch"])
def test_interrupt_during_a_batch_leaves_the_prefix_cache_intact(make_clf, clf_model, scoring, layout, batch):
    clean = fitted_with_layout(make_clf, scoring, layout).predict_proba(TEXTS)
    clf = fitted_with_layout(make_clf, scoring, layout)
    scorer = clf.engine_.scorer
    before = prefix_snapshot(scorer)
    fault = Fault(on_call=batch)  # the prefix is built already: one forward per batch
    with inject_fault(second_layer(clf_model), "forward", fault), pytest.raises(KeyboardInterrupt):
        clf.predict_proba(TEXTS)
    # The batch's forward had run layer 0, and extended its cache, when it stopped.
    assert fault.calls == batch
    assert_prefix_unchanged(scorer, before)
    assert not scorer.is_building
    np.testing.assert_array_equal(completes(lambda: clf.predict_proba(TEXTS)), clean)
    assert_prefix_unchanged(scorer, before)


def test_interrupt_while_rebuilding_the_engine_after_unpickling(make_clf):
    clf = make_clf().fit(X, Y)
    clean = clf.predict_proba(TEXTS)
    restored = pickle.loads(pickle.dumps(clf))
    with (
        inject_fault(skllm_fewshot._classifier, "PromptScorer", Fault(on_call=1)),
        pytest.raises(KeyboardInterrupt),
    ):
        restored.predict_proba(TEXTS)
    # Nothing half built is kept: the next call builds the engine, once, in another
    # thread (a lock left held would stop it).
    with inject_fault(skllm_fewshot._classifier, "PromptScorer", Fault(on_call=None)) as built:
        np.testing.assert_array_equal(completes(lambda: restored.predict_proba(TEXTS)), clean)
    assert built.fault.calls == 1


def test_interrupt_while_tokenizing_releases_the_tokenizer_lock(make_clf):
    clf = make_clf().fit(X, Y)
    clean = clf.predict_proba(TEXTS)
    with inject_fault(clf.engine_.tokens, "tokenizer", Fault(on_call=1)), pytest.raises(KeyboardInterrupt):
        clf.predict_proba(TEXTS)
    acquired = []

    def try_lock():
        acquired.append(TOKENIZER_LOCK.acquire(blocking=False))
        if acquired[-1]:
            TOKENIZER_LOCK.release()

    # From another thread: the lock is reentrant, so this one could take it again anyway.
    thread = threading.Thread(target=try_lock)
    thread.start()
    thread.join(timeout=60)
    assert acquired == [True]
    np.testing.assert_array_equal(completes(lambda: clf.predict_proba(TEXTS)), clean)


def test_a_refit_that_fails_leaves_the_previous_fit_whole(make_clf):
    clf = make_clf(label_words=None).fit(X, Y)
    before = clf.predict_proba(TEXTS)
    with pytest.raises(ValueError, match="no word for the classes"):
        clf.set_params(label_words={"x": "good"}).fit(X, ["x", "y", "z"] * 3)
    np.testing.assert_array_equal(clf.classes_, ["negative", "neutral", "positive"])
    np.testing.assert_array_equal(clf.predict_proba(TEXTS), before)
