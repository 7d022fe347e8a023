"""Choosing how to use the labelled rows: the cross-validated search and its parts.

:class:`FewShotLLMClassifierCV` cross-validates the prompt, heads on the model's
features and (with ``peft``) LoRA fine-tuning, then refits its pick. The functions
here are its defaults, for a user who wants to change one part of the search:

>>> from skllm_fewshot.model_selection import default_cv
>>> default_cv(2).get_n_splits()
8
"""

from ._search import (
    CONSTANT,
    FINE_TUNE_MAX_CLASSES,
    FINE_TUNE_MIN_ROWS,
    MIN_ROWS,
    NOISE_SE,
    FewShotLLMClassifierCV,
    default_candidates,
    default_cv,
    default_fallback,
    pick_within_noise,
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
