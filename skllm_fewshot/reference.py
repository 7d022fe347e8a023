"""Plain reference loops: one prompt at a time, whole prompt tokenized, no cache.

They are the seed notebook's method written out, kept to check the batched,
cached engine against and to time it in the benchmarks. They are slow on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .scoring import softmax

__all__ = ["seed_first_token_proba", "full_label_proba"]


def seed_first_token_proba(
    model: Any, tokenizer: Any, prompts: Sequence[str], label_words: Sequence[str]
) -> np.ndarray:
    """The seed notebook's ``generate_for_classification``, one prompt at a time.

    Parameters
    ----------
    model, tokenizer
        A causal language model and its tokenizer.
    prompts : sequence of str
        Whole prompts, query included.
    label_words : sequence of str
        One word per class; each is scored by its first token.

    Returns
    -------
    ndarray of shape (n_prompts, n_classes)
        Softmax over the next-token logits restricted to the label words' first tokens.
    """
    target = [tokenizer.encode(w, add_special_tokens=False)[0] for w in label_words]
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt").input_ids.to(device)
            logits = model(ids).logits[:, -1, target].float()
            rows.append(torch.softmax(logits, dim=-1)[0].double().cpu().numpy())
    return np.array(rows).reshape(len(prompts), len(label_words))


def full_label_proba(
    model: Any, tokenizer: Any, prompts: Sequence[str], label_words: Sequence[str]
) -> np.ndarray:
    """Whole-label scoring, one (prompt, label) pair at a time.

    Each label's score is the sum of its tokens' log-probabilities after the
    prompt (tokenized together with the prompt); the scores are softmaxed across
    labels.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A causal language model; the inputs go to the device of its parameters.
    tokenizer : transformers.PreTrainedTokenizerBase
        The model's tokenizer.
    prompts : sequence of str
        Whole prompts, query included.
    label_words : sequence of str
        One word (or phrase) per class; each is scored by all its tokens.

    Returns
    -------
    ndarray of shape (n_prompts, n_classes)
        Softmax across the labels of the summed log-probabilities; each row sums
        to 1.

    Examples
    --------
    The loop needs a model; with the embedded SmolLM2-135M-Instruct:

    >>> from skllm_fewshot.loading import load_model
    >>> from skllm_fewshot.reference import full_label_proba
    >>> loaded = load_model(device="cpu", dtype="float32")  # doctest: +SKIP
    >>> prompts = ["Tweet: Abrí una cuenta nueva.\\nCategoría: "]
    >>> label_words = ["bancos", "bebidas"]
    >>> proba = full_label_proba(loaded.model, loaded.tokenizer, prompts, label_words)  # doctest: +SKIP
    >>> proba.shape  # doctest: +SKIP
    (1, 2)
    """
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for prompt in prompts:
            base = tokenizer(prompt).input_ids
            scores = []
            for word in label_words:
                ids = tokenizer(prompt + word).input_ids
                if ids[: len(base)] != base:
                    ids = base + tokenizer.encode(word, add_special_tokens=False)
                logp = torch.log_softmax(model(torch.tensor([ids], device=device)).logits[0].float(), -1)
                scores.append(sum(float(logp[j - 1, ids[j]]) for j in range(len(base), len(ids))))
            rows.append(scores)
    return softmax(np.array(rows, dtype=float).reshape(len(prompts), len(label_words)))
