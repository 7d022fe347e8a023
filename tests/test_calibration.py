"""Calibration: the content-free queries, the in-domain bags of words, and how they combine."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._calibration import domain_queries, mean_log_prior
from skllm_fewshot._engine import CONTENT_FREE, calibrated

X, Y = SENTIMENT_X, SENTIMENT_Y
QUERIES = ["I love it", "terrible and boring", "meh, okay", "", "wonderful chess"]


def by_hand(raw, prior, texts):
    return calibrated(raw.predict_proba(texts), prior)


def test_bags_are_the_texts_words_as_long_as_a_text():
    texts = ["a good film", "a really bad plot twist", "fine"]
    bags = domain_queries(texts, n_queries=50, random_state=0)
    words = {w for t in texts for w in t.split()}
    assert len(bags) == 50
    assert all(len(b.split()) == 3 for b in bags)  # 9 words over 3 texts
    assert set(" ".join(bags).split()) <= words
    # Every word is drawn, not only the first text's.
    assert set(" ".join(bags).split()) == words
    assert domain_queries(texts, n_queries=50, random_state=0) == bags
    assert domain_queries(texts, n_queries=50, random_state=1) != bags


@pytest.mark.parametrize("texts", [[], ["", "  "]])
def test_no_words_no_bags(texts):
    assert domain_queries(texts, random_state=0) == []


def test_mean_log_prior_is_the_normalised_geometric_mean():
    a, b = np.array([0.7, 0.2, 0.1]), np.array([0.1, 0.2, 0.7])
    np.testing.assert_allclose(mean_log_prior(a, b), np.sqrt(a * b) / np.sqrt(a * b).sum())
    np.testing.assert_allclose(mean_log_prior(a, a), a)
    # Dividing by it is dividing by each prior's square root.
    p = np.array([[0.5, 0.3, 0.2]])
    twice = calibrated(calibrated(p, np.sqrt(a)), np.sqrt(b))
    np.testing.assert_allclose(calibrated(p, mean_log_prior(a, b)), twice)


def test_domain_divides_by_content_free_and_bags_in_log_space(make_clf):
    raw = make_clf(calibrate=False, random_state=0).fit(X, Y)
    clf = make_clf(calibrate="domain", random_state=0).fit(X, Y)
    content_free = raw.predict_proba(list(CONTENT_FREE)).mean(axis=0)
    domain = raw.predict_proba(domain_queries(X, random_state=0)).mean(axis=0)
    np.testing.assert_allclose(clf.content_free_proba_, content_free, atol=1e-9)
    expected = by_hand(raw, mean_log_prior(content_free, domain), QUERIES)
    p = clf.predict_proba(QUERIES)
    np.testing.assert_allclose(p, expected, atol=1e-9)
    # Neither prior alone.
    assert not np.allclose(p, by_hand(raw, content_free, QUERIES), atol=1e-6)
    assert not np.allclose(p, by_hand(raw, domain, QUERIES), atol=1e-6)
    # Estimated at fit: a text's probabilities do not depend on the texts beside it.
    np.testing.assert_allclose(clf.predict_proba(QUERIES[:1]), p[:1], atol=1e-9)


def test_domain_is_the_default_and_follows_random_state(make_clf):
    assert FewShotLLMClassifier().calibrate == "domain"
    a = make_clf(random_state=0).fit(X, Y).predict_proba(QUERIES)
    np.testing.assert_array_equal(make_clf(random_state=0).fit(X, Y).predict_proba(QUERIES), a)
    # Another seed draws other examples and other bags.
    assert not np.allclose(make_clf(random_state=1).fit(X, Y).predict_proba(QUERIES), a)


def test_domain_without_texts_is_content_free_calibration(make_clf):
    zero = make_clf(n_examples_per_class=0).fit(None, sorted(set(Y)))
    content_free = make_clf(n_examples_per_class=0, calibrate=True).fit(None, sorted(set(Y)))
    assert zero.calibrate == "domain"
    np.testing.assert_allclose(zero.predict_proba(QUERIES), content_free.predict_proba(QUERIES), atol=1e-12)


def test_bad_calibrate_is_explained(make_clf):
    with pytest.raises(ValueError, match=r"'calibrate' parameter .* Got 'contextual'"):
        make_clf(calibrate="contextual").fit(X, Y)
