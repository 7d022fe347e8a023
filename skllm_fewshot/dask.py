"""Score Dask collections with a fitted estimator, one partition at a time, on a cluster.

The estimator is shipped to the workers as one task of the graph: each worker
receives it once per job, without the weights (a model given by name or path is
not pickled), builds its runtime once, and loads the model through the
library's process-wide model cache, so a worker process reads
the weights once and keeps them for every later partition and every later job.

Model selection needs nothing from this module: ``GridSearchCV(..., n_jobs=-1)``
inside ``joblib.parallel_config(backend="dask")`` runs its fits and scores on the
workers of the active ``distributed.Client``. See ``docs/dask.md``.

Needs the ``dask`` extra: ``pip install "skllm-fewshot[dask]"``.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

try:
    import dask
    import dask.dataframe as dd
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skllm_fewshot.dask needs Dask: install the extra with "
        '`pip install "skllm-fewshot[dask]"` (dask[dataframe] and distributed).'
    ) from exc

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

__all__ = ["for_workers", "predict", "predict_proba"]


def _texts_of(X: Any, column: str | None) -> Any:
    """The one text column of a Dask Series or DataFrame, as a Dask Series."""
    if isinstance(X, dd.DataFrame):
        if column is not None:
            return X[column]
        if len(X.columns) != 1:
            raise ValueError(
                f"X is a Dask DataFrame with {len(X.columns)} columns; pass column= (the text "
                "column's name) or the column itself, e.g. ddf['text']."
            )
        return X[X.columns[0]]
    if isinstance(X, dd.Series):
        if column is not None:
            raise ValueError("column= applies to a Dask DataFrame; X is already a Series.")
        return X
    raise TypeError(
        f"X must be a Dask Series or DataFrame; got {type(X).__name__}. For in-memory data call "
        "the estimator's own predict_proba, or wrap it: dask.dataframe.from_pandas(series, npartitions=...)."
    )


def _absolute(source: Any) -> Any:
    # A relative path means the client's working directory; a worker may run in
    # another one (or another machine with the same shared folder).
    if isinstance(source, (str, os.PathLike)) and not os.path.isabs(source) and os.path.exists(source):
        return os.path.abspath(source)
    return source


def for_workers(estimator: Any) -> Any:
    """The estimator as it travels to the workers: fitted, weights-free, paths absolute.

    Parameters
    ----------
    estimator : FewShotLLMClassifier
        A fitted estimator.

    Returns
    -------
    FewShotLLMClassifier
        ``estimator`` itself, or a shallow copy whose relative ``model`` and
        ``tokenizer`` paths are made absolute (a worker may run elsewhere).

    Examples
    --------
    >>> from skllm_fewshot.dask import for_workers
    >>> for_workers(clf).model  # doctest: +SKIP
    '/abs/path/to/model'
    """
    check_is_fitted(estimator)
    if not isinstance(estimator.model, (str, os.PathLike, type(None))):
        warnings.warn(
            "The estimator holds a loaded model object, which is pickled with it and sent to every "
            "worker. Pass model= a name, folder or .gguf path instead, so that each worker loads "
            "the weights once itself (the process-wide cache).",
            UserWarning,
            stacklevel=3,
        )
    model, tokenizer = _absolute(estimator.model), _absolute(estimator.tokenizer)
    if model is estimator.model and tokenizer is estimator.tokenizer:
        return estimator
    # A shallow copy: the user's estimator keeps its parameters and its runtime.
    shipped = copy.copy(estimator)
    shipped.model, shipped.tokenizer = model, tokenizer
    return shipped


def _columns(estimator: Any) -> list:
    return np.asarray(estimator.classes_).tolist()


def _proba_partition(texts: pd.Series, estimator: Any, columns: list) -> pd.DataFrame:
    # Empty partitions are common (filters, repartitions); the estimator rejects
    # zero texts, and there is nothing to score.
    if len(texts) == 0:
        return pd.DataFrame(np.empty((0, len(columns))), index=texts.index, columns=columns)
    return pd.DataFrame(estimator.predict_proba(texts), index=texts.index, columns=columns)


def _argmax_partition(proba: pd.DataFrame, classes: np.ndarray) -> pd.Series:
    # The estimator's own rule (np.argmax: the first class of a tie).
    return pd.Series(classes[np.argmax(proba.to_numpy(), axis=1)], index=proba.index, dtype=classes.dtype)


def predict_proba(estimator: Any, X: Any, *, column: str | None = None) -> dd.DataFrame:
    """Class probabilities of the texts of a Dask collection, scored partition by partition.

    Lazy: nothing runs until ``.compute()`` (or ``.persist()``, ``.to_parquet()``).
    Each partition is scored by ``estimator.predict_proba`` on a worker; the
    estimator reaches each worker once per job, without the weights, and the
    worker's process-wide model cache loads them once per process.

    Parameters
    ----------
    estimator : FewShotLLMClassifier
        A fitted estimator. Give its ``model`` as a name or path that every
        worker can read (a model object would be pickled to the workers).
        A relative path is made absolute on the client.
    X : dask.dataframe.Series or dask.dataframe.DataFrame
        The texts: a Series, a one-column DataFrame, or a DataFrame with ``column``.
    column : str, optional
        The text column of a DataFrame ``X``.

    Returns
    -------
    dask.dataframe.DataFrame
        One float64 column per class, named by the class, in ``classes_`` order;
        the index and the partitions are those of the texts.

    See Also
    --------
    predict : the most probable class of each text.

    Examples
    --------
    >>> import dask.dataframe as dd, pandas as pd
    >>> from distributed import Client, LocalCluster
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> from skllm_fewshot.dask import predict_proba
    >>> clf = FewShotLLMClassifier("path/to/model").fit(X_train, y_train)  # doctest: +SKIP
    >>> texts = dd.from_pandas(pd.Series(X_test), npartitions=8)  # doctest: +SKIP
    >>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster):
    ...     proba = predict_proba(clf, texts).compute()  # doctest: +SKIP
    >>> list(proba.columns) == list(clf.classes_)  # doctest: +SKIP
    True
    """
    texts = _texts_of(X, column)
    shipped = for_workers(estimator)
    columns = _columns(shipped)
    # One task holds the estimator: every partition of a worker gets the same
    # object, so its runtime (prompt tokens, prefix key/value cache) is built
    # once per worker and job, not once per partition.
    on_workers = dask.delayed(shipped, pure=True)
    meta = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}, index=texts._meta.index)
    meta.columns = columns  # class labels as they are (ints stay ints)
    return texts.map_partitions(_proba_partition, on_workers, columns, meta=meta)


def predict(estimator: Any, X: Any, *, column: str | None = None) -> dd.Series:
    """The most probable class of each text of a Dask collection.

    Computed from :func:`predict_proba`'s partitions, with the estimator's rule
    (the first class of a tie), so the two agree.

    Parameters
    ----------
    estimator : FewShotLLMClassifier
        A fitted estimator; see :func:`predict_proba`.
    X : dask.dataframe.Series or dask.dataframe.DataFrame
        The texts: a Series, a one-column DataFrame, or a DataFrame with ``column``.
    column : str, optional
        The text column of a DataFrame ``X``.

    Returns
    -------
    dask.dataframe.Series
        The predicted class of each text, with the texts' index.

    Examples
    --------
    >>> from skllm_fewshot.dask import predict
    >>> labels = predict(clf, texts).compute()  # doctest: +SKIP
    """
    proba = predict_proba(estimator, X, column=column)
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind in "US":
        classes = classes.astype(object)
    meta = pd.Series(np.empty(0, dtype=classes.dtype), index=proba._meta.index)
    return proba.map_partitions(_argmax_partition, classes, meta=meta)
