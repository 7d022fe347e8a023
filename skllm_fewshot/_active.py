"""Which texts to label next: the typical texts of the pool, or the model's doubt, spread
over the model's own features.

``suggest_labels`` reads a pool of unlabelled texts once with the estimator (its
features and its probabilities come from the same pass, through the engine's feature
cache) and returns the indices of the texts most worth labelling, best first. The
default, ``"typical"``, cuts the pool into as many clusters as there will be labelled
texts and labels the most typical text of each cluster that has none yet: with a few
labels per class, the texts that stand for many others teach a classifier more than
those it doubts. ``"margin_diversity"`` weighs a text by the fitted estimator's
uncertainty and spreads the batch by distance in the model's features and across the
classes the estimator predicts; a class that no labelled row shows yet
(``class_count_`` 0: every class of a zero-shot fit, or one declared with the
classifier's ``classes=``) gets first the text the estimator finds likeliest to be of
it. Without labels or a fit, the strategies that need probabilities fall back to
diversity alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._classifier import FewShotLLMClassifier
from ._ensemble import ProductOfExperts
from ._feature_extraction import LLMFeatures
from ._search import FewShotLLMClassifierCV
from ._validation import check_texts

__all__ = ["STRATEGIES", "select", "suggest_labels", "unit_rows"]

STRATEGIES = ("typical", "margin_diversity", "margin", "entropy", "diversity", "random")

# "typical" is TypiClust (Hacohen, Dekel and Weinshall, "Active learning on a budget",
# ICML 2022): with a handful of labels a classifier learns more from the texts that
# stand for many others than from the ones it doubts. Their settings: typicality over
# the 20 nearest neighbours, at most 500 clusters.
TYPICAL_NEIGHBOURS = 20
MAX_CLUSTERS = 500
# The strategies that read the pool's features alone, without the estimator's probabilities.
FEATURES_ONLY = ("typical", "diversity")


def suggest_labels(
    estimator: BaseEstimator,
    X: Sequence[str],
    n: int,
    *,
    labelled: Sequence[int] | None = None,
    strategy: str = "typical",
    random_state: Any = None,
) -> np.ndarray:
    """The indices of the ``n`` texts of ``X`` most worth labelling next, best first.

    Parameters
    ----------
    estimator : FewShotLLMClassifier, FewShotLLMClassifierCV or Pipeline
        Fitted (on the labelled rows, or zero-shot on the label names with
        ``fit(None, names)``) or not fitted (no labels yet). A ``Pipeline`` must end
        with one of these; its earlier steps transform ``X`` first.
    X : sequence of str of shape (n_texts,)
        The pool, the labelled texts included or not.
    n : int
        How many texts to suggest (fewer if the pool has fewer unlabelled ones).
    labelled : sequence of int, default=None
        Indices of ``X`` already labelled: never suggested, and counted as covered
        when the batch is spread out.
    strategy : {"typical", "margin_diversity", "margin", "entropy", "diversity", \
"random"}, default="typical"
        ``"typical"``: the pool (with the labelled texts) is cut by k-means into as
        many clusters as there will be labelled texts; each pick is the most typical
        text (the smallest mean distance to its 20 nearest neighbours in its cluster)
        of the largest cluster that no labelled text or earlier pick is in. It reads
        the features alone, fitted estimator or not, and was the most accurate with a
        few labels per class (``docs/active.md``).
        ``"margin_diversity"``: first, for each class that no labelled row shows
        yet (see the classifier's ``classes=``), the text likeliest to be of it;
        then the smallest margin between the two likeliest classes (for
        multi-label, the probability nearest 0.5, averaged over the labels), times
        the distance to the nearest text labelled or already chosen, taken in turn
        over the predicted classes; ``"margin"`` and ``"entropy"``: the most
        uncertain texts alone; ``"diversity"``: the farthest-first traversal of the
        features; ``"random"``: a random draw, the baseline. With an unfitted
        estimator the strategies that need probabilities fall back to
        ``"diversity"``.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means of ``"typical"``, breaks ties, and draws for ``"random"``.

    Returns
    -------
    ndarray of int of shape (min(n, unlabelled texts),)

    Notes
    -----
    Cost: one pass of the model over the pool (the features and the probabilities
    of a prompt's texts come from one pass, and a pool already read under the same
    prompt is read from the feature cache), plus the picks. Measured with the
    embedded model on one CPU thread (``docs/active.md``): 400 short reviews took
    1.10 times one ``predict_proba`` pass over them with ``"typical"`` and 1.05 times
    with ``"margin_diversity"``, and a second call on the same pool 0.02 s. A pool of
    10,000 texts takes its pass (about 0.1 s a short text here), then the picks:
    ``"typical"``'s k-means (at most 500 clusters, 3 starts) and neighbours (in
    blocks of 1,024 rows) took 4.7 s and 198 MiB at their peak on 10,000 rows of
    SmolLM2's width. With a fine-tuned adapter as the pick the probabilities take a
    second pass.

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier, suggest_labels
    >>> from skllm_fewshot.datasets import load_example_tweets
    >>> tweets, _ = load_example_tweets()
    >>> names = sorted(tweets["SECTOR"].unique())
    >>> clf = FewShotLLMClassifier(n_examples_per_class=0).fit(None, names)  # doctest: +SKIP
    >>> suggest_labels(clf, tweets["TEXTO"], 7, random_state=0)  # doctest: +SKIP
    array([...])
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"strategy={strategy!r} is not valid; use one of {', '.join(map(repr, STRATEGIES))}."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}.")
    final, texts = _final_step(estimator, X)
    done = _labelled_mask(labelled, len(texts))
    available = np.flatnonzero(~done)
    n = min(int(n), len(available))
    rng = check_random_state(random_state)
    if n == 0:
        return np.zeros(0, dtype=int)
    if strategy == "random":  # the baseline reads nothing
        return select(None, None, done, n, strategy, rng)
    fitted = _is_fitted(final)
    if not fitted and strategy not in FEATURES_ONLY:
        strategy = "diversity"  # no labels and no fit: nothing to be uncertain about
    features = _features(final, texts, fitted)
    proba = None if strategy in FEATURES_ONLY else np.asarray(final.predict_proba(texts), dtype=np.float64)
    missing = None
    if fitted and hasattr(final, "class_count_"):
        missing = np.asarray(final.class_count_) == 0
    return select(
        features,
        proba,
        done,
        n,
        strategy,
        rng,
        multi_label=bool(getattr(final, "multi_label_", False)),
        missing=missing,
    )


