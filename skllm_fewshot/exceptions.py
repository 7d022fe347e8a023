"""The library's own exception and warning classes.

>>> from skllm_fewshot import load_model
>>> from skllm_fewshot.exceptions import ModelNotAvailableError
>>> try:
...     load_model("no-such-folder/no-such-model.gguf")
... except ModelNotAvailableError as error:
...     print(type(error).__name__)
ModelNotAvailableError
"""

from ._embedded import ModelNotAvailableError
from ._gguf_cache import ModelCacheWarning
from ._persistence import InconsistentVersionWarning

__all__ = ["InconsistentVersionWarning", "ModelCacheWarning", "ModelNotAvailableError"]
