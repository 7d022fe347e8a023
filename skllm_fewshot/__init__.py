"""skllm-fewshot: an instruction-tuned causal language model as a scikit-learn classifier."""

from .classifier import FewShotLLMClassifier
from .loading import clear_model_cache, model_cache_info
from .model_selection import FewShotLLMClassifierCV
from .reference import check_model

__all__ = [
    "FewShotLLMClassifier",
    "FewShotLLMClassifierCV",
    "check_model",
    "clear_model_cache",
    "model_cache_info",
]
__version__ = "0.1.0"