def select(
    features: np.ndarray,
    proba: np.ndarray | None,
    done: np.ndarray,
    n: int,
    strategy: str,
    rng: np.random.RandomState,
    multi_label: bool = False,
    missing: np.ndarray | None = None,
) -> np.ndarray:
    """The picks of ``strategy`` from a pool's features (rows of unit length) and probabilities.

    Parameters
    ----------
    features : ndarray of shape (n_texts, n_features) or None
        ``None`` only for ``"random"``.
    proba : ndarray of shape (n_texts, n_classes) or None
        ``None`` only for ``"typical"``, ``"diversity"`` and ``"random"``.
    done : ndarray of bool of shape (n_texts,)
        The labelled texts.
    n : int
    strategy : str
        One of :data:`STRATEGIES`.
    rng : RandomState
    multi_label : bool, default=False
        ``proba`` holds each label's own probability.
    missing : ndarray of bool of shape (n_classes,), default=None
        The classes (labels) without a labelled row (with a positive one). With
        ``"margin_diversity"``, the first picks are, for each of them in turn, the
        text the estimator finds likeliest to be of it: the one best bet per class
        that the labeller can confirm or correct.

    Returns
    -------
    ndarray of int
    """
    available = np.flatnonzero(~done)
    n = min(n, len(available))
    if strategy == "random":
        return rng.choice(available, size=n, replace=False)
    if strategy == "diversity":
        return _farthest_first(features, done, n, np.ones(len(features)), None, rng)
    if strategy == "typical":
        return _typical(features, done, n, rng)
    uncertainty, predicted = _uncertainty(proba, strategy, multi_label)
    if strategy in ("margin", "entropy"):
        order = available[np.lexsort((rng.random_sample(len(available)), -uncertainty[available]))]
        return order[:n]
    found = _best_bets(proba, done, n, missing) if missing is not None else []
    if not found:
        return _farthest_first(features, done, n, uncertainty, predicted, rng)
    covered = done.copy()
    covered[found] = True
    rest = _farthest_first(features, covered, n - len(found), uncertainty, predicted, rng)
    return np.concatenate([np.array(found, dtype=int), rest])


