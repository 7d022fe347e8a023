"""skllm-fewshot: a causal language model as a scikit-learn classifier.

The estimators and the objects a user passes to them live here; the public
submodules are :mod:`~skllm_fewshot.model_selection` (the search and its parts),
:mod:`~skllm_fewshot.datasets`, :mod:`~skllm_fewshot.reference` (the seed notebook's
loop), :mod:`~skllm_fewshot.dask` and :mod:`~skllm_fewshot.exceptions`. Modules whose
name starts with an underscore are the implementation and may change without notice.
"""

from ._active import suggest_labels
from ._classifier import FewShotLLMClassifier
from ._engine import clear_feature_cache
from ._ensemble import ProductOfExperts
from ._families import engine_support
from ._feature_extraction import LLMFeatures
from ._finetuning import LoRAFineTuning
from ._heads import KNNPrompting
from ._loading import clear_model_cache, embedded_model_path, load_model, model_cache_info
from ._search import FewShotLLMClassifierCV
from .reference import check_model

__all__ = [
    "FewShotLLMClassifier",
    "FewShotLLMClassifierCV",
    "KNNPrompting",
    "LLMFeatures",
    "LoRAFineTuning",
    "ProductOfExperts",
    "check_model",
    "clear_feature_cache",
    "clear_model_cache",
    "embedded_model_path",
    "engine_support",
    "load_model",
    "model_cache_info",
    "suggest_labels",
]
__version__ = "0.2.0"
