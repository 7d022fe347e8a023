"""Which training rows become the prompt's examples, and in what order.

Two selections: ``"stratified"`` draws the same ``k`` rows of each class for every
query; ``"similar"`` takes, for each query, the ``k`` rows of each class nearest to
it. Two orders: ``"shuffle"`` (a random permutation) and ``"interleave"`` (rounds of
one example per class, the classes shuffled in each round, so that no class is
always nearest the query).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["EXAMPLE_ORDERS", "EXAMPLE_SELECTIONS", "arrange", "nearest_by_class", "rng_for", "stratified_by_class"]

EXAMPLE_SELECTIONS = ("stratified", "similar")
EXAMPLE_ORDERS = ("shuffle", "interleave")


def stratified_by_class(
    y: np.ndarray, classes: np.ndarray, k: int, rng: np.random.RandomState
) -> list[np.ndarray]:
    """``k`` random rows of each class (all of them where a class has fewer).

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot.selection import stratified_by_class
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
    >>> from skllm_fewshot.selection import nearest_by_class
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


def arrange(
    by_class: Sequence[np.ndarray], order: str, rng: np.random.RandomState
) -> list[int]:
    """Put the chosen rows of each class into one prompt order.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot.selection import arrange
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