def _best_bets(proba: np.ndarray, done: np.ndarray, n: int, missing: np.ndarray) -> list[int]:
    """For each class without a labelled row, the unlabelled text likeliest to be of it,
    the surest bets first (at most ``n``)."""
    free = ~done
    left = list(np.flatnonzero(missing))
    picks: list[int] = []
    while left and len(picks) < n and free.any():
        best = [int(np.argmax(np.where(free, proba[:, c], -np.inf))) for c in left]
        turn = int(np.argmax([proba[row, c] for row, c in zip(best, left)]))
        picks.append(best[turn])
        free[best[turn]] = False
        left.pop(turn)
    return picks


def _final_step(estimator: Any, X: Any) -> tuple[Any, np.ndarray]:
    """The library's estimator at the end of ``estimator``, and ``X`` as it receives it."""
    texts = X
    final = estimator
    if isinstance(estimator, Pipeline):
        final = estimator.steps[-1][1]
        if len(estimator.steps) > 1:
            try:
                texts = estimator[:-1].transform(X)
            except NotFittedError as exc:
                raise NotFittedError(
                    "The pipeline's steps before its classifier are not fitted, so the pool cannot be "
                    "passed through them; fit the pipeline, or suggest with its last step alone."
                ) from exc
    if not isinstance(final, (FewShotLLMClassifier, FewShotLLMClassifierCV)):
        raise TypeError(
            "suggest_labels needs a FewShotLLMClassifier, a FewShotLLMClassifierCV, or a Pipeline ending "
            f"with one: it reads the pool with the estimator's language model. Got {type(final).__name__}."
        )
    return final, check_texts(texts)


def _labelled_mask(labelled: Any, n_texts: int) -> np.ndarray:
    done = np.zeros(n_texts, dtype=bool)
    if labelled is None:
        return done
    rows = np.asarray(labelled)
    if rows.dtype == bool:
        if rows.shape != (n_texts,):
            raise ValueError(
                f"labelled as a mask must have one entry per text ({n_texts}); got {rows.shape}."
            )
        return rows.copy()
    if rows.size and (
        not np.issubdtype(rows.dtype, np.integer) or rows.min() < -n_texts or rows.max() >= n_texts
    ):
        raise ValueError(f"labelled must hold indices of X (0 to {n_texts - 1}); got {labelled!r}.")
    done[rows.astype(int)] = True
    return done


def _is_fitted(estimator: Any) -> bool:
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    return True


def _reader(estimator: Any) -> FewShotLLMClassifier | None:
    """The fitted FewShotLLMClassifier whose features a fitted estimator reads (first found)."""
    queue = [estimator]
    while queue:
        est = queue.pop(0)
        if isinstance(est, FewShotLLMClassifier) and _is_fitted(est):
            return est
        if isinstance(est, FewShotLLMClassifierCV) and _is_fitted(est):
            queue.append(est.best_estimator_)
        elif isinstance(est, LLMFeatures) and hasattr(est, "classifier_"):
            queue.append(est.classifier_)
        elif isinstance(est, Pipeline):
            queue.extend(step for _, step in est.steps)
        elif isinstance(est, FeatureUnion):
            queue.extend(transformer for _, transformer in est.transformer_list)
        elif isinstance(est, ProductOfExperts) and hasattr(est, "estimators_"):
            queue.extend(est.estimators_)
    return None


def _features(final: Any, texts: np.ndarray, fitted: bool) -> np.ndarray:
    """The model's features of the pool, each row of unit length."""
    reader = _reader(final) if fitted else None
    if reader is not None:
        features = reader.features(texts)
    else:
        from ._embedding import TextEmbedder

        source = final if isinstance(final, FewShotLLMClassifier) else final._classifier()
        spec = source._spec()
        features = TextEmbedder(None, spec).fit(list(texts)).transform(list(texts))
    return unit_rows(features)


def unit_rows(features: np.ndarray) -> np.ndarray:
    """The rows centred on their mean and scaled to unit length, in float64: the distances
    and k-means of the strategies then see directions, not the features' common offset."""
    features = np.asarray(features, dtype=np.float64)
    features = features - features.mean(axis=0)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms > 0, norms, 1.0)


def _uncertainty(proba: np.ndarray, strategy: str, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each text's uncertainty in [0, 1] (higher: more worth a label) and its predicted class index."""
    if multi_label:
        # Each label on its own: nearest 0.5 is least sure; the likeliest label names the text's group.
        return (1.0 - np.abs(2.0 * proba - 1.0)).mean(axis=1), proba.argmax(axis=1)
    predicted = proba.argmax(axis=1)
    if strategy == "entropy":
        entropy = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)
        return entropy / np.log(max(2, proba.shape[1])), predicted
    top = np.sort(proba, axis=1)[:, ::-1]
    margin = top[:, 0] - (top[:, 1] if proba.shape[1] > 1 else 0.0)
    return 1.0 - margin, predicted


