"""Which training rows become the prompt's examples, and in what order.

A selection strategy is fitted on the training rows and then says, for any texts,
which examples go into which prompt: :meth:`groups` returns one
:class:`PromptGroup` per distinct prompt with the texts scored under it. The
classifier never branches on the strategy; a new one implements ``fit``,
``groups`` and ``examples_for`` and is added to :data:`EXAMPLE_SELECTIONS`.

Two selections: ``"stratified"`` draws the same ``k`` rows of each class for every
query; ``"similar"`` takes, for each query, the ``k`` rows of each class nearest to
it. Two orders: ``"shuffle"`` (a random permutation) and ``"interleave"`` (rounds of
one example per class, the classes shuffled in each round, so that no class is
always nearest the query).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._protocols import Example, ExampleSelection

__all__ = [
    "EXAMPLE_ORDERS",
    "EXAMPLE_SELECTIONS",
    "LabelSetSelection",
    "PromptGroup",
    "SimilarSelection",
    "StratifiedSelection",
    "arrange",
    "make_selection",
    "nearest_by_class",
    "rng_for",
    "stratified_by_class",
]

EXAMPLE_ORDERS = ("shuffle", "interleave")


@dataclass(frozen=True)
class PromptGroup:
    """Texts scored under the same prompt.

    Attributes
    ----------
    examples : tuple of (str, class)
        The prompt's examples, in prompt order.
    rows : ndarray of int
        The positions of the texts, among those given to ``groups``, that get them.
    """

    examples: tuple[Example, ...]
    rows: np.ndarray


def _warn_small_classes(y: np.ndarray, classes: np.ndarray, k: int) -> None:
    for c in classes:
        n = int(np.sum(y == c))
        if 0 < n < k:  # a class without rows is one declared ahead of them (classes=)
            warnings.warn(
                f"Class {c!r} has {n} training rows, fewer than n_examples_per_class={k}; all of them are used.",
                UserWarning,
                stacklevel=5,
            )


class StratifiedSelection:
    """The same ``k`` random rows of each class in every prompt.

    Parameters
    ----------
    n_examples_per_class : int
    order : {"shuffle", "interleave"}

    Attributes
    ----------
    examples_ : list of (str, class)
        The examples, in prompt order.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._selection import StratifiedSelection
    >>> sel = StratifiedSelection(1, "shuffle").fit(
    ...     np.array(["a", "b", "c"], dtype=object), np.array([0, 1, 1]), np.array([0, 1]),
    ...     np.random.RandomState(0))
    >>> [len(g.rows) for g in sel.groups(["x", "y"])]
    [2]
    """

    # Every text is scored under the same prompt.
    one_prompt = True

    def __init__(self, n_examples_per_class: int, order: str) -> None:
        self.n_examples_per_class = n_examples_per_class
        self.order = order

    def fit(
        self, texts: np.ndarray, y: np.ndarray, classes: np.ndarray, rng: np.random.RandomState
    ) -> StratifiedSelection:
        _warn_small_classes(y, classes, self.n_examples_per_class)
        rows = arrange(stratified_by_class(y, classes, self.n_examples_per_class, rng), self.order, rng)
        self.examples_ = [(str(texts[i]), y[i]) for i in rows]
        return self

    @property
    def shown_examples(self) -> list[Example]:
        """The examples of the prompt shown as the classifier's ``prompt_``."""
        return list(self.examples_)

    def groups(self, texts: Sequence[str]) -> list[PromptGroup]:
        return [PromptGroup(tuple(self.examples_), np.arange(len(texts)))]

    def examples_for(self, texts: Sequence[str]) -> list[list[Example]]:
        return [list(self.examples_) for _ in texts]


