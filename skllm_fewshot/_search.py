"""The few-shot classifier that picks, on the labelled rows, how to use them.

With a few rows per class the prompt or a head may win; with dozens a head on the
model's features, or its union with character n-grams where the texts name things
(brands, products), is far ahead. :class:`FewShotLLMClassifierCV` cross-validates these
candidates on the rows it is given and refits the best, as ``LogisticRegressionCV``
picks its ``C``; with one row per class, where nothing can be cross-validated, it
multiplies the prompt's probabilities by a union's (``docs/accuracy.md`` measures it
against TF-IDF for k = 1 to 32 rows per class).
Every candidate reads the same prompt's features, so a row is run through the model
once per fold's prompt, not once per candidate.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import time
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import check_scoring, get_scorer_names, log_loss, make_scorer
from sklearn.model_selection import (
    GridSearchCV,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    ShuffleSplit,
    StratifiedShuffleSplit,
    check_cv,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.utils import _safe_indexing, check_random_state, get_tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d
from tqdm.auto import tqdm

from ._calibration import N_DOMAIN_QUERIES
from ._classifier import FewShotLLMClassifier
from ._engine import CONTENT_FREE
from ._ensemble import ProductOfExperts
from ._feature_extraction import LLMFeatures
from ._finetuning import LoRAFineTuning, auto_steps
from ._heads import ClassMeans, share_out
from ._multilabel import check_indicator, is_indicator
from ._validation import (
    HasMethods,
    StrOptions,
    check_declared_classes,
    check_declared_target,
    check_named_estimators,
    class_counts,
    copy_input_attributes,
    shared_input_tags,
    validate_params,
)

__all__ = [
    "CONSTANT",
    "FINE_TUNE_MAX_CLASSES",
    "FINE_TUNE_MIN_ROWS",
    "MIN_ROWS",
    "NOISE_SE",
    "FewShotLLMClassifierCV",
    "default_candidates",
    "default_cv",
    "default_fallback",
    "pick_within_noise",
]


# fine_tune="auto": the default candidates include fine-tuning (with peft installed)
# from FINE_TUNE_MIN_ROWS rows in the rarest class and for at most FINE_TUNE_MAX_CLASSES
# classes. Measured with 5 draws at 8 rows per class (benchmarks/bench_pick_finetune.py,
# docs/accuracy_log.md): on SST-2 (2 classes) the pick took it in 3 draws of 5 and went
# from 0.751 to 0.810; on TREC (6 classes) the adapter was 14 points below the frozen
# pick and never taken, on MAS (7, one draw) 40 points below, and its folds cost 4 and
# 13 minutes on a CPU thread against half a minute for every other candidate (each row
# is scored with every label's words, so a step costs more with each class). Below 8
# rows it was not measured, and the folds would train it on 2-5 rows per class.
FINE_TUNE_MIN_ROWS = 8
FINE_TUNE_MAX_CLASSES = 4

# From HOLDOUT_MIN_ROWS rows in the rarest class (and with cv=None) the search fits each
# candidate once, on a stratified HOLDOUT_SIZE of the rows held out, instead of on
# repeated folds: the rows are then many enough for one split to tell the candidates
# apart, and the fit costs one pass and one adapter more than the refit, not four.
# The held-out rows are scored in HOLDOUT_BLOCKS disjoint blocks, the evidence the
# pick's rule weighs, and the adapter's trial fit trains for the steps of at most
# ADAPTER_TRIAL_ROWS rows (its refit on every row takes its full number of steps). At
# 128 rows per class on SST-2 a trial of 32 steps (64 rows) undersold the adapter on one
# draw of two (a union picked, 0.823, where the adapter scored 0.893); with 64 steps the
# search picked it, in 1.6 times its refit on a quiet machine (docs/accuracy_log.md).
HOLDOUT_MIN_ROWS = 64
HOLDOUT_SIZE = 0.25
HOLDOUT_BLOCKS = 8
ADAPTER_TRIAL_ROWS = 128


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000)


def _char_ngrams() -> TfidfVectorizer:
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)


def _prompt(classifier: FewShotLLMClassifier, made: str) -> FewShotLLMClassifier:
    """``classifier`` without a head, checked to read every row under one prompt."""
    if classifier.example_selection != "stratified":
        raise ValueError(
            "The default candidates and fallback read every row under one prompt (heads, unions, batch "
            f"calibration); use example_selection='stratified', or pass {made}=. "
            f"Got {classifier.example_selection!r}."
        )
    return clone(classifier).set_params(head=None)


def _union(
    prompt: FewShotLLMClassifier, C: float, multi_label: bool = False, class_means: bool = False
) -> Pipeline:
    # Of unit length like a TF-IDF row and weighted 0.5, the model's block weighs the
    # same against the n-grams whatever the hidden size.
    model_block = make_pipeline(LLMFeatures(clone(prompt)), StandardScaler(), Normalizer())
    features = FeatureUnion(
        [("llm", model_block), ("tfidf", _char_ngrams())], transformer_weights={"llm": 0.5}
    )
    if multi_label:
        return make_pipeline(features, OneVsRestClassifier(_logistic(C)))
    return make_pipeline(features, ClassMeans(_logistic(C)) if class_means else _logistic(C))


def default_candidates(
    classifier: FewShotLLMClassifier, multi_label: bool = False, fine_tune: bool = False
) -> list[tuple[str, Any]]:
    """The candidates :class:`FewShotLLMClassifierCV` cross-validates by default.

    - ``head_C0.01``, ``head_C0.1``: ``classifier`` with a ``StandardScaler`` +
      ``LogisticRegression`` head on the model's features of every row;
    - ``union_C30``, ``union_C100``, ``union_C300``, ``union_C1000``: the same
      features, standardised, scaled to unit length and weighted 0.5, beside TF-IDF of
      character 2-5-grams (also of unit length), + ``LogisticRegression``. On rows of
      unit length the regression needs a large ``C`` before it dares to be sure;
    - ``prompt``: ``classifier`` without a head (its own calibration);
    - ``prompt_batch``: the same with ``calibrate="batch"``.

    For multi-label targets (``multi_label=True``), every candidate reads the final
    layer's states (``head_layers=[-1]``, the best layer there), so that a fold's rows
    are read once: ``head_last_C0.1``, ``head_last_C1``, one-vs-rest heads;
    ``union_last_C10``, ``union_last_C100`` with a one-vs-rest regression; and
    ``prompt``, each label judged on its own with tuned thresholds
    (``docs/multilabel.md``).

    With ``fine_tune=True`` and one label per row, one more: ``lora``, ``classifier``
    with prompt-based LoRA fine-tuning
    (:class:`~skllm_fewshot.LoRAFineTuning`, uncalibrated), last. Not for
    multi-label targets: on the shipped messages it scored micro-F1 0.62 against 0.78
    for a head, at 30 times the cost.

    The heads come first: their pass reads the features the others then take from
    the engine's cache.

    Parameters
    ----------
    classifier : FewShotLLMClassifier
        The model, the prompt and its options (``example_selection="stratified"``);
        each candidate holds a clone.
    multi_label : bool, default=False
        Candidates for 0/1 indicator targets.
    fine_tune : bool, default=False
        Add the fine-tuned candidate (needs ``peft``).

    Returns
    -------
    list of (str, estimator)

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> from skllm_fewshot.model_selection import default_candidates
    >>> names = [name for name, _ in default_candidates(FewShotLLMClassifier())]
    >>> names[:2], names[-2:]
    (['head_C0.01', 'head_C0.1'], ['prompt', 'prompt_batch'])
    >>> names[2:-2]
    ['union_C30', 'union_C100', 'union_C300', 'union_C1000']
    """
    prompt = _prompt(classifier, "candidates")

    def head(C: float) -> FewShotLLMClassifier:
        return clone(prompt).set_params(head=make_pipeline(StandardScaler(), _logistic(C)))

    if multi_label:
        # One layer for every candidate, so that each fold's rows are read once.
        last = clone(prompt).set_params(head_layers=[-1])
        return [
            ("head_last_C0.1", head(0.1).set_params(head_layers=[-1])),
            ("head_last_C1", head(1.0).set_params(head_layers=[-1])),
            *[(f"union_last_C{C}", _union(last, float(C), multi_label=True)) for C in (10, 100)],
            ("prompt", clone(prompt)),
        ]
    return [
        ("head_C0.01", head(0.01)),
        ("head_C0.1", head(0.1)),
        *[(f"union_C{C}", _union(prompt, float(C))) for C in (30, 100, 300, 1000)],
        ("prompt", clone(prompt)),
        ("prompt_batch", clone(prompt).set_params(calibrate="batch")),
        *([("lora", clone(prompt).set_params(head=LoRAFineTuning(), calibrate=False))] if fine_tune else []),
    ]


def default_cv(
    k: int, multi_label: bool = False, random_state: Any = None
) -> RepeatedKFold | RepeatedStratifiedKFold:
    """The folds :class:`FewShotLLMClassifierCV` cross-validates on by default.

    ``min(3, k)`` folds repeated ``ceil(8 / k)`` times, so that about 8 held-out rows
    per class vote; stratified for one label per row (stratified folds do not apply
    to indicator targets).

    Parameters
    ----------
    k : int
        Rows of the smallest class (for multi-label, of the rarest label or its absence).
    multi_label : bool, default=False
        Folds for a 0/1 indicator target.
    random_state : int, RandomState instance or None, default=None
        Shuffles the folds.

    Returns
    -------
    RepeatedStratifiedKFold or RepeatedKFold

    Examples
    --------
    >>> from skllm_fewshot.model_selection import default_cv
    >>> default_cv(2).get_n_splits(), default_cv(8).get_n_splits(), type(default_cv(4, multi_label=True)).__name__
    (8, 3, 'RepeatedKFold')
    """
    folds = dict(n_splits=min(3, k), n_repeats=max(1, math.ceil(8 / k)), random_state=random_state)
    return RepeatedKFold(**folds) if multi_label else RepeatedStratifiedKFold(**folds)


def default_fallback(classifier: FewShotLLMClassifier) -> ProductOfExperts:
    """What :class:`FewShotLLMClassifierCV` fits when a class of three or more has a single row.

    The prompt's probabilities multiplied by those of the ``union_C100`` candidate
    (:func:`default_candidates`: the model's features beside TF-IDF of character
    n-grams, + ``LogisticRegression(C=100)``) fitted on one mean row per class, with
    :class:`~skllm_fewshot.ProductOfExperts`. Nothing can be cross-validated,
    and the product needs no tuning: the prompt knows the task from its instruction, the
    union what the rows have in common with each class's rows, and where one of them is
    near chance (the prompt on a task the model does not understand, the union on a text
    sharing nothing with the rows), the other decides. The union learns from the class
    means, so that a class with one row counts as much as one with three. Both read the
    same prompt's features, so the union costs no pass over the texts of its own.

    With two classes, :class:`FewShotLLMClassifierCV` fits the prompt alone instead:
    a boundary between two texts (or two means) is no evidence of which side a third
    is on. On SST-2 the product lost to the prompt alone by 1.7 points with one row per
    class (0.691 against 0.708), and with 1 row against 2-4 by 14-16 points with the
    union fitted on the rows, 3 with it on the class means (``docs/accuracy.md``).

    Parameters
    ----------
    classifier : FewShotLLMClassifier
        The model, the prompt and its options (``example_selection="stratified"``);
        each expert holds a clone.

    Returns
    -------
    ProductOfExperts

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> from skllm_fewshot.model_selection import default_fallback
    >>> [name for name, _ in default_fallback(FewShotLLMClassifier()).estimators]
    ['prompt', 'union']
    """
    prompt = _prompt(classifier, "fallback")
    return ProductOfExperts([("prompt", prompt), ("union", _union(prompt, 100.0, class_means=True))])


# How many standard errors of the fold-by-fold difference with the constant predictor
# the best candidate must clear to replace the prompt; the standard error is corrected
# for folds that share rows (Nadeau and Bengio 2003), which at 3 folds repeated twice
# makes it the bar of 2 uncorrected standard errors (benchmarks/bench_pick_rule.py).
NOISE_SE = 1.0
# Below this many labelled rows the prompt is kept whatever the folds say: with 2
# classes and 2 rows each, every fold trains on one row per class and scores two, and
# a union that was lucky on 4 rows scored 0.48 against the prompt's 0.80 on unseen
# test rows (benchmarks/bench_pick_rule.py).
MIN_ROWS = 8
# The name of the prior-class predictor cross-validated beside the candidates: the bar
# a candidate must clear to show that it learned anything from the rows.
CONSTANT = "constant"
# The name of what the search fits when nothing can be cross-validated; with a class at
# one row beside classes with several, it is cross-validated among the candidates.
FALLBACK = "fallback"
# What the search fits where it picks the default prompt and there are three classes
# or more: the prompt times the union on the class means (default_fallback).
PROMPT_UNION = "prompt_union"
# From how many classes the prompt is multiplied by the union (the fallback, and the
# kept prompt): with two, no union beat the prompt alone on SST-2 (bench_fallback.py).
UNION_MIN_CLASSES = 3
# What the search fits where it keeps the default prompt with two rows in each of two
# classes, from a classifier showing one example per class: the same prompt showing
# both rows of each class. Over 10 draws each of SST-2 and class pairs of TREC and MAS
# it scored above one example on 21 of 30, by 2.4 points on average (SST-2 7.2, TREC
# 1.2, MAS -1.4); with three rows per class, showing all three gained on SST-2 and lost
# on MAS, -2.0 points on average in a random order and +2.0 interleaved by class, within
# the spread of the order alone (docs/accuracy_log.md). The kept prompt is not
# cross-validated there: no fold could show it two rows of a class.
PROMPT_TWO = "prompt_two_examples"


def pick_within_noise(
    cv_results: dict,
    names: Sequence[str],
    reference: str = "prompt",
    baseline: str = CONSTANT,
    *,
    test_train_ratio: float = 0.0,
    n_rows: int | None = None,
) -> int:
    """The best candidate, unless it does not beat the constant predictor beyond noise: then ``reference``.

    The best candidate by mean score replaces ``reference`` (the prompt) only if its
    gain over ``baseline`` (the prior-class predictor, cross-validated on the same
    folds), taken fold by fold, exceeds ``NOISE_SE`` standard errors. With 2-4 rows
    per class a few held-out rows decide each fold, and a head or a union that is
    merely less sure than the prompt (its log-loss near the constant's) wins the mean
    log-loss while knowing nothing; the prompt at least knows the task from its
    instruction. ``baseline`` itself is never the pick.

    Repeated folds share their rows, so their scores are not independent: the
    standard error is the corrected one of Nadeau and Bengio (2003),
    ``std * sqrt(1 / n_folds + test_train_ratio)``, which counts the evidence as the
    rows it comes from rather than the number of folds. Below ``MIN_ROWS`` labelled
    rows (``n_rows``) the reference is kept.

    Parameters
    ----------
    cv_results : dict
        ``GridSearchCV.cv_results_`` (``split{i}_test_score`` and ``mean_test_score``).
    names : sequence of str
        The candidates' names, in the order of ``cv_results``.
    reference : str, default="prompt"
        The candidate kept when the best does not clear the bar; without one of that
        name (or without ``baseline``), the best is taken.
    baseline : str, default="constant"
        The candidate whose fold scores are the bar.
    test_train_ratio : float, default=0.0
        Held-out rows over training rows in a fold (0.5 for 3 folds); 0 treats the
        folds as independent.
    n_rows : int, default=None
        The labelled rows the folds are cut from; ``None`` skips the ``MIN_ROWS`` rule.

    Returns
    -------
    int
        The index of the pick.

    Notes
    -----
    Measured on the development sets (``docs/accuracy_log.md``): requiring the best
    to beat the *prompt* beyond noise instead lost 3-4 points on SST-2 at k = 4 and
    8, where a head is better but by less than its spread over a few folds; the bar
    of the constant keeps those picks and drops the uninformative ones.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot.model_selection import pick_within_noise
    >>> def results(*folds):
    ...     folds = np.array(folds)
    ...     return {"mean_test_score": folds.mean(0), **{f"split{i}_test_score": f for i, f in enumerate(folds)}}
    >>> names = ["union", "prompt", "constant"]
    >>> # As unsure as the constant (ln 2 = 0.693), better than the prompt only in the mean:
    >>> pick_within_noise(results([-0.78, -0.80, -0.69], [-0.62, -0.86, -0.69], [-0.70, -0.79, -0.69]), names)
    1
    >>> clear = results([-0.40, -0.80, -0.69], [-0.35, -0.86, -0.69], [-0.45, -0.79, -0.69])
    >>> pick_within_noise(clear, names, test_train_ratio=0.5, n_rows=12)
    0
    >>> pick_within_noise(clear, names, test_train_ratio=0.5, n_rows=4)  # too few rows to tell
    1
    """
    names = list(names)
    means = np.asarray(cv_results["mean_test_score"], dtype=float).copy()
    if baseline in names:
        means[names.index(baseline)] = -np.inf
    best = int(np.nanargmax(means))
    if reference not in names or baseline not in names or names[best] == reference:
        return best
    if n_rows is not None and n_rows < MIN_ROWS:
        return names.index(reference)
    n_splits = sum(1 for key in cv_results if key.startswith("split") and key.endswith("_test_score"))
    folds = np.array([cv_results[f"split{i}_test_score"] for i in range(n_splits)], dtype=float)
    gain = folds[:, best] - folds[:, names.index(baseline)]
    se = gain.std(ddof=1) * math.sqrt(1 / len(gain) + test_train_ratio) if len(gain) > 1 else np.inf
    return best if gain.mean() > NOISE_SE * se else names.index(reference)


def _single_rows(y: Any) -> tuple[np.ndarray | None, int]:
    """The rows of the classes that have a single row, and k, the rows of the rarest other
    class; ``(None, 1)`` unless at least half the classes, and two, have several rows."""
    _, index, counts = np.unique(y, return_inverse=True, return_counts=True)
    several = counts >= 2
    # The folds score the classes with several rows only: when they are fewer than half,
    # the search's verdict says little of the task (on MAS with 4 of 7 sectors at one
    # row, a union it picked scored 0.447 where the fallback had 0.533).
    if several.sum() < 2 or 2 * several.sum() < len(counts):
        return None, 1
    return ~several[index], int(counts[several].min())


class _KeptInTraining:
    """Folds cut by ``cv`` from the rows not ``kept``, with the ``kept`` rows in every training set.

    A class labelled once cannot be held out and learnt in the same fold; kept in
    training, it still trains every candidate, and the others are compared on what
    they can be scored on.
    """

    def __init__(self, cv: Any, kept: np.ndarray) -> None:
        self.cv = cv
        self.kept = kept

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.cv.get_n_splits()

    def split(self, X: Any, y: Any, groups: Any = None):
        rest, kept = np.flatnonzero(~self.kept), np.flatnonzero(self.kept)
        labels = np.asarray(y, dtype=object)[rest]
        for train, test in self.cv.split(np.zeros(len(rest)), labels):
            yield np.sort(np.concatenate([rest[train], kept])), rest[test]


def _test_train_ratio(cv: Any, X: Any, y: Any) -> float:
    """Held-out rows over training rows, averaged over the folds of ``cv``."""
    return float(np.mean([len(test) / max(1, len(train)) for train, test in cv.split(X, y)]))


def _trial(estimator: Any, n_train: int) -> Any:
    """``estimator`` for its trial fit on the held-out split: an adapter left at its
    automatic number of steps trains for those of at most ``ADAPTER_TRIAL_ROWS`` rows."""
    if not isinstance(estimator, FewShotLLMClassifier) or not isinstance(estimator.head, LoRAFineTuning):
        return estimator
    tuning = estimator.head
    if tuning.max_steps != "auto":
        return estimator
    steps = auto_steps(min(n_train, ADAPTER_TRIAL_ROWS), tuning.batch_size)
    return clone(estimator).set_params(head=clone(tuning).set_params(max_steps=steps))


def _measure(classifier: FewShotLLMClassifier, X: Any, y: Any, adapter: bool) -> tuple[float, float, float]:
    """Seconds per row read by ``classifier``'s model, per adapter step, and to set an
    adapter up, measured on a few of the rows (the model is loaded here if it is not yet).

    The rows are read under the classifier's own prompt, fitted on every row (which
    reads none of them without a head): each row attends to the prompt's examples, so
    a prompt with an example of each of 7 classes costs a row more than an empty one.
    The first pass of a process is slower than the passes of the search (threads and
    memory warm up), so rows are read once before the timed read; an adapter, likewise,
    is fitted once for a step before it is timed twice at 1 and 4 steps, whose
    difference is the steps alone.
    """
    rng = check_random_state(0)
    rows = rng.permutation(len(X))
    few, timed = rows[: min(8, len(rows))], rows[-min(8, len(rows)) :]
    probe = clone(classifier).set_params(head=None, calibrate=False, verbose=False).fit(X, y)
    probe.features(np.asarray(_safe_indexing(X, few), dtype=object))  # the warm-up
    start = time.perf_counter()
    probe.features(np.asarray(_safe_indexing(X, timed), dtype=object))
    row_s = (time.perf_counter() - start) / len(timed)
    if not adapter:
        return row_s, 0.0, 0.0
    seconds = []
    for steps in (1, 1, 4, 1, 4):  # under the classifier's own prompt, whose examples each step reads
        start = time.perf_counter()
        clone(classifier).set_params(
            calibrate=False, verbose=False, head=LoRAFineTuning(max_steps=steps)
        ).fit(_safe_indexing(X, few), _safe_indexing(y, few))
        seconds.append(time.perf_counter() - start)
    # Two pairs, the quicker kept: one slow fit (another process, a page fault) would
    # otherwise be counted on every step of the plan.
    step_s = max(min(seconds[2] - seconds[1], seconds[4] - seconds[3]), 0.0) / 3
    return row_s, step_s, max(min(seconds[1], seconds[3]) - step_s, 0.0)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _verbose(estimator: Any, verbose: bool) -> Any:
    """``estimator`` with ``verbose`` set on every nested FewShotLLMClassifier (its scoring bars)."""
    if not verbose:
        return estimator
    params = estimator.get_params()

    def owner(key: str) -> Any:
        return params[key.rsplit("__", 1)[0]] if "__" in key else estimator

    # Only the classifiers' bars: a Pipeline's or a LogisticRegression's verbose prints
    # lines of its own on every fit.
    nested = {
        key: True
        for key, value in params.items()
        if key.endswith("verbose") and value is False and isinstance(owner(key), FewShotLLMClassifier)
    }
    return clone(estimator).set_params(**nested) if nested else estimator


class _TickingScorer:
    """A scorer that advances a progress bar each time it scores a candidate on a fold."""

    def __init__(self, scorer: Any, bar: Any) -> None:
        self.scorer, self.bar = scorer, bar

    def __call__(self, estimator: Any, X: Any, y: Any, **kwargs: Any) -> float:
        try:
            return self.scorer(estimator, X, y, **kwargs)
        finally:
            self.bar.update()


class FewShotLLMClassifierCV(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """The prompt, a head or a union with TF-IDF: whichever cross-validates best.

    ``fit`` cross-validates each candidate on the labelled rows (``GridSearchCV``
    over the candidates) and refits the best on all of them; the best replaces the
    ``prompt`` only where it beats the constant predictor beyond the folds' noise
    (:func:`pick_within_noise`), so that with 2-4 rows per class a head or a union
    that has learned nothing does not replace a prompt that knows the task. A class
    with a single row cannot be held out: with the default ``cv`` it trains every
    fold and the others are scored, as long as at least half the classes (and two)
    have several rows, and ``fallback`` is one more candidate; otherwise (one row per
    class, a given ``cv``, several labels per row) nothing is cross-validated, and
    ``fallback`` is fitted instead. The target
    may be one class per row or a 0/1 indicator matrix (multi-label: ``predict``
    returns one).

    Parameters
    ----------
    classifier : FewShotLLMClassifier, default=None
        The model, the prompt and its options, from which the default candidates
        are made; ``None`` is ``FewShotLLMClassifier()``.
    candidates : list of (str, estimator), default=None
        Named classifiers taking texts; ``None`` is :func:`default_candidates`.
    scoring : str, callable or None, default=None
        What the cross-validation ranks by (a scikit-learn scorer). ``None``:
        ``"neg_log_loss"`` for one label per row (the log-loss tells a head that is
        right by luck from one that is sure for good reason better than accuracy
        does on a few held-out rows), ``"f1_micro"`` for multi-label targets.
    cv : int, cross-validation generator or None, default=None
        ``None``: :func:`default_cv`, ``min(3, k)`` folds (k: the rows of the smallest class; for
        multi-label, of the rarest label or its absence), stratified for one label
        per row, repeated ``ceil(8 / k)`` times, so that about 8 held-out rows per
        class vote; from 64 rows in the smallest class, one held-out split (Notes).
        The rows of a class with a single row train every fold, and k counts the
        other classes.
    fallback : estimator or None, default=None
        Fitted when nothing can be cross-validated (a class with a single row, and
        fewer than half the classes with several, or a given ``cv``), and a
        candidate beside the others when a class has a single row; ``None`` is
        :func:`default_fallback` with three classes or more, and the prompt alone
        with two (or several labels per row).
    random_state : int, RandomState instance or None, default=None
        Shuffles the default folds.
    n_jobs : int, default=None
        Candidates and folds run in parallel (``GridSearchCV``'s ``n_jobs``). The
        feature cache is per process: in one process the candidates share each
        fold's pass over the rows, in several each process makes its own.
    verbose : bool, default=False
        A progress bar over candidates x folds (in one process; with ``n_jobs``,
        ``GridSearchCV``'s own messages), and the scoring engines' bars.
    fine_tune : "auto" or bool, default="auto"
        Whether the default candidates for one label per row include ``lora``, prompt-based LoRA
        fine-tuning (:class:`~skllm_fewshot.LoRAFineTuning`). ``"auto"``:
        from :data:`FINE_TUNE_MIN_ROWS` (8) rows in the rarest class and for at most
        :data:`FINE_TUNE_MAX_CLASSES` (4) classes, when ``peft`` is installed (``pip
        install 'skllm-fewshot[finetune]'``): where it was measured to win, and to cost
        minutes rather than tens of minutes on a CPU. It is the costliest candidate: it
        trains once per fold and once more if picked (see Notes).

    Attributes
    ----------
    best_estimator_ : estimator
        The winner, refitted on every row (the fallback with one row per class).
        With the default candidates, three classes or more and the prompt picked, the
        prompt times the union on the class means (:func:`default_fallback`) instead:
        it scored above the prompt alone on every measured draw of TREC and MAS at 2 and
        4 rows per class (``docs/accuracy.md``). With two rows in each of two classes
        and a classifier showing one example per class, the prompt showing both rows of
        each class: on SST-2 it scored 0.761 against 0.691 for one
        (``docs/accuracy.md``).
    best_name_ : str
        Its name (``"fallback"`` for the fallback, ``"prompt_union"`` for that product,
        ``"prompt_two_examples"`` for that prompt).
        With a class at one row beside classes with several, the fallback (the
        default, or one's own) is cross-validated among the candidates.
    best_score_ : float or None
        Its mean cross-validated score; ``None`` for ``"prompt_union"``,
        ``"prompt_two_examples"`` and for the fallback fitted without a search.
    multi_label_ : bool
        Whether ``y`` was a 0/1 indicator matrix.
    cv_results_ : dict or None
        ``GridSearchCV``'s results, with the candidates' names as ``"name"``
        (``pandas.DataFrame(cv_results_)`` reads as a table): one row per candidate in order and a last row,
        ``"constant"``, for the prior-class predictor the pick must beat, with the time
        each took (``mean_fit_time``, ``mean_score_time``, per fold, in seconds: the
        first candidate of a fold also pays the model's pass over its rows); ``None``
        for the fallback.
    refit_time_ : float
        Seconds spent refitting the best on every row (the fallback's fit).
    classes_ : ndarray of shape (n_classes,)
        The classes (with the classifier's ``classes=``, those), or for multi-label
        the label names (a DataFrame's columns).
    class_count_ : ndarray of int of shape (n_classes,)
        The labelled rows of each class (multi-label: with the label); 0 for a class
        known by name only.
    unseen_prompt_ : FewShotLLMClassifier or None
        With the classifier's ``classes=`` and a class without rows: the prompt over
        every class, fitted on the rows. Those classes keep its probability; the
        pick, which compares the classes with rows, shares out the rest. ``None``
        when every class has rows.

    Notes
    -----
    What a fit costs is passes of the model over the rows. Each fold has its own
    prompt (its examples come from the fold's training rows), and every candidate
    reads that prompt's features of all the rows from one pass; the refit makes one
    more under the final prompt. With the default ``cv``, and k rows in the smallest
    class, that is ``min(3, k) * ceil(8 / k) + 1`` passes over the rows: 9 at k = 2,
    7 at k = 4, 4 from k = 8 on, and each fold's prompt scores its calibration
    queries (23 short ones by default). On two CPU cores with the embedded model, 16
    SST-2 rows (k = 8) fit in about 20 s, 4.3x one :class:`FewShotLLMClassifier`
    fitted and predicting the same rows (``docs/performance.md``). ``predict`` costs
    one pass, as for one :class:`FewShotLLMClassifier`.

    From ``HOLDOUT_MIN_ROWS`` (64) rows in the smallest class, with ``cv=None``, the
    search fits each candidate once instead, on a stratified 75% of the rows, and
    scores it on the other 25% in 8 disjoint blocks (the evidence of
    :func:`pick_within_noise`); the adapter's trial fit trains for the steps of at
    most 128 rows, and the pick is refitted on every row. That is 2 passes over the
    rows, and the adapter's full training once if it is picked. ``verbose=True``
    prints this plan before the search starts, with the time it should take on the
    machine, from a quick measurement.

    The fine-tuned candidate adds, per fold and for the refit, the training of an
    adapter: ``LoRAFineTuning``'s default number of steps of 8 rows, each a
    forward and a backward pass. It dominates the fit: with it, the same 16 SST-2
    rows take about 5 minutes on one busy CPU thread (64 rows: 9 minutes), against
    20 s without (``fine_tune=False``); ``docs/performance.md`` gives the times measured.

    See Also
    --------
    FewShotLLMClassifier : One configuration, without a search.
    sklearn.model_selection.GridSearchCV : What the search runs.

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> from skllm_fewshot.model_selection import FewShotLLMClassifierCV
    >>> clf = FewShotLLMClassifierCV(FewShotLLMClassifier(instruction="Sentiment: {labels}."), random_state=0)
    >>> clf.fit(X_train, y_train).best_name_  # doctest: +SKIP
    'head_C0.1'
    >>> clf.predict_proba(X_test)  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "classifier": [None, HasMethods(["fit", "predict_proba"])],
        "candidates": [None, list, tuple],
        "scoring": [None, StrOptions(set(get_scorer_names())), callable],
        "cv": ["cv_object"],
        "fallback": [None, HasMethods(["fit", "predict_proba"])],
        "random_state": ["random_state"],
        "n_jobs": [None, Integral],
        "verbose": ["verbose"],
        "fine_tune": ["boolean", StrOptions({"auto"})],
    }

    def __init__(
        self,
        classifier: FewShotLLMClassifier | None = None,
        *,
        candidates: Sequence[tuple[str, Any]] | None = None,
        scoring: Any = None,
        cv: Any = None,
        fallback: Any = None,
        random_state: Any = None,
        n_jobs: int | None = None,
        verbose: bool = False,
        fine_tune: bool | str = "auto",
    ) -> None:
        self.classifier = classifier
        self.candidates = candidates
        self.scoring = scoring
        self.cv = cv
        self.fallback = fallback
        self.fine_tune = fine_tune
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        # The input is what the candidates take: texts for the default ones. Multi-label
        # targets are taken where every candidate takes them (the default ones do).
        tags = super().__sklearn_tags__()
        if self.candidates is None:
            tags.classifier_tags.multi_label = True
            return shared_input_tags(tags, [("classifier", self._classifier())])
        try:
            tags.classifier_tags.multi_label = all(
                get_tags(estimator).classifier_tags.multi_label for _, estimator in self.candidates
            )
        except (TypeError, ValueError, AttributeError):
            pass  # fit says what is wrong with the candidates
        return shared_input_tags(tags, self.candidates)

    def _classifier(self) -> Any:
        return FewShotLLMClassifier() if self.classifier is None else self.classifier

    def _default_source(self, made: str, instead: str) -> FewShotLLMClassifier:
        """The classifier that the defaults are made from, checked (``made``: what, with its verb)."""
        base = self._classifier()
        if not isinstance(base, FewShotLLMClassifier):
            raise TypeError(
                f"classifier must be a FewShotLLMClassifier (the default {made} made from it); got "
                f"{type(base).__name__}. Pass {instead}= to use other estimators."
            )
        if base.classes is not None:
            # The candidates compare the classes with rows; fit completes the others.
            base = clone(base).set_params(classes=None)
        if base.random_state is None:
            # One seed for every default candidate: in each fold they then draw the same
            # examples, so share one prompt and its one pass over the rows.
            seed = int(check_random_state(self.random_state).randint(2**31 - 1))
            base = clone(base).set_params(random_state=seed)
        return base

    def _fine_tunes(self, k: int) -> bool:
        """Whether the default candidates include the fine-tuned one, with k rows in the rarest class."""
        if self.fine_tune == "auto":
            return (
                k >= FINE_TUNE_MIN_ROWS and len(self.classes_) <= FINE_TUNE_MAX_CLASSES
                and importlib.util.find_spec("peft") is not None
            )  # fmt: skip
        return bool(self.fine_tune)

    def _candidates(self, multi_label: bool, k: int) -> list[tuple[str, Any]]:
        if self.candidates is None:
            source = self._default_source("candidates are", "candidates")
            return default_candidates(source, multi_label, fine_tune=self._fine_tunes(k))
        check_named_estimators(self.candidates, "candidates")
        if any(name == CONSTANT for name, _ in self.candidates):
            raise ValueError(
                f"{CONSTANT!r} is the name of the prior-class predictor that the search adds as the bar "
                "a candidate must clear; name the candidate otherwise."
            )
        return list(self.candidates)

    def _fallback(self, multi_label: bool) -> Any:
        if self.fallback is not None:
            return clone(self.fallback)
        # The prompt alone: no head can learn a label from a single row, nor a boundary
        # between two classes from one row of one (default_fallback).
        if multi_label or len(self.classes_) < UNION_MIN_CLASSES:
            return _prompt(self._default_source("fallback is", "fallback"), "fallback")
        return default_fallback(self._default_source("fallback for one row in a class is", "fallback"))

    def _targets(self, y: Any) -> tuple[Any, int, bool]:
        """``y`` checked, ``classes_`` set, and k: the rows of the rarest class (of label or no label)."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        if is_indicator(y):
            self.classes_, indicator = check_indicator(y)
            positives = indicator.sum(axis=0)
            return y, int(min(positives.min(), (len(indicator) - positives).min())), True
        if type_of_target(y) == "multiclass-multioutput":
            raise ValueError(
                f"{type(self).__name__} takes one label per row, or a 0/1 indicator matrix (multi-label); "
                "got several columns of classes."
            )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) < 2:
            got = f"1 class: {self.classes_[0]!r}" if len(self.classes_) else "0 samples"
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; got {got}.")
        return y, int(counts.min()), False

    def fit(self, X: Any, y: Any) -> FewShotLLMClassifierCV:
        """Cross-validate the candidates on the labelled texts and refit the best.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            One class per row, or a 0/1 indicator matrix (multi-label; a DataFrame's
            column names are the labels).

        Returns
        -------
        self : FewShotLLMClassifierCV
        """
        validate_params(self)
        self.unseen_prompt_ = None
        declared = self._declared(y)
        if declared is not None and len(np.unique(column_or_1d(y))) < 2:
            # One labelled class: nothing to compare, and the prompt alone predicts the others.
            self.classes_, self.multi_label_ = declared, False
            self.class_count_ = class_counts(column_or_1d(y), declared, False)
            self.best_name_, self.best_score_, self.cv_results_ = "prompt", None, None
            start = time.perf_counter()
            self.best_estimator_ = _verbose(self._declared_prompt(declared), self.verbose).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
            return copy_input_attributes(self, self.best_estimator_)
        y, k, multi_label = self._targets(y)
        self._fit_search(X, y, k, multi_label)
        if declared is not None:
            seen = np.isin(declared, self.classes_)
            self.classes_ = declared
            if not seen.all():
                self.unseen_prompt_ = _verbose(self._declared_prompt(declared), self.verbose).fit(X, y)
        self.class_count_ = class_counts(
            check_indicator(y)[1] if multi_label else y, self.classes_, multi_label
        )
        return self

    def _declared(self, y: Any) -> np.ndarray | None:
        """The classifier's ``classes=``, checked against ``y`` (None when not given, or without
        ``y``, which the search then asks for)."""
        base = self._classifier()
        declared = base.classes if isinstance(base, FewShotLLMClassifier) else None
        if declared is None or y is None:
            return None
        check_declared_target(declared, zero_shot=False, multi_label=is_indicator(y))
        return check_declared_classes(declared, column_or_1d(y))

    def _declared_prompt(self, declared: np.ndarray) -> FewShotLLMClassifier:
        """The prompt over every declared class: what predicts those without rows."""
        return _prompt(
            self._default_source("prompt is", "classifier").set_params(classes=declared), "classifier"
        )

    def _fit_search(self, X: Any, y: Any, k: int, multi_label: bool) -> FewShotLLMClassifierCV:
        kept = None
        if k < 2 and not multi_label and self.cv is None:
            kept, k = _single_rows(y)
        candidates = self._candidates(multi_label, k)
        self.multi_label_ = multi_label
        if k < 2:
            self.best_name_, self.best_score_, self.cv_results_ = FALLBACK, None, None
            start = time.perf_counter()
            self.best_estimator_ = _verbose(self._fallback(multi_label), self.verbose).fit(X, y)
            self.refit_time_ = time.perf_counter() - start
            return copy_input_attributes(self, self.best_estimator_)
        scoring = self.scoring
        if scoring is None:
            scoring = "f1_micro" if multi_label else "neg_log_loss"
        # The prior-class predictor is cross-validated too: the bar of pick_within_noise.
        names = [name for name, _ in candidates] + [CONSTANT]
        estimators = [_verbose(estimator, self.verbose) for _, estimator in candidates]
        estimators.append(DummyClassifier(strategy="prior"))
        holdout = self.cv is None and k >= HOLDOUT_MIN_ROWS and kept is None
        if not holdout:
            cv = check_cv(
                default_cv(k, multi_label, self.random_state) if self.cv is None else self.cv,
                y,
                classifier=True,
            )
        if kept is not None:
            # The classes with a single row train every fold and are scored on none:
            # the folds are cut from the others, and the log-loss knows every class.
            cv = _KeptInTraining(cv, kept)
            if scoring == "neg_log_loss":
                scoring = self._log_loss_scorer()
            if FALLBACK not in names and (self.fallback is not None or self.candidates is None):
                # What one row less would have fitted competes too: where the others are
                # lopsided, the union on the class means may beat every candidate fitted
                # on the rows.
                names.insert(-1, FALLBACK)
                estimators.insert(-1, _verbose(self._fallback(multi_label), self.verbose))
        if self.verbose:
            print(self._plan(X, y, names, estimators, None if holdout else cv))
        if holdout:
            cv_results, best, self.best_estimator_, self.refit_time_ = self._search_holdout(
                X, y, names, estimators, scoring, multi_label
            )
        else:
            cv_results, best, self.best_estimator_, self.refit_time_ = self._search_folds(
                X, y, names, estimators, scoring, cv
            )
        self.best_name_ = names[best]
        self.best_score_ = float(cv_results["mean_test_score"][best])
        self.cv_results_ = {"name": np.array(names, dtype=object), **cv_results}
        if self.best_name_ == "prompt" and self.candidates is None and not multi_label:
            replacement = self._kept_prompt(y)
            if replacement is not None:
                start = time.perf_counter()
                self.best_estimator_ = _verbose(replacement[1], self.verbose).fit(X, y)
                self.refit_time_ = time.perf_counter() - start
                self.best_name_, self.best_score_ = replacement[0], None
        return copy_input_attributes(self, self.best_estimator_)

    def _kept_prompt(self, y: Any) -> tuple[str, Any] | None:
        """What replaces the default prompt where the search keeps it, named; None: the prompt itself."""
        if len(self.classes_) >= UNION_MIN_CLASSES:
            # With three classes or more the prompt times the union on the class means
            # scored above the prompt alone on every measured draw (docs/accuracy.md);
            # it reads the features the search has already cached.
            return PROMPT_UNION, default_fallback(self._default_source("prompt's product is", "candidates"))
        if self._classifier().n_examples_per_class == 1 and (np.unique(y, return_counts=True)[1] == 2).all():
            # Two rows in each of two classes, too few for the folds to judge: the prompt
            # showing all four did better than one of each (PROMPT_TWO).
            source = self._default_source("prompt is", "candidates")
            return PROMPT_TWO, _prompt(source, "candidates").set_params(n_examples_per_class=2)
        return None

    def _plan(self, X: Any, y: Any, names: list[str], estimators: list[Any], cv: Any) -> str:
        """What the search is about to do, and how long it should take on this machine.

        The time comes from a quick measurement: the classifier's prompt timed on a
        few rows (and, with an adapter among the candidates, a few of its steps),
        scaled by the passes over the rows and the adapter's steps.
        """
        n = len(y)
        if cv is None:
            n_train = n - math.ceil(HOLDOUT_SIZE * n)
            fits, how = (
                [n_train],
                f"one held-out split ({n - n_train} of {n} rows, scored in {HOLDOUT_BLOCKS} blocks)",
            )
        else:
            splits = list(cv.split(np.zeros(n), y))
            fits, how = [len(train) for train, _ in splits], f"{len(splits)} folds of the {n} rows"
        adapters = [
            e
            for e in estimators
            if isinstance(e, FewShotLLMClassifier) and isinstance(e.head, LoRAFineTuning)
        ]
        lines = [
            f"{type(self).__name__}: {len(names) - 1} candidates ({', '.join(names[:-1])}) and the constant "
            f"predictor on {how}, then the pick refitted on every row.",
            f"  passes of the model over the rows: {len(fits) + 1} (one per prompt: "
            f"{len(fits)} for the search, 1 for the refit)",
        ]
        steps, refit_steps = 0, 0
        if adapters:
            tuning = adapters[0].head

            def steps_for(rows: int, trial: bool) -> int:
                if tuning.max_steps != "auto":
                    return tuning.max_steps
                return auto_steps(min(rows, ADAPTER_TRIAL_ROWS) if trial else rows, tuning.batch_size)

            per_fit = [steps_for(m, trial=cv is None) for m in fits]
            steps, refit_steps = sum(per_fit), steps_for(n, trial=False)
            lines.append(
                f"  adapter steps: {' + '.join(map(str, per_fit))} for the search, {refit_steps} more if picked"
            )
        source = self._classifier()
        if isinstance(source, FewShotLLMClassifier):
            start = time.perf_counter()
            row_s, step_s, setup_s = _measure(source, X, y, bool(adapters))
            measured_s = time.perf_counter() - start
            # Each prompt reads every row and its calibration queries (content-free and domain).
            queries = len(CONTENT_FREE) + N_DOMAIN_QUERIES
            frozen = (len(fits) + 1) * (n + queries) * row_s
            # Each adapter fit: its set-up and steps, and its own pass over the held-out rows.
            adapter_s = len(fits) * setup_s + steps * step_s + sum(n - m for m in fits) * row_s
            with_adapter = frozen + adapter_s + setup_s + refit_steps * step_s
            lines.append(
                f"  measured here (in {measured_s:.0f} s): {row_s:.2f} s per row read"
                + (f", {step_s:.1f} s per adapter step" if adapters else "")
                + f"; expected: about {_duration(with_adapter if adapters else frozen)}"
                + (f" ({_duration(frozen + adapter_s)} if the adapter is not picked)" if adapters else "")
            )
        return "\n".join(lines)

    def _search_folds(
        self, X: Any, y: Any, names: list[str], estimators: list[Any], scoring: Any, cv: Any
    ) -> tuple[dict, int, Any, float]:
        """Every candidate on every fold of ``cv`` (GridSearchCV), then the pick refitted."""
        in_process = self.n_jobs in (None, 1)
        with tqdm(
            total=len(estimators) * cv.get_n_splits(X, y), desc="candidates x folds",
            disable=not (self.verbose and in_process),
        ) as bar:  # fmt: skip
            if self.verbose and in_process:
                scoring = _TickingScorer(check_scoring(estimators[0], scoring=scoring), bar)
            # One pipeline step swapped between candidates: GridSearchCV's grid over estimators.
            search = GridSearchCV(
                Pipeline([("model", estimators[0])]), {"model": estimators},
                scoring=scoring, cv=cv, n_jobs=self.n_jobs, error_score="raise",
                refit=functools.partial(
                    pick_within_noise, names=names, test_train_ratio=_test_train_ratio(cv, X, y), n_rows=len(y)
                ),
                verbose=int(bool(self.verbose) and not in_process),
            )  # fmt: skip
            search.fit(X, y)
        return (
            search.cv_results_,
            int(search.best_index_),
            search.best_estimator_[-1],
            float(search.refit_time_),
        )

    def _search_holdout(
        self, X: Any, y: Any, names: list[str], estimators: list[Any], scoring: Any, multi_label: bool
    ) -> tuple[dict, int, Any, float]:
        """Every candidate fitted once on a held-out split, scored on blocks of its held-out
        rows; the pick refitted on every row (the adapter with its full number of steps)."""
        split = (ShuffleSplit if multi_label else StratifiedShuffleSplit)(
            n_splits=1, test_size=HOLDOUT_SIZE, random_state=self.random_state
        )
        train, test = next(split.split(np.zeros(len(y)), y))
        order = check_random_state(self.random_state).permutation(test)
        if not multi_label:  # dealt out class by class, so that each block has every class it can
            order = order[np.argsort(np.asarray(y, dtype=object)[order].astype(str), kind="stable")]
        blocks = [block for block in (order[i::HOLDOUT_BLOCKS] for i in range(HOLDOUT_BLOCKS)) if len(block)]
        if scoring == "neg_log_loss":  # a block may lack a class: the labels are the search's
            scoring = self._log_loss_scorer()
        scorer = check_scoring(estimators[0], scoring=scoring)
        fit_times, score_times, scores = [], [], []
        for estimator in tqdm(estimators, desc="candidates", disable=not self.verbose):
            start = time.perf_counter()
            fitted = clone(_trial(estimator, len(train))).fit(
                _safe_indexing(X, train), _safe_indexing(y, train)
            )
            fit_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            scores.append([scorer(fitted, _safe_indexing(X, b), _safe_indexing(y, b)) for b in blocks])
            score_times.append(time.perf_counter() - start)
        folds = np.array(scores, dtype=float).T  # (blocks, candidates)
        means = folds.mean(axis=0)
        cv_results = {
            "mean_fit_time": np.array(fit_times),
            "std_fit_time": np.zeros(len(names)),
            "mean_score_time": np.array(score_times),
            "std_score_time": np.zeros(len(names)),
            "param_model": np.array(estimators, dtype=object),
            "params": [{"model": estimator} for estimator in estimators],
            **{f"split{i}_test_score": fold for i, fold in enumerate(folds)},
            "mean_test_score": means,
            "std_test_score": folds.std(axis=0),
            "rank_test_score": (np.argsort(np.argsort(-means, kind="stable"), kind="stable") + 1).astype(
                np.int32
            ),
        }
        # The blocks share no rows, and the candidates one training set.
        best = pick_within_noise(cv_results, names, n_rows=len(y))
        start = time.perf_counter()
        refitted = clone(estimators[best]).fit(X, y)
        return cv_results, best, refitted, time.perf_counter() - start

    def _log_loss_scorer(self) -> Any:
        """The log-loss scorer over every class of the search, for held-out rows that lack some."""
        return make_scorer(
            log_loss, labels=self.classes_, greater_is_better=False, response_method="predict_proba"
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the best candidate.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        proba = self.best_estimator_.predict_proba(X)
        if self.unseen_prompt_ is not None:
            proba = share_out(self.unseen_prompt_.predict_proba(X), proba, self.class_count_ > 0)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each text.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_labels) of 0/1 for multi-label
        """
        check_is_fitted(self)
        if self.multi_label_:
            return self.best_estimator_.predict(X)
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
