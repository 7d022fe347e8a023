"""Checks of user input that fail early, with messages that name the row and the fix."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils import get_tags

# scikit-learn's own parameter checks. The module is private to scikit-learn, so it is
# imported here only, and tests/test_internals.py fails with a clear message if a
# release moves it.
from sklearn.utils._param_validation import (
    HasMethods,
    Hidden,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)

from ._prompt import RESERVED_CODE_POINTS

__all__ = [
    "HasMethods",
    "Hidden",
    "Interval",
    "StrOptions",
    "validate_params",
    "check_label_descriptions",
    "check_label_texts",
    "check_label_words",
    "check_fit_targets",
    "class_counts",
    "check_named_estimators",
    "check_param_text",
    "check_params",
    "check_targets",
    "check_texts",
    "copy_input_attributes",
    "shared_input_tags",
    "warn_numeric_classes",
    "warn_truncated",
]


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


def _show(value: Any) -> str:
    """``repr`` of a class label as the user wrote it: ``'a'``, not ``np.str_('a')``."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _surrogate_at(text: str) -> int:
    """Index of the first surrogate code point (U+D800-U+DFFF) in ``text``, or -1.

    A Python str holds one only after bad decoding (``errors="surrogateescape"``,
    UTF-16 code units read one by one). UTF-8 cannot encode surrogates, so the
    tokenizers fail on them with an unrelated ``TypeError``; every other code
    point, NUL and non-characters included, is valid text.
    """
    if text.isascii():
        return -1
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return -1