class SimilarSelection:
    """For each text, the ``k`` rows of each class nearest to it.

    Parameters
    ----------
    n_examples_per_class : int
    order : {"shuffle", "interleave"}
    embedder : TextEmbedder
        Texts to vectors; similarity is the cosine of the vectors.

    Attributes
    ----------
    pool_texts_, pool_labels_ : ndarray of shape (n_rows,)
        The training rows examples are chosen from.
    pool_embeddings_ : array of shape (n_rows, n_dims)
    """

    one_prompt = False
    # No examples are shared by every prompt.
    examples_ = None

    def __init__(self, n_examples_per_class: int, order: str, embedder: Any) -> None:
        self.n_examples_per_class = n_examples_per_class
        self.order = order
        self.embedder = embedder

    def fit(
        self, texts: np.ndarray, y: np.ndarray, classes: np.ndarray, rng: np.random.RandomState
    ) -> SimilarSelection:
        _warn_small_classes(y, classes, self.n_examples_per_class)
        self.classes_ = classes
        self.pool_texts_, self.pool_labels_ = np.asarray(texts, dtype=object), y
        # Drawn here so that a RandomState instance fixes the per-prompt orders too.
        self.order_seed_ = int(rng.randint(2**31))
        self.pool_embeddings_ = self.embedder.fit(list(texts)).transform(list(texts))
        return self

    @property
    def shown_examples(self) -> list[Example]:
        return []

    def _rows(self, texts: Sequence[str]) -> list[tuple[int, ...]]:
        """The pool rows in each text's prompt, in prompt order."""
        from sklearn.metrics.pairwise import cosine_similarity

        similarity = cosine_similarity(self.embedder.transform(list(texts)), self.pool_embeddings_)
        by_class = nearest_by_class(similarity, self.pool_labels_, self.classes_, self.n_examples_per_class)
        return [
            tuple(arrange(rows, self.order, rng_for(self.order_seed_, np.concatenate(rows))))
            for rows in by_class
        ]

    def _example(self, row: int) -> Example:
        return (str(self.pool_texts_[row]), self.pool_labels_[row])

    def groups(self, texts: Sequence[str]) -> list[PromptGroup]:
        members: dict[tuple[int, ...], list[int]] = {}
        for i, rows in enumerate(self._rows(texts)):
            members.setdefault(rows, []).append(i)
        return [
            PromptGroup(tuple(self._example(r) for r in rows), np.asarray(idx))
            for rows, idx in members.items()
        ]

    def examples_for(self, texts: Sequence[str]) -> list[list[Example]]:
        return [[self._example(r) for r in rows] for rows in self._rows(texts)]


class LabelSetSelection(StratifiedSelection):
    """Multi-label: ``k`` rows with each label, shown with their whole label sets.

    Labels are visited in a random order; each takes rows that have it until ``k``
    of the chosen rows have it, so every label appears and rows with several
    labels count for each of them.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._selection import LabelSetSelection
    >>> Y = np.array([[1, 0], [0, 1], [1, 1], [0, 1]])
    >>> sel = LabelSetSelection(1, "shuffle").fit(
    ...     np.array(["a", "b", "c", "d"], dtype=object), Y, np.array(["p", "q"]), np.random.RandomState(0))
    >>> all(any(row[j] for _, row in sel.examples_) for j in range(2))
    True
    """

    def fit(
        self, texts: np.ndarray, y: np.ndarray, classes: np.ndarray, rng: np.random.RandomState
    ) -> LabelSetSelection:
        k = self.n_examples_per_class
        chosen: list[int] = []
        for j in rng.permutation(y.shape[1]):
            have = int(y[chosen, j].sum()) if chosen else 0
            free = np.setdiff1d(np.flatnonzero(y[:, j]), chosen)
            if have + len(free) < k:
                warnings.warn(
                    f"Label {classes[j]!r} has {have + len(free)} training rows, fewer than "
                    f"n_examples_per_class={k}; all of them are used.",
                    UserWarning,
                    stacklevel=4,
                )
            if k > have and len(free):
                chosen += [int(i) for i in rng.choice(free, size=min(k - have, len(free)), replace=False)]
        order = [chosen[i] for i in rng.permutation(len(chosen))]
        self.examples_ = [(str(texts[i]), tuple(int(v) for v in y[i])) for i in order]
        return self


