"""What the scoring engine may do with each model family, and why.

The engine's fast paths feed a model things a plain ``model(input_ids)`` call never
does: a 4-D attention mask (packed queries, the label trie), explicit position ids
after a reused prefix cache, and, for the models the library loads, its own block
attention function. Each is used only for the families where the family-matrix
test (``tests/test_families.py``) has shown it equal to the plain loop. Any other
model is scored by the ``"plain"`` layout: right-padded rows, a 2-D mask, the
model's own attention and masks, as any batched ``generate`` call runs it; exact
for every causal LM, slower for labels of several tokens.

Sliding-window attention (Mistral, Gemma 2 and 3, OLMo 3, Qwen2 with
``use_sliding_window``) is honoured by the engine's masks: a layer with a window
sees only the keys within it, as in the model's own masks.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["BLOCK_ATTENTION_FAMILIES", "MASK_FAMILIES", "EngineSupport", "engine_support"]

logger = logging.getLogger(__name__)

# model_type values whose models take the engine's 4-D float mask and explicit
# position ids after a prefix cache, and give the plain loop's scores (to 1e-4),
# per tests/test_families.py.
MASK_FAMILIES = frozenset(
    {
        "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2",
        "gemma3_text", "phi", "phi3", "olmo", "olmo2", "olmo3", "stablelm", "granite", "granitemoe",
        "gpt2", "gpt_neox", "gptj", "opt", "starcoder2", "cohere", "gpt_bigcode", "smollm3", "glm4",
        "falcon",
    }
)  # fmt: skip

# Families whose attention goes through transformers' AttentionInterface with SDPA
# semantics, so the engine's block attention computes what their own attention
# does. Gemma 2 is left out: its logits are soft-capped, which SDPA cannot do.
BLOCK_ATTENTION_FAMILIES = MASK_FAMILIES - {"gemma2", "falcon"}


@dataclass(frozen=True)
class EngineSupport:
    """How the engine scores one model.

    Attributes
    ----------
    masks : bool
        The 4-D-mask layouts (``"packed"``, ``"padded"``) are verified for the family;
        otherwise the ``"plain"`` layout is used.
    block_attention : bool
        The family may run the engine's block attention function.
    windows : dict
        ``{layer type: sliding window}`` for the layer types with a window, e.g.
        ``{"sliding_attention": 4096}``; empty when no layer has one.
    mask_per_layer_type : bool
        The model takes a dict ``{layer type: mask}`` as ``attention_mask``; needed
        when some layers have a window and others not.
    reason : str
        Why the model is scored by the plain layout ("" when it is not).
    """

    masks: bool
    block_attention: bool
    windows: dict
    mask_per_layer_type: bool
    reason: str = ""


def _model_type(model: Any) -> str:
    return getattr(model.config.get_text_config(), "model_type", None) or model.config.model_type


def _windows(config: Any) -> tuple[dict, bool]:
    """``{layer type: window}`` and whether every layer has the same attention."""
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", True) is False:
        window = None
    layer_types = getattr(config, "layer_types", None)
    if not window:
        return {}, True
    if not layer_types:
        return {"all": int(window)}, True
    sliding = {t for t in layer_types if "sliding" in t}
    return {t: int(window) for t in sliding}, len(set(layer_types)) == 1


def _takes_mask_dict(model: Any) -> bool:
    # Models with several layer types build one mask per type, and skip that when
    # given a dict {layer type: mask}; their source says so.
    body = getattr(model, "base_model", model)
    try:
        source = inspect.getsource(type(body).forward)
    except (OSError, TypeError):
        return False
    return "attention_mask, dict)" in source


def engine_support(model: Any) -> EngineSupport:
    """What the scoring engine may use for ``model``.

    Parameters
    ----------
    model : PreTrainedModel
        A causal language model.

    Returns
    -------
    EngineSupport

    Examples
    --------
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> tiny = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
    ...                                     num_hidden_layers=1, num_attention_heads=2))
    >>> support = engine_support(tiny)
    >>> support.masks, support.windows
    (True, {})
    """
    config = model.config.get_text_config()
    family = _model_type(model)
    windows, uniform = _windows(config)
    per_type = bool(windows) and not uniform and _takes_mask_dict(model)
    reason = ""
    if family not in MASK_FAMILIES:
        reason = f"the family {family!r} is not among those verified for the engine's 4-D masks"
    elif getattr(config, "alibi", False):
        reason = f"this {family!r} model uses ALiBi positions, built from a 2-D mask"
    elif windows and not uniform and not per_type:
        reason = f"this {family!r} model mixes sliding-window and full layers and takes one mask"
    masks = not reason
    if not masks:
        logger.debug("Scoring %s with the plain layout: %s.", type(model).__name__, reason)
    return EngineSupport(
        masks=masks,
        block_attention=masks and family in BLOCK_ATTENTION_FAMILIES,
        windows=windows,
        mask_per_layer_type=per_type,
        reason=reason,
    )