def _farthest_first(
    features: np.ndarray,
    done: np.ndarray,
    n: int,
    weight: np.ndarray,
    predicted: np.ndarray | None,
    rng: np.random.RandomState,
) -> np.ndarray:
    """Greedy picks of the largest weight x distance to the nearest covered text.

    With ``predicted``, the picks go round the predicted classes (those with the
    fewest picks so far first), so that each class the estimator can name is looked
    at early, the rare ones included.
    """
    # Rows of unit length: the squared distance is 2 - 2 x.y, one matrix product per update.
    if done.any():
        covered = np.flatnonzero(done)
        distance = np.full(len(features), np.inf)
        for start in range(0, len(covered), 256):  # bounded memory for many labelled rows
            block = features[covered[start : start + 256]]
            distance = np.minimum(distance, (2.0 - 2.0 * features @ block.T).min(axis=1))
        distance = np.maximum(distance, 0.0)
    else:
        distance = np.ones(len(features))  # nothing covered yet: the weights alone decide the first
    free = ~done
    picks: list[int] = []
    taken = {} if predicted is None else {c: 0 for c in np.unique(predicted)}
    jitter = rng.random_sample(len(features)) * 1e-9
    while len(picks) < n:
        candidates = free.copy()
        if predicted is not None:
            open_classes = [c for c in taken if (candidates & (predicted == c)).any()]
            if open_classes:
                fewest = min(taken[c] for c in open_classes)
                turn = [c for c in open_classes if taken[c] == fewest]
                candidates &= np.isin(predicted, turn)
        score = np.where(candidates, weight * distance + jitter, -np.inf)
        best = int(np.argmax(score))
        picks.append(best)
        free[best] = False
        if predicted is not None:
            taken[predicted[best]] += 1
        distance = np.minimum(distance, np.maximum(2.0 - 2.0 * features @ features[best], 0.0))
    return np.array(picks, dtype=int)


def _typical(features: np.ndarray, done: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """TypiClust's picks: the most typical text of each of the largest clusters not covered yet.

    The pool is cut into as many k-means clusters as there will be labelled texts (at
    most ``MAX_CLUSTERS``); the clusters are taken the least covered first (by the
    labelled texts and the picks so far), then the largest.
    """
    import warnings

    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n_clusters = int(min(done.sum() + n, MAX_CLUSTERS, len(features)))
    with warnings.catch_warnings():  # a pool with repeated texts has fewer distinct points
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans = KMeans(n_clusters, n_init=3, random_state=rng.randint(np.iinfo(np.int32).max))
        cluster = kmeans.fit_predict(features)
    sizes = np.bincount(cluster, minlength=n_clusters)
    covered = np.bincount(cluster[done], minlength=n_clusters)
    free = ~done
    picks: list[int] = []
    while len(picks) < n:
        open_clusters = np.bincount(cluster[free], minlength=n_clusters) > 0
        # The least covered first, then the largest (lexsort's last key is the first).
        order = np.lexsort((-sizes, covered))
        chosen = order[open_clusters[order]][0]
        members = np.flatnonzero(cluster == chosen)
        typicality = np.where(free[members], _typicality(features[members]), -np.inf)
        best = int(members[np.argmax(typicality)])
        picks.append(best)
        free[best] = False
        covered[chosen] += 1
    return np.array(picks, dtype=int)


def _typicality(rows: np.ndarray) -> np.ndarray:
    """The inverse of each row's mean distance to its nearest neighbours among ``rows``
    (rows of unit length; computed in blocks, so that a large cluster fits in memory)."""
    k = min(TYPICAL_NEIGHBOURS, len(rows) - 1)
    if k < 1:
        return np.ones(len(rows))
    mean_distance = np.empty(len(rows))
    for start in range(0, len(rows), 1024):
        block = np.sqrt(np.maximum(2.0 - 2.0 * rows[start : start + 1024] @ rows.T, 0.0))
        block[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        mean_distance[start : start + len(block)] = np.partition(block, k - 1, axis=1)[:, :k].mean(axis=1)
    return 1.0 / (mean_distance + 1e-12)
