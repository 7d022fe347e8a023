"""Block attention for packed queries: each query sees the prefix and itself only.

With queries packed side by side after a shared prefix, plain SDPA computes every
query against every other query and masks the result away. This attention
function computes, block by block, only the prefix keys and the block's own keys.
It is registered with transformers under :data:`NAME` and used by models that
:mod:`skllm_fewshot._loading` loads itself; without the ``skllm_blocks`` argument
(any call that is not the scoring engine's) it is exactly transformers' SDPA.
Only families listed in :data:`skllm_fewshot._families.BLOCK_ATTENTION_FAMILIES`
get it.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["BLOCKS_KWARG", "NAME", "block_attention", "is_block_attention", "register"]

# The attention implementation's name, and the forward keyword that carries the blocks.
NAME = "skllm_blocks"
BLOCKS_KWARG = "skllm_blocks"
_registered = False


def block_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    skllm_blocks: tuple[int, list[tuple[int, int]]] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA over ``prefix + own block`` keys for each block of packed queries.

    ``skllm_blocks`` is ``(shared, [(start, end), ...])``: the number of cached
    prefix keys and each block's span along the new tokens. ``attention_mask``
    is the engine's 4-D float mask, still applied inside each block.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if skllm_blocks is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    shared, blocks = skllm_blocks
    groups = getattr(module, "num_key_value_groups", 1)
    key_prefix, value_prefix = key[:, :, :shared], value[:, :, :shared]
    out = torch.empty_like(query)
    for start, end in blocks:
        k = torch.cat([key_prefix, key[:, :, shared + start : shared + end]], dim=2)
        v = torch.cat([value_prefix, value[:, :, shared + start : shared + end]], dim=2)
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        mask = None
        if attention_mask is not None:
            rows = attention_mask[:, :, start:end]
            mask = torch.cat([rows[..., :shared], rows[..., shared + start : shared + end]], dim=-1)
        out[:, :, start:end] = torch.nn.functional.scaled_dot_product_attention(
            query[:, :, start:end], k, v, attn_mask=mask, scale=scaling
        )
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register the block attention (and SDPA's masks under its name) with transformers."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.masking_utils import sdpa_mask

        AttentionInterface.register(NAME, block_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _registered = True
    return NAME


def is_block_attention(model: Any) -> bool:
    """Whether a model runs :func:`block_attention`."""
    return getattr(model.config, "_attn_implementation", None) == NAME