def _surrogate_problem(where: str, text: str, at: int) -> str:
    """The error message for a surrogate at ``text[at]``: what it is and how to fix it."""
    code = ord(text[at])
    pair = at + 1 < len(text) and 0xD800 <= code <= 0xDBFF and 0xDC00 <= ord(text[at + 1]) <= 0xDFFF
    if pair:
        return (
            f"{where} contains the UTF-16 surrogate pair U+{code:04X} U+{ord(text[at + 1]):04X} at "
            f"character {at}, which no tokenizer can encode: the text was read as UTF-16 code units. "
            "Join the pairs first, e.g. text.encode('utf-16', 'surrogatepass').decode('utf-16')."
        )
    if 0xDC80 <= code <= 0xDCFF:
        # What errors="surrogateescape" makes of an undecodable byte: the byte is recoverable.
        fix = (
            "decode the raw bytes with errors='replace' instead of 'surrogateescape', e.g. "
            "text.encode('utf-8', 'surrogateescape').decode('utf-8', errors='replace')"
        )
    else:
        fix = "replace it, e.g. text.encode('utf-8', errors='replace').decode('utf-8')"
    return (
        f"{where} contains the lone surrogate U+{code:04X} at character {at}, left by bad decoding; "
        f"no tokenizer can encode it. Fix the text first: {fix}."
    )


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

    Text left with lone surrogates by bad decoding is rejected, not guessed at:

    >>> check_texts(["ok", "caf\\udce9"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: X[1] contains the lone surrogate U+DCE9 at character 3, left by bad decoding; ...
    """
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # pandas DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"{name} is a DataFrame with {X.shape[1]} columns; pass the one text column, e.g. df['text']."
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):
        X = X.to_numpy(dtype=object)
    if isinstance(X, (str, bytes)) or (isinstance(X, np.ndarray) and X.ndim == 0):
        raise TypeError(
            f"{name} must be a sequence of texts, not a single {type(X).__name__}; wrap it in a list."
        )
    if isinstance(X, (set, frozenset)):
        # Probabilities come back in X's order, and a set has none to match them to.
        raise TypeError(
            f"{name} is a {type(X).__name__}, which has no order; pass a list, e.g. sorted({name})."
        )
    if not hasattr(X, "__len__") or isinstance(X, Mapping):
        raise TypeError(
            f"{name} must be a list, array or Series of str; got {type(X).__name__}. "
            f"Convert it first, e.g. list({name})."
        )
    arr = np.empty(len(X), dtype=object)
    try:
        for i, value in enumerate(X):
            if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape[0] == 1:
                value = value[0]  # a row of a one-column 2-D array
            elif isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            arr[i] = value
    except TypeError as exc:
        raise TypeError(f"{name} must be a 1-D sequence of str; pass a list, 1-D array or Series.") from exc
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] != 1:
        raise ValueError(f"{name} has shape {X.shape}; pass a 1-D sequence of texts (one column).")
    if isinstance(X, np.ndarray) and X.ndim > 2:
        raise ValueError(f"{name} has shape {X.shape}; pass a 1-D sequence of texts.")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty; pass at least one text.")
    for i, value in enumerate(arr):
        if isinstance(value, str):
            if any(c in value for c in RESERVED_CODE_POINTS):
                raise ValueError(f"{name}[{i}] contains the reserved code point U+E000 or U+E001; remove it.")
            at = _surrogate_at(value)
            if at >= 0:
                raise ValueError(_surrogate_problem(f"{name}[{i}]", value, at))
            continue
        if isinstance(value, (list, tuple, np.ndarray)):
            raise ValueError(
                f"{name}[{i}] is {_describe(value)}; each row must be one str, not a sequence. Pass the one "
                f"text column, or join each row's parts first, e.g. [' '.join(row) for row in {name}]."
            )
        if _is_missing(value):
            raise TypeError(
                f"{name}[{i}] is {_describe(value)}, not a str. "
                f'Drop or fill missing texts first, e.g. X.fillna("").'
            )
        if isinstance(value, bytes):
            raise TypeError(f"{name}[{i}] is bytes; decode it first, e.g. value.decode('utf-8').")
        raise TypeError(f"{name}[{i}] is {_describe(value)}, not a str; convert it, e.g. X.astype(str).")
    return arr


def check_targets(y: Any, *, name: str = "y") -> Any:
    """Reject missing labels in ``y``, naming the row; return ``y`` unchanged.

    scikit-learn turns a NaN among str labels into the class ``"nan"`` without a
    word, and fails on None or ``pd.NA`` with an unrelated ``TypeError``. A missing
    label is a data problem the caller must decide on.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    name : str, default="y"

    Returns
    -------
    y : the input, untouched

    Examples
    --------
    >>> from skllm_fewshot._validation import check_targets
    >>> check_targets(["a", "b"])
    ['a', 'b']
    >>> check_targets(["a", float("nan")])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: y[1] is NaN: a label is missing. Drop those rows first, e.g. keep = y.notna(); ...
    """
    values = y.to_numpy(dtype=object) if hasattr(y, "to_numpy") and not isinstance(y, np.ndarray) else y
    if isinstance(values, np.ndarray) and values.dtype.kind not in "Ofc":
        return y  # int, bool, ...: nothing can be missing
    try:
        rows = enumerate(np.asarray(values, dtype=object).ravel()) if np.ndim(values) <= 1 else ()
    except (TypeError, ValueError):
        return y  # not array-like: scikit-learn's own checks say so
    for i, value in rows:
        if _is_missing(value):
            raise ValueError(
                f"{name}[{i}] is {_describe(value)}: a label is missing. Drop those rows first, "
                f"e.g. keep = {name}.notna(); X, {name} = X[keep], {name}[keep]."
            )
    return y


def check_param_text(name: str, value: Any, *, allow_none: bool = False) -> str | None:
    """A str parameter written into the prompt (``instruction``, ``text_name``, ...).

    Examples
    --------
    >>> from skllm_fewshot._validation import check_param_text
    >>> check_param_text("text_name", "Tweet")
    'Tweet'
    >>> check_param_text("text_name", 3)
    Traceback (most recent call last):
    ...
    ValueError: text_name must be a str; got int.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        kind = "a str or None" if allow_none else "a str"
        raise ValueError(f"{name} must be {kind}; got {type(value).__name__}.")
    at = _surrogate_at(value)
    if at >= 0:
        raise ValueError(_surrogate_problem(name, value, at))
    return value


def validate_params(est: Any) -> None:
    """Check ``est``'s parameters against its ``_parameter_constraints`` table.

    As scikit-learn checks its own estimators at the start of ``fit``: a value of the
    wrong type or out of range raises an ``InvalidParameterError`` (a ``ValueError``
    and a ``TypeError``) that names the parameter, what it accepts and what it got.

    Examples
    --------
    >>> from skllm_fewshot import KNNPrompting
    >>> from skllm_fewshot._validation import validate_params
    >>> try:
    ...     validate_params(KNNPrompting(n_neighbors=0))
    ... except ValueError as error:
    ...     print(error)
    The 'n_neighbors' parameter of KNNPrompting must be an int in the range [1, inf). Got 0 instead.
    """
    validate_parameter_constraints(
        est._parameter_constraints, est.get_params(deep=False), caller_name=type(est).__name__
    )


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
                f"label_words has no word for the classes [{', '.join(map(_show, missing))}]; "
                "give every class in y a word."
            )
        words = [label_words[c] for c in classes]
    else:
        raise TypeError(
            f"label_words must be a dict mapping class -> word; got {type(label_words).__name__}."
        )
    for c, w in zip(classes, words):
        if not isinstance(w, str) or not w.strip():
            raise ValueError(f"The label word of class {_show(c)} is {_show(w)}; use a non-empty str.")
        at = _surrogate_at(w)
        if at >= 0:
            where = f"The label word of class {_show(c)}" + (
                " (the class itself)" if label_words is None else ""
            )
            raise ValueError(_surrogate_problem(where, w, at))
    seen: dict[str, Any] = {}
    for c, w in zip(classes, words):
        if w in seen:
            raise ValueError(
                f"Classes {_show(seen[w])} and {_show(c)} have the same label word {w!r}; "
                "give each class its own word."
            )
        seen[w] = c
    return words


def warn_numeric_classes(classes: np.ndarray, label_words: Any) -> None:
    """Warn when number classes have no label words: the model would score digits."""
    if label_words is None and classes.dtype.kind in "iub":
        shown = ", ".join(map(str, classes[:4])) + (", ..." if len(classes) > 4 else "")
        warnings.warn(
            f"The classes are numbers ({shown}) and label_words is None, so the prompt shows and the model "
            "scores those digits. Give each class a word, e.g. label_words={0: 'negative', 1: 'positive'}. "
            "(StackingClassifier, CalibratedClassifierCV and cross_val_predict pass classes encoded as 0..n-1.)",
            UserWarning,
            stacklevel=5,
        )


def check_params(est: Any) -> None:
    """What a FewShotLLMClassifier's table of constraints cannot say: text written into
    the prompt, the deprecated ``scoring`` name, and parameters that exclude each other."""
    for name in ("text_name", "label_name", "instruction"):
        check_param_text(name, getattr(est, name), allow_none=name == "instruction")
    if est.scoring != "deprecated":
        if est.label_scoring not in ("full_label", est.scoring):
            raise ValueError(
                f"scoring={est.scoring!r} and label_scoring={est.label_scoring!r} are the same parameter "
                "under its old and new names; set label_scoring only."
            )
        warnings.warn(
            f"The parameter 'scoring' was renamed 'label_scoring' in 0.2 and will be removed in 0.3; "
            f"use label_scoring={est.scoring!r}.",
            FutureWarning,
            stacklevel=4,
        )
    if (
        (est.head is not None or est.calibrate == "batch")
        and est.example_selection == "similar"
        and (est.n_examples_per_class > 0)
    ):
        raise ValueError(
            "A head and batch calibration learn from texts read under one prompt; use "
            "example_selection='stratified' with them."
        )


def check_label_descriptions(descriptions: Any, classes: np.ndarray) -> list[str] | None:
    """The description of each class, in class order (None when there are none).

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._validation import check_label_descriptions
    >>> check_label_descriptions({"a": "first", "b": "second"}, np.array(["a", "b"]))
    ['first', 'second']
    """
    if descriptions is None:
        return None
    if not isinstance(descriptions, Mapping):
        raise TypeError(
            f"label_descriptions must be a dict mapping class -> description; got {type(descriptions).__name__}."
        )
    missing = [c for c in classes if c not in descriptions]
    if missing:
        raise ValueError(
            f"label_descriptions has no description for the classes [{', '.join(map(_show, missing))}]; "
            "describe every class."
        )
    out = []
    for c in classes:
        text = descriptions[c]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"The description of class {_show(c)} is {_show(text)}; use a non-empty str.")
        out.append(check_param_text(f"The description of class {_show(c)}", text))
    return out


