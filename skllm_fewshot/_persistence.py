"""Pickling a fitted estimator: what is kept, and the version check on loading.

A fitted estimator is pickled without its scoring engine (the model's weights, the
prefix cache): those are rebuilt on first use, through the process-wide model
cache. The state records the library version that made it, and loading it with
another minor version warns, as scikit-learn does for its own estimators.
"""

from __future__ import annotations

import warnings

__all__ = [
    "InconsistentVersionWarning",
    "VERSION_KEY",
    "check_pickle_version",
    "library_version",
    "restore",
    "saved",
]

# Where a pickled estimator's state records the library version that made it.
VERSION_KEY = "_skllm_fewshot_version"


class InconsistentVersionWarning(UserWarning):
    """A fitted estimator was pickled by another minor version of skllm-fewshot.

    Like scikit-learn's warning of the same name: the fitted state may not match
    this version's code. The message says what to do.

    Parameters
    ----------
    estimator_name : str
        The class of the unpickled estimator.
    original_version : str or None
        The version that pickled the estimator; None when the pickle does not say.
    current_version : str
        The installed version.

    Attributes
    ----------
    estimator_name, original_version, current_version : str
        The parameters, as given.
    """

    def __init__(self, *, estimator_name: str, original_version: str | None, current_version: str) -> None:
        self.estimator_name = estimator_name
        self.original_version = original_version
        self.current_version = current_version
        if original_version:
            made = f"skllm-fewshot {original_version}"
            install = f"pip install skllm-fewshot=={original_version}"
        else:
            made = "an earlier skllm-fewshot build that did not record its version"
            install = "pip install skllm-fewshot==<that version>"
        super().__init__(
            f"This {estimator_name} was pickled with {made} and is loaded with {current_version}; "
            "its fitted state may not match this version, so predictions may differ or fail. Refit it "
            f"with {current_version} (a prompt-only fit takes seconds; one with a head or an adapter "
            "trains it again), or load it where the "
            f"version that made it is installed: {install}."
        )


def library_version() -> str:
    """The installed skllm-fewshot version (``skllm_fewshot.__version__``)."""
    from . import __version__  # at call time: the package is imported by then

    return __version__


def _minor(version: str | None) -> tuple[int, ...] | None:
    if not isinstance(version, str):
        return None
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release[:2]
    except InvalidVersion:
        return None


def check_pickle_version(original: str | None, estimator_name: str) -> None:
    """Warn when a pickle was made by another major or minor version of the library.

    Parameters
    ----------
    original : str or None
        The version stored in the pickle's state; None when it stores none.
    estimator_name : str
        Named in the warning.

    Examples
    --------
    >>> import warnings
    >>> from skllm_fewshot import __version__
    >>> from skllm_fewshot._persistence import check_pickle_version
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error")
    ...     check_pickle_version(__version__, "FewShotLLMClassifier")  # the same version: silent
    """
    current = library_version()
    old = _minor(original)
    if old is None or old != _minor(current):
        warnings.warn(
            InconsistentVersionWarning(
                estimator_name=estimator_name, original_version=original, current_version=current
            ),
            stacklevel=4,  # the caller of pickle.loads: restore, __setstate__, pickle
        )


def saved(state: dict, transient: tuple[str, ...]) -> dict:
    """The state to pickle: a copy without the ``transient`` entries, with the version.

    Examples
    --------
    >>> from skllm_fewshot._persistence import VERSION_KEY, saved
    >>> out = saved({"a": 1, "_engine": object()}, ("_engine",))
    >>> sorted(out) == sorted(["a", VERSION_KEY])
    True
    """
    # A copy: on Python >= 3.11 object.__getstate__ returns the live __dict__.
    out = {k: v for k, v in state.items() if k not in transient}
    out[VERSION_KEY] = library_version()
    return out


def restore(state: dict, estimator_name: str) -> dict:
    """The pickled state without the version entry, warning if the version differs."""
    state = dict(state)
    check_pickle_version(state.pop(VERSION_KEY, None), estimator_name)
    return state
