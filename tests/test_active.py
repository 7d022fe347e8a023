"""suggest_labels: which texts to label next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV, clear_feature_cache, suggest_labels
from skllm_fewshot._active import STRATEGIES, _farthest_first, _typicality, select, unit_rows

POOL = [f"{word} {i}" for i in range(6) for word in ("great film", "awful film", "a film about trains")]


@pytest.fixture
def make(tiny_clf):
    return tiny_clf


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_suggestions_are_distinct_unlabelled_rows_of_the_pool(make, strategy):
    clf = make().fit(SENTIMENT_X, SENTIMENT_Y)
    labelled = [0, 3, 5]
    picks = suggest_labels(clf, POOL, 6, labelled=labelled, strategy=strategy, random_state=0)
    assert picks.dtype.kind == "i" and len(picks) == 6 == len(set(picks.tolist()))
    assert not set(picks.tolist()) & set(labelled) and picks.min() >= 0 and picks.max() < len(POOL)
    # No more than the pool has unlabelled; the same call gives the same picks.
    assert len(suggest_labels(clf, POOL, 100, labelled=labelled, strategy=strategy, random_state=0)) == 15
    again = suggest_labels(clf, POOL, 6, labelled=labelled, strategy=strategy, random_state=0)
    np.testing.assert_array_equal(picks, again)


def test_uncertainty_orders_the_picks(make):
    clf = make().fit(SENTIMENT_X, SENTIMENT_Y)
    proba = np.sort(clf.predict_proba(POOL), axis=1)
    margin = proba[:, -1] - proba[:, -2]
    picks = suggest_labels(clf, POOL, 5, strategy="margin")
    np.testing.assert_allclose(np.sort(margin[picks]), np.sort(margin)[:5])
    assert (np.diff(margin[picks]) >= -1e-12).all()  # best (least sure) first


def test_an_unfitted_estimator_gets_a_spread_of_the_pool(make):
    picks = suggest_labels(make(), POOL, 4, random_state=0)
    assert len(set(picks.tolist())) == 4
    # The default reads the features alone; a strategy that needs probabilities has
    # nothing to be unsure of without a fit, and falls back to diversity.
    np.testing.assert_array_equal(picks, suggest_labels(make(), POOL, 4, strategy="typical", random_state=0))
    np.testing.assert_array_equal(
        suggest_labels(make(), POOL, 4, strategy="margin", random_state=0),
        suggest_labels(make(), POOL, 4, strategy="diversity", random_state=0),
    )


def test_typical_takes_the_centre_of_each_large_cluster_first():
    rng = np.random.RandomState(0)
    # Three clusters of 20, 12 and 6 texts around orthogonal centres; in each, the row
    # nearest the centre is the most typical.
    centres = np.eye(4)[:3]
    sizes = [20, 12, 6]
    features = np.vstack([c + 0.05 * rng.randn(m, 4) for c, m in zip(centres, sizes)])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    cluster = np.repeat([0, 1, 2], sizes)
    done = np.zeros(len(features), dtype=bool)
    picks = select(features, None, done, 3, "typical", np.random.RandomState(0))
    assert cluster[picks].tolist() == [0, 1, 2]  # the largest cluster first
    typicality = _typicality(features[cluster == 0])
    assert picks[0] == int(np.argmax(typicality))
    # A labelled text covers its cluster: the picks go to the others first.
    done[25] = True
    picks = select(features, None, done, 2, "typical", np.random.RandomState(0))
    assert sorted(cluster[picks].tolist()) == [0, 2] and 25 not in picks


def test_typicality_in_blocks_equals_the_whole_matrix():
    rng = np.random.RandomState(0)
    rows = rng.randn(1500, 8)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    distance = np.sqrt(np.maximum(2 - 2 * rows @ rows.T, 0))
    np.fill_diagonal(distance, np.inf)
    expected = 1 / np.sort(distance, axis=1)[:, :20].mean(axis=1)
    np.testing.assert_allclose(_typicality(rows), expected, rtol=1e-9)
    np.testing.assert_array_equal(_typicality(rows[:1]), [1.0])  # a cluster of one


def test_unit_rows_are_centred_directions():
    features = np.array([[3.0, 1.0], [1.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    rows = unit_rows(features)
    assert rows.dtype == np.float64
    # Centred on the mean (2, 1): the common offset is gone; a row at the mean stays zero.
    np.testing.assert_allclose(rows, [[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])


def test_classes_without_rows_get_their_likeliest_text_first():
    rng = np.random.RandomState(0)
    features = rng.randn(8, 4)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    proba = np.full((8, 3), 0.1)
    proba[:, 0] = 0.8
    proba[[2, 5], 1], proba[[2, 5], 0] = [0.5, 0.6], [0.4, 0.3]  # row 5 the likeliest "1"
    proba[[1, 6], 2], proba[[1, 6], 0] = [0.7, 0.3], [0.2, 0.6]  # row 1 the likeliest "2"
    done = np.zeros(8, dtype=bool)
    done[5] = True  # labelled (its label not "1": class 1 is still missing)
    picks = select(features, proba, done, 4, "margin_diversity", rng, missing=np.array([False, True, True]))
    assert picks[:2].tolist() == [1, 2]  # the surer bet first; never a labelled row
    assert len(set(picks.tolist())) == 4 and 5 not in picks
    # Without missing classes, the same call spreads by doubt and distance alone.
    plain = select(features, proba, done, 4, "margin_diversity", np.random.RandomState(0))
    assert len(plain) == 4 and 5 not in plain


def test_zero_shot_and_declared_classes_look_for_each_class(make):
    names = ["negative", "neutral", "positive"]
    zero = make(n_examples_per_class=0).fit(None, names)
    np.testing.assert_array_equal(zero.class_count_, [0, 0, 0])
    proba = zero.predict_proba(POOL)
    picks = suggest_labels(zero, POOL, 3, strategy="margin_diversity", random_state=0)
    # One best bet per class: each pick is the pool's likeliest text of a different class.
    bets = {int(np.argmax(proba[:, c])) for c in range(3)}
    assert len(set(picks.tolist()) & bets) >= 1 and len(set(picks.tolist())) == 3
    assert picks[0] == max(bets, key=lambda row: proba[row].max())
    declared = make(classes=names, head=LogisticRegression()).fit(
        SENTIMENT_X[:4], ["negative", "positive"] * 2
    )
    proba = declared.predict_proba(POOL)
    first = suggest_labels(declared, POOL, 2, strategy="margin_diversity", random_state=0)[0]
    assert first == int(np.argmax(proba[:, 1]))  # the likeliest "neutral", the class without rows


def test_farthest_first_covers_every_cluster_and_every_predicted_class():
    rng = np.random.RandomState(0)
    centres = np.eye(3)
    features = np.vstack([c + 0.01 * rng.randn(10, 3) for c in centres])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    done = np.zeros(30, dtype=bool)
    picks = _farthest_first(features, done, 3, np.ones(30), None, rng)
    assert sorted(p // 10 for p in picks) == [0, 1, 2]
    # Labelled rows count as covered: their cluster comes last.
    done[:10] = True
    picks = _farthest_first(features, done, 2, np.ones(30), None, rng)
    assert sorted(p // 10 for p in picks) == [1, 2]
    # A rare predicted class is looked at in the first round, however unsure the others.
    predicted = np.array([0] * 29 + [1])
    weight = np.r_[np.ones(29), 0.01]
    picks = _farthest_first(features, np.zeros(30, dtype=bool), 2, weight, predicted, rng)
    assert 29 in picks


@pytest.mark.parametrize("strategy", ["typical", "margin_diversity"])
def test_the_pool_is_read_once(make, monkeypatch, strategy):
    from skllm_fewshot._scoring import PrefixCachedScorer

    clf = make(head=make_pipeline(LogisticRegression())).fit(SENTIMENT_X, SENTIMENT_Y)
    clear_feature_cache()
    scored = []
    real = PrefixCachedScorer.score_with_states

    def counting(self, prompts, layers):
        scored.append(len(prompts))
        return real(self, prompts, layers)

    monkeypatch.setattr(PrefixCachedScorer, "score_with_states", counting)
    suggest_labels(clf, POOL, 3, strategy=strategy)
    assert sum(scored) == len(POOL)


def test_search_pipeline_and_multi_label_estimators(make):
    search = FewShotLLMClassifierCV(make(), fine_tune=False, random_state=0).fit(
        SENTIMENT_X * 2, SENTIMENT_Y * 2
    )
    assert len(suggest_labels(search, POOL, 3)) == 3
    lower = make_pipeline(FunctionTransformer(lambda texts: [t.lower() for t in texts]), make())
    lower.fit(SENTIMENT_X, SENTIMENT_Y)
    assert len(suggest_labels(lower, POOL, 3)) == 3
    labels = pd.DataFrame(np.eye(3, dtype=int)[np.arange(9) % 3], columns=["red", "green", "blue"])
    multi = make().fit(SENTIMENT_X, labels)
    assert len(suggest_labels(multi, POOL, 3)) == 3
    zero_shot = make(n_examples_per_class=0).fit(None, ["negative", "neutral", "positive"])
    assert len(suggest_labels(zero_shot, POOL, 3)) == 3


def test_clear_errors():
    with pytest.raises(TypeError, match="needs a FewShotLLMClassifier"):
        suggest_labels(make_pipeline(LogisticRegression()), POOL, 2)
    with pytest.raises(ValueError, match="strategy="):
        suggest_labels(FewShotLLMClassifier(), POOL, 2, strategy="badge")
    with pytest.raises(ValueError, match="labelled must hold indices"):
        suggest_labels(FewShotLLMClassifier(), POOL, 2, labelled=[99])
    with pytest.raises(ValueError, match="n must be"):
        suggest_labels(FewShotLLMClassifier(), POOL, -1)