def check_zero_shot(X: Any, y: Any, n_examples_per_class: int) -> np.ndarray:
    """The class names of a row-less fit, ``fit(None, names)``.

    Examples
    --------
    >>> from skllm_fewshot._validation import check_zero_shot
    >>> check_zero_shot(None, ["neg", "pos"], 0)
    array(['neg', 'pos'], dtype=object)
    """
    if y is None:
        raise ValueError(
            "fit(None, y) is zero-shot from the class names: pass them as y, e.g. "
            "fit(None, ['negative', 'neutral', 'positive']); or pass X, the labelled texts."
        )
    if n_examples_per_class > 0:
        raise ValueError(
            f"X=None (zero-shot from the class names) has no rows to show as examples, but "
            f"n_examples_per_class={n_examples_per_class}; use n_examples_per_class=0, or pass labelled texts as X."
        )
    check_targets(y)
    values = y.to_numpy() if hasattr(y, "to_numpy") else list(y)
    names = np.asarray(values)
    if names.dtype.kind not in "biu":  # integer classes stay integers; the rest Python objects
        names = np.asarray(values, dtype=object)
    if names.ndim != 1:
        raise ValueError(f"With X=None, y must be a 1-D list of class names; got shape {names.shape}.")
    return names


def check_fit_targets(est: Any, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The texts, targets, classes and multi-label flag of ``est.fit(X, y)``.

    ``X=None`` is zero-shot (``y``: the class names); a 0/1 indicator ``y`` (or
    ``multi_label=True``) is multi-label, whose targets are the indicator matrix.
    """
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import validate_data

    from ._multilabel import check_indicator, is_indicator

    multi = est.multi_label is True or (est.multi_label == "auto" and X is not None and is_indicator(y))
    declared = getattr(est, "classes", None)
    check_declared_target(declared, zero_shot=X is None, multi_label=multi)
    if X is None:
        names = check_zero_shot(X, y, est.n_examples_per_class)
        if multi:
            if len(set(names.tolist())) != len(names):
                raise ValueError("With X=None and multi_label=True, y must name each label once.")
            return np.empty(0, dtype=object), np.zeros((0, len(names)), dtype=int), names, True
        check_classification_targets(names)
        return np.empty(0, dtype=object), names, _classes(names), False
    texts = check_texts(X)
    if multi:
        if not is_indicator(y):
            raise ValueError(
                "multi_label=True needs y as a 0/1 indicator matrix (one column per label), e.g. "
                "sklearn.preprocessing.MultiLabelBinarizer().fit_transform(label_sets)."
            )
        names, indicator = check_indicator(y)
        if len(indicator) != len(texts):
            raise ValueError(f"X has {len(texts)} texts but y has {len(indicator)} rows.")
        return texts, indicator, names, True
    if y is not None:  # None is left to validate_data, whose error scikit-learn's checks expect
        check_targets(y)
    # The checked 1-D texts, not X: a one-column DataFrame's column name is no feature
    # name, so fitting on df and predicting on df["text"] (or a list) does not warn.
    _, y = validate_data(est, texts, y, ensure_2d=False, dtype=None, ensure_all_finite=False)
    check_classification_targets(y)
    return texts, y, _classes(y) if declared is None else check_declared_classes(declared, y), False


def check_declared_target(declared: Any, zero_shot: bool, multi_label: bool) -> None:
    """Refuse ``classes=`` where the target has no rows per class to declare ahead of."""
    if declared is not None and (zero_shot or multi_label):
        raise ValueError(
            "classes= declares the classes of a one-label-per-row target ahead of their rows; "
            + (
                "with X=None, y names the classes"
                if zero_shot
                else "a multi-label target's columns are its labels"
            )
            + ": leave classes=None."
        )


def check_declared_classes(declared: Any, y: np.ndarray) -> np.ndarray:
    """The sorted classes of ``classes=``, checked to hold every class of ``y``."""
    from sklearn.utils.multiclass import check_classification_targets

    names = np.asarray(list(declared) if not hasattr(declared, "__array__") else declared)
    if names.ndim != 1:
        raise ValueError(f"classes must be one-dimensional (one entry per class); got shape {names.shape}.")
    check_classification_targets(names)
    classes = _classes(names)
    if len(classes) != len(names):
        raise ValueError(f"classes must name each class once; got {names.tolist()!r}.")
    missing = [c.item() if isinstance(c, np.generic) else c for c in np.unique(y) if not np.isin(c, classes)]
    if missing:
        raise ValueError(
            f"y has classes that classes= does not list: {missing!r}. classes= must hold every class of y "
            f"(got {classes.tolist()!r})."
        )
    return classes


def class_counts(y: np.ndarray, classes: np.ndarray, multi_label: bool) -> np.ndarray:
    """The labelled rows of each class (of each label: its positives)."""
    if multi_label:
        return np.asarray(y).sum(axis=0).astype(int)
    return np.array([int(np.sum(y == c)) for c in classes], dtype=int)


def _classes(y: np.ndarray) -> np.ndarray:
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(f"y has only one class ({classes[0]!r}); a classifier needs at least two classes.")
    return classes


def warn_truncated(cut: list[int], n_texts: int) -> None:
    """Say how many texts were cut to fit the model's context (stacklevel: predict's caller)."""
    if cut:
        warnings.warn(
            f"{len(cut)} of {n_texts} texts did not fit in the model's context with the prompt "
            "and were cut at the end.",
            UserWarning,
            stacklevel=3,
        )


def check_label_texts(est: Any, classes: np.ndarray) -> tuple[list[str], list[str] | None]:
    """A classifier's label words and descriptions, in class order, checked."""
    warn_numeric_classes(classes, est.label_words)
    return check_label_words(est.label_words, classes), check_label_descriptions(
        est.label_descriptions, classes
    )


