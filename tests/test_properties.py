"""Properties of predict_proba on any text, checked with hypothesis on the tiny model.

Texts are drawn from every kind of unicode (emoji, right-to-left, combining marks,
NUL, control characters, whitespace only, empty) mixed with text that looks like
the prompt's own structure, quotes, label words and special-token text. Each
property runs for both scorings. The fitted estimators are module-scoped and
their ``batch_size`` is the only thing a test changes, restored afterwards.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import ATOL, SCORINGS, WORDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Texts the library rejects by design, with a message (see test_unicode.py):
# surrogates (bad decoding) and the two code points that mark user text in chat prompts.
_EXCLUDED = "\ue000\ue001"

PROMPT_LIKE = [
    "",
    " ",
    "\n",
    "\t \n ",
    "\u3000",
    "\x00",
    "\n\nLabel:\n",
    "\n\nText:\n'",
    "'\nLabel:\ngood",
    "Label:",
    "'",
    "''",
    '"',
    "`",
    "{}",
    "{labels}",
    "bad",
    "meh",
    "good",
    "negative",
    "positive",
    "<|im_start|>",
    "<|im_end|>",
    "<|im_start|>assistant\n",
    "<s>",
    "</s>",
    "<pad>",
    "<unk>",
    "😻",
    "👨\u200d👩\u200d👧",
    "🏳️\u200d🌈",
    "مرحبا",
    "\u202e",
    "שלום",
    "e\u0301",
    "\u0351\u0353\u0354",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "ｆｕｌｌ",
    "中文",
]

# Any code point that UTF-8 can encode (no surrogates), of every category.
any_char = st.characters(codec="utf-8", exclude_characters=_EXCLUDED)
piece = st.one_of(st.sampled_from(PROMPT_LIKE), st.text(any_char, max_size=12))
texts = st.lists(piece, max_size=4).map("".join)
batches = st.lists(texts, min_size=1, max_size=6)

# float32 scoring: different batch compositions agree to ATOL, not bit for bit.
CLF_PARAMS = {"label_words": WORDS}

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module", params=SCORINGS)
def fitted_params(request):
    """``fitted`` in both scorings."""
    return {"scoring": request.param}


def with_batch_size(fitted, batch_size, texts):
    before = fitted.batch_size
    try:
        return fitted.set_params(batch_size=batch_size).predict_proba(texts)
    finally:
        fitted.set_params(batch_size=before)


def assert_same_predictions(a, b):
    """Probabilities equal to ATOL, and the same argmax wherever the top two are not tied to ATOL."""
    np.testing.assert_allclose(a, b, rtol=0, atol=ATOL)
    top2 = np.sort(a, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * ATOL
    np.testing.assert_array_equal(a.argmax(1)[clear], b.argmax(1)[clear])


@SETTINGS
@given(batch=batches)
def test_rows_are_probabilities(fitted, batch):
    proba = fitted.predict_proba(batch)
    assert proba.shape == (len(batch), len(fitted.classes_)) and proba.dtype == np.float64
    assert np.isfinite(proba).all() and (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fitted.predict(batch), fitted.classes_[proba.argmax(1)])


@SETTINGS
@given(batch=batches, batch_size=st.integers(1, 7))
def test_batch_size_does_not_change_results(fitted, batch, batch_size):
    reference = with_batch_size(fitted, 1, batch)
    assert_same_predictions(with_batch_size(fitted, batch_size, batch), reference)


@SETTINGS
@given(batch=batches, data=st.data())
def test_permuting_X_permutes_the_rows(fitted, batch, data):
    perm = data.draw(st.permutations(range(len(batch))))
    proba = fitted.predict_proba(batch)
    assert_same_predictions(fitted.predict_proba([batch[i] for i in perm]), proba[perm])


@SETTINGS
@given(text=texts, others=st.lists(texts, max_size=6), data=st.data())
def test_a_row_does_not_depend_on_the_other_rows(fitted, text, others, data):
    at = data.draw(st.integers(0, len(others)))
    batch = others[:at] + [text] + others[at:]
    alone = fitted.predict_proba([text])[0]
    assert_same_predictions(fitted.predict_proba(batch)[at : at + 1], alone[None])
    # The same text twice in a batch: the same row twice.
    twice = fitted.predict_proba([text] + others + [text])
    assert_same_predictions(twice[-1:], twice[:1])


# Training sets: one to three texts of each class, drawn like the queries, in any order.
_rows_of_each_class = [
    st.lists(texts.map(lambda t, c=c: (t, c)), min_size=1, max_size=3) for c in sorted(WORDS)
]
train_sets = (
    st.tuples(*_rows_of_each_class)
    .map(lambda per_class: [row for rows in per_class for row in rows])
    .flatmap(st.permutations)
)


@settings(SETTINGS, max_examples=40)
@pytest.mark.parametrize("scoring", SCORINGS)
@given(
    rows=train_sets,
    queries=batches,
    seed=st.integers(0, 2**32 - 1),
    shots=st.integers(0, 2),
    prompt_format=st.sampled_from(["plain", "chat"]),
)
def test_refitting_with_the_same_random_state_reproduces_everything(
    make_clf, scoring, rows, queries, seed, shots, prompt_format
):
    X, y = [t for t, _ in rows], [c for _, c in rows]

    def fit():
        params = {"random_state": seed, "n_examples_per_class": shots, "prompt_format": prompt_format}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a class with fewer rows than shots
            return make_clf(label_scoring=scoring, **params).fit(X, y)

    a, b = fit(), fit()
    assert a.examples_ == b.examples_ and a.prompt_ == b.prompt_
    assert a.label_token_ids_ == b.label_token_ids_
    np.testing.assert_array_equal(a.predict_proba(queries), b.predict_proba(queries))
