"""What the classifier's ``head`` parameter becomes: the one place that knows every head.

It sits above the heads (:mod:`skllm_fewshot._heads`) and fine-tuning
(:mod:`skllm_fewshot._finetuning`), which builds on them, so neither imports the other
to resolve ``head="lora"``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import is_classifier

from ._finetuning import LoRAFineTuning
from ._heads import (
    HEAD_FEATURES,
    FeatureHead,
    KNNPrompting,
    MultiLabelFeatureHead,
    MultiLabelPromptHead,
    PromptHead,
)
from ._protocols import Head, HeadBuilder


def make_head(
    head: Any,
    calibrate: bool | str,
    layers: Any = "auto",
    kind: str = "auto",
    multi_label: bool = False,
    threshold: Any = "auto",
    random_state: Any = None,
) -> Head:
    """The head for the classifier's ``head`` parameter, with a clear error for a bad one.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skllm_fewshot._head_factory import make_head
    >>> type(make_head(None, True)).__name__, type(make_head(LogisticRegression(), True)).__name__
    ('PromptHead', 'FeatureHead')
    """
    if head is None:
        if multi_label:
            return MultiLabelPromptHead(calibrate, threshold, random_state)
        return PromptHead(calibrate, random_state)
    if isinstance(head, str) and head == "knn":
        head = KNNPrompting()
    if isinstance(head, str) and head == "lora":
        head = LoRAFineTuning()
    # A head object that builds its own head (LoRAFineTuning), or a classifier.
    builds = isinstance(head, HeadBuilder)
    usable = hasattr(head, "fit") and hasattr(head, "predict_proba") and hasattr(head, "get_params")
    if not (builds or (usable and is_classifier(head))):
        raise ValueError(
            f"head={head!r} is not valid; use None (the prompt's label softmax), 'knn', 'lora' (fine-tuning, "
            "or LoRAFineTuning(...)), or a scikit-learn classifier with predict_proba, e.g. LogisticRegression()."
        )
    if kind not in HEAD_FEATURES:
        raise ValueError(
            f"head_features={kind!r} is not valid; use one of {', '.join(map(repr, HEAD_FEATURES))}."
        )
    if builds:
        return head.build_head(layers, "hidden" if kind == "auto" else kind, threshold, random_state)
    if multi_label:
        return MultiLabelFeatureHead(FeatureHead(head, layers, kind), threshold)
    return FeatureHead(head, layers, kind)