def check_named_estimators(pairs: Any, param: str, reserved: tuple[str, ...] = ()) -> list[str]:
    """The names of a meta-estimator's ``[(name, estimator), ...]`` parameter, each with ``predict_proba``.

    ``param`` is the parameter's name in messages; ``reserved`` are names an estimator
    may not take (the meta-estimator's own parameters, for nested ``set_params``).
    """
    what = param[:-1].capitalize()  # "estimators" -> "Estimator"
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(f"{param} must be a non-empty list of (name, estimator) pairs.")
    names = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError(f"{param} must be (name, estimator) pairs; got {pair!r}.")
        name, estimator = pair
        if "__" in name or name in reserved:
            raise ValueError(f"{what} name {name!r} is not valid: no '__', and not a parameter's name.")
        if not hasattr(estimator, "predict_proba"):
            raise TypeError(f"{what} {name!r} ({type(estimator).__name__}) has no predict_proba.")
        names.append(name)
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique; got {names}.")
    return names


def shared_input_tags(tags: Any, pairs: Any) -> Any:
    """``tags`` taking the input that every estimator of ``[(name, estimator), ...]`` takes:
    the first one's, sparse or NaN only if all take them. Unchanged while ``pairs`` is not
    valid (fit says why)."""
    try:
        inputs = [get_tags(estimator).input_tags for _, estimator in pairs]
    except (TypeError, ValueError, AttributeError):
        return tags
    if inputs:
        tags.input_tags = inputs[0]
        tags.input_tags.sparse = all(t.sparse for t in inputs)
        tags.input_tags.allow_nan = all(t.allow_nan for t in inputs)
    return tags


def copy_input_attributes(meta: Any, fitted: Any) -> Any:
    """``n_features_in_`` and ``feature_names_in_`` of a fitted inner estimator, on ``meta``."""
    for name in ("n_features_in_", "feature_names_in_"):
        if hasattr(fitted, name):
            setattr(meta, name, getattr(fitted, name))
    return meta
