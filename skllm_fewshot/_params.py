"""Parameters that hold a model or tokenizer object: shown by name, shared by clones."""

from __future__ import annotations

import os
from typing import Any

from sklearn.base import BaseEstimator, clone

__all__ = ["ModelParamsMixin"]


class _Shown:
    """A parameter shown by a short name in the estimator's repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _is_reference(value: Any) -> bool:
    """Whether a model/tokenizer parameter names what to load (rather than being the object)."""
    return value is None or isinstance(value, (str, os.PathLike))


def _short(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, dict, tuple, list)):
        return value
    name = getattr(value, "name_or_path", "") or ""
    return _Shown(f"<{type(value).__name__}{' ' + repr(name) if name else ''}>")


class ModelParamsMixin:
    """``repr``, the HTML repr and ``clone`` for estimators with ``model``/``tokenizer`` objects."""

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # A model object's own repr is hundreds of lines; show its class and name.
        shown = type(self).__new__(type(self))
        shown.__dict__.update({k: _short(v) for k, v in self.get_params(deep=False).items()})
        return BaseEstimator.__repr__(shown, N_CHAR_MAX)

    def _get_params_html(self, *args: Any, **kwargs: Any) -> Any:
        # The HTML repr's parameter table (scikit-learn >= 1.7): the same short names.
        # Its arguments are passed as they come: 1.8 added doc_link to 1.7's (deep).
        params = super()._get_params_html(*args, **kwargs)
        for name, value in list(params.items()):
            params[name] = _short(value)
        return params

    def __sklearn_clone__(self) -> Any:
        # A model or tokenizer object is shared, not deep-copied as clone would: the
        # library never changes it, and a grid search would copy the weights per fit.
        params = self.get_params(deep=False)
        shared = {k: params.pop(k) for k in ("model", "tokenizer") if not _is_reference(params[k])}
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, **shared)