# The name of each strategy, as the classifier's example_selection parameter takes it.
EXAMPLE_SELECTIONS = ("stratified", "similar")


def make_selection(
    name: str, n_examples_per_class: int, order: str, embedder: Any = None, multi_label: bool = False
) -> ExampleSelection:
    """The (unfitted) strategy called ``name``.

    Examples
    --------
    >>> from skllm_fewshot._selection import make_selection
    >>> type(make_selection("stratified", 1, "shuffle")).__name__
    'StratifiedSelection'
    """
    if multi_label:
        return LabelSetSelection(n_examples_per_class, order)
    # Without examples every prompt is the same: the stratified strategy's, empty.
    if name == "similar" and n_examples_per_class > 0:
        return SimilarSelection(n_examples_per_class, order, embedder)
    return StratifiedSelection(n_examples_per_class, order)


def stratified_by_class(
    y: np.ndarray, classes: np.ndarray, k: int, rng: np.random.RandomState
) -> list[np.ndarray]:
    """``k`` random rows of each class (all of them where a class has fewer).

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._selection import stratified_by_class
    >>> y = np.array(["a", "b", "a", "b", "a"])
    >>> [len(r) for r in stratified_by_class(y, np.array(["a", "b"]), 2, np.random.RandomState(0))]
    [2, 2]
    """
    picked = []
    for c in classes:
        rows = np.flatnonzero(y == c)
        picked.append(rows if len(rows) <= k else rng.choice(rows, size=k, replace=False))
    return picked


def nearest_by_class(
    similarity: np.ndarray, y: np.ndarray, classes: np.ndarray, k: int
) -> list[list[np.ndarray]]:
    """For each query, the ``k`` rows of each class most similar to it, nearest first.

    Parameters
    ----------
    similarity : ndarray of shape (n_queries, n_rows)
        Similarity of each query to each training row.
    y : ndarray of shape (n_rows,)
    classes : ndarray of shape (n_classes,)
    k : int

    Returns
    -------
    list (per query) of list (per class) of row indices

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._selection import nearest_by_class
    >>> sim = np.array([[0.1, 0.9, 0.5, 0.2]])
    >>> y = np.array(["a", "a", "b", "b"])
    >>> [r.tolist() for r in nearest_by_class(sim, y, np.array(["a", "b"]), 1)[0]]
    [[1], [2]]
    """
    out: list[list[np.ndarray]] = [[] for _ in range(len(similarity))]
    for c in classes:
        rows = np.flatnonzero(y == c)
        kc = min(k, len(rows))
        # A stable sort breaks ties by row, so equal similarities pick the same rows everywhere.
        nearest = np.argsort(-similarity[:, rows], axis=1, kind="stable")[:, :kc]
        for q, order in enumerate(nearest):
            out[q].append(rows[order])
    return out


def arrange(by_class: Sequence[np.ndarray], order: str, rng: np.random.RandomState) -> list[int]:
    """Put the chosen rows of each class into one prompt order.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._selection import arrange
    >>> rows = [np.array([0, 1]), np.array([10, 11]), np.array([20])]
    >>> out = arrange(rows, "interleave", np.random.RandomState(0))
    >>> sorted(out[:3]) == [0, 10, 20] and sorted(out[3:]) == [1, 11]
    True
    """
    if order == "shuffle":
        flat = [int(i) for rows in by_class for i in rows]
        return [flat[i] for i in rng.permutation(len(flat))]
    out: list[int] = []
    for r in range(max((len(rows) for rows in by_class), default=0)):
        for c in rng.permutation(len(by_class)):
            if r < len(by_class[c]):
                out.append(int(by_class[c][r]))
    return out


def rng_for(seed: int, rows: Sequence[int]) -> np.random.RandomState:
    """A generator fixed by the seed and the set of rows.

    Queries that get the same examples then get them in the same order, so they
    share one prompt and one prefix cache.
    """
    key = np.asarray(sorted(int(r) for r in rows), dtype=np.int64).tobytes()
    return np.random.RandomState((seed + zlib.crc32(key)) % 2**32)
