"""Checks of user input that fail early, with messages that name the row and the fix."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["check_texts", "check_label_words", "check_choice", "check_int"]

# Private-use code points mark user text while a chat template renders.
_RESERVED = ("\ue000", "\ue001")


def _is_missing(value: Any) -> bool:
    """None, NaN (any float type), or pandas' NA / NaT."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isnan(value))


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if _is_missing(value):
        return "NaN" if isinstance(value, (float, np.floating)) else f"missing ({value!r})"
    return f"a {type(value).__name__} ({value!r:.40})"


def check_texts(X: Any, *, name: str = "X") -> np.ndarray:
    """Return X as a 1-D object array of str, or raise a clear error.

    Parameters
    ----------
    X : list, tuple, numpy array, pandas Series or one-column DataFrame of str

    Returns
    -------
    ndarray of shape (n_samples,), dtype object

    Examples
    --------
    >>> from skllm_fewshot._validation import check_texts
    >>> check_texts(["a", "b"])
    array(['a', 'b'], dtype=object)
    >>> check_texts(["a", None])
    Traceback (most recent call last):
    ...
    TypeError: X[1] is None, not a str. Drop or fill missing texts first, e.g. X.fillna("").
    """
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"{name} is a DataFrame with {X.shape[1]} columns; pass the one text column, e.g. df['text']."
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy(dtype=object)
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of texts, not a single {type(X).__name__}; wrap it in a list.")
    if not hasattr(X, "__len__") or isinstance(X, Mapping):
        raise TypeError(f"{name} must be a list, array or Series of str; got {type(X).__name__}.")
    arr = np.empty(len(X), dtype=object)
    try:
        for i, value in enumerate(X):
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape[0] == 1:
                value = value[0]  # a row of a one-column 2-D array
            elif isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            arr[i] = value
    except TypeError as exc:  # e.g. a 0-d array
        raise TypeError(f"{name} must be a 1-D sequence of str.") from exc
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] != 1:
        raise ValueError(f"{name} has shape {X.shape}; pass a 1-D sequence of texts (one column).")
    if isinstance(X, np.ndarray) and X.ndim > 2:
        raise ValueError(f"{name} has shape {X.shape}; pass a 1-D sequence of texts.")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty; pass at least one text.")
    for i, value in enumerate(arr):
        if isinstance(value, str):
            if value.startswith(_RESERVED) or any(c in value for c in _RESERVED):
                raise ValueError(
                    f"{name}[{i}] contains the reserved code point U+E000 or U+E001; remove it."
                )
            continue
        if isinstance(value, (list, tuple, np.ndarray)):
            raise ValueError(f"{name}[{i}] is {_describe(value)}; each row must be one str, not a sequence.")
        if _is_missing(value):
            raise TypeError(
                f"{name}[{i}] is {_describe(value)}, not a str. "
                f'Drop or fill missing texts first, e.g. X.fillna("").'
            )
        if isinstance(value, bytes):
            raise TypeError(f"{name}[{i}] is bytes; decode it first, e.g. value.decode('utf-8').")
        raise TypeError(f"{name}[{i}] is {_describe(value)}, not a str; convert it, e.g. X.astype(str).")
    return arr


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; use one of {', '.join(map(repr, choices))}.")
    return value


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; use an integer >= {minimum}.")
    return int(value)


def check_label_words(label_words: Any, classes: np.ndarray) -> list[str]:
    """The label word of each class, in class order.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._validation import check_label_words
    >>> check_label_words({0: "negative", 1: "positive"}, np.array([0, 1]))
    ['negative', 'positive']
    """
    if label_words is None:
        words = [str(c) for c in classes]
    elif isinstance(label_words, Mapping):
        missing = [c for c in classes if c not in label_words]
        if missing:
            raise ValueError(
                f"label_words has no word for the classes {missing!r}; give every class in y a word."
            )
        words = [label_words[c] for c in classes]
    else:
        raise TypeError(f"label_words must be a dict mapping class -> word; got {type(label_words).__name__}.")
    for c, w in zip(classes, words):
        if not isinstance(w, str) or not w.strip():
            raise ValueError(f"The label word of class {c!r} is {w!r}; use a non-empty str.")
    seen: dict[str, Any] = {}
    for c, w in zip(classes, words):
        if w in seen:
            raise ValueError(
                f"Classes {seen[w]!r} and {c!r} have the same label word {w!r}; give each class its own word."
            )
        seen[w] = c
    return words
