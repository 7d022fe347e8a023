"""Text embeddings for choosing similar examples: mean-pooled hidden states of a causal LM.

The classifier's own model embeds by default, so choosing examples by similarity
needs no other download. Embeddings are cached per model and text, so a grid
search that refits on the same rows embeds each of them once.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._loading import ModelSpec
from ._tokenization import token_ids

__all__ = ["TextEmbedder", "mean_pooled_embeddings"]


class TextEmbedder:
    """Texts to vectors, as the classifier's ``embedding`` parameter says.

    Parameters
    ----------
    embedding : None, str, path, transformer or callable
        ``None``: the mean-pooled last hidden states of ``spec``'s model; a model id
        or path: that causal LM's, the same way; a scikit-learn transformer, cloned
        and fitted by :meth:`fit`; a callable from a list of texts to a 2-D array.
    spec : ModelSpec
        The classifier's model, and the device and dtype for another one.

    Attributes
    ----------
    transformer_ : transformer or None
        The fitted clone, for a scikit-learn transformer.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from skllm_fewshot._embedding import TextEmbedder
    >>> from skllm_fewshot._loading import ModelSpec
    >>> embedder = TextEmbedder(TfidfVectorizer(), ModelSpec()).fit(["apple pie", "cherry pie"])
    >>> embedder.transform(["apple tart"]).shape
    (1, 3)
    """

    def __init__(self, embedding: Any, spec: ModelSpec) -> None:
        self.embedding = embedding
        self.spec = spec
        self.transformer_ = None

    def fit(self, texts: Sequence[str]) -> TextEmbedder:
        if hasattr(self.embedding, "transform"):
            from sklearn.base import clone

            self.transformer_ = clone(self.embedding).fit(list(texts))
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        texts = list(texts)
        if self.embedding is None or isinstance(self.embedding, (str, os.PathLike)):
            spec = self.spec
            if self.embedding is not None:
                spec = ModelSpec(self.embedding, device=spec.device, dtype=spec.dtype)
            loaded = spec.load()
            return mean_pooled_embeddings(loaded.model, loaded.tokenizer, texts)
        if self.transformer_ is not None:
            return self.transformer_.transform(texts)
        out = np.asarray(self.embedding(texts), dtype=float)
        if out.ndim != 2 or len(out) != len(texts):
            raise ValueError(
                f"embedding returned an array of shape {out.shape} for {len(texts)} texts; "
                "it must return one row per text."
            )
        return out


# model -> {text: vector}; weak, so the cache goes with the model.
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
_MAX_CACHED_TEXTS = 200_000


def mean_pooled_embeddings(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 32, max_length: int = 512
) -> np.ndarray:
    """The mean of the last hidden states over each text's tokens, L2-normalised.

    Parameters
    ----------
    model : PreTrainedModel
        A causal LM; only its body runs (``model.base_model``), not the LM head.
    tokenizer : PreTrainedTokenizerBase
    texts : sequence of str
    batch_size : int, default=32
    max_length : int, default=512
        Longer texts are embedded by their first ``max_length`` tokens.

    Returns
    -------
    ndarray of shape (n_texts, hidden_size), float32
        Unit rows (zero rows for texts without tokens).

    Examples
    --------
    >>> from skllm_fewshot._embedding import mean_pooled_embeddings
    >>> from skllm_fewshot import load_model
    >>> m = load_model()  # doctest: +SKIP
    >>> mean_pooled_embeddings(m.model, m.tokenizer, ["hola", "adiós"]).shape  # doctest: +SKIP
    (2, 576)
    """
    with _CACHE_LOCK:
        cached = _CACHE.setdefault(model, {})
    missing = list(dict.fromkeys(t for t in texts if t not in cached))
    if missing:
        vectors = _embed(model, tokenizer, missing, batch_size, max_length)
        with _CACHE_LOCK:
            if len(cached) + len(missing) > _MAX_CACHED_TEXTS:
                cached.clear()
            cached.update(zip(missing, vectors))
        fresh = dict(zip(missing, vectors))
    else:
        fresh = {}
    return (
        np.stack([fresh[t] if t in fresh else cached[t] for t in texts]) if len(texts) else np.zeros((0, 0))
    )


@torch.inference_mode()
def _embed(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int, max_length: int
) -> list[np.ndarray]:
    # No special tokens: a BOS state is the same for every text and would pull all
    # embeddings together.
    ids = [ids[:max_length] for ids in token_ids(tokenizer, texts, add_special_tokens=False)]
    device = model.get_input_embeddings().weight.device
    body = model.base_model
    if body is model:
        raise TypeError(f"Cannot find the body of {type(model).__name__} to embed texts with.")
    hidden = model.config.get_text_config().hidden_size
    out: list[np.ndarray] = [np.zeros(hidden, dtype=np.float32)] * len(texts)
    # Similar lengths together, to pad little.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    order = [i for i in order if ids[i]]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(ids[i]) for i in rows)
        batch = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            batch[r, : len(ids[i])] = torch.tensor(ids[i])
            mask[r, : len(ids[i])] = 1
        batch, mask = batch.to(device), mask.to(device)
        # Right padding under a causal mask: the real tokens never see the pads. The
        # body alone, not output_hidden_states: that installs hooks (local functions)
        # on the model for good, and a model object with them no longer pickles.
        states = body(input_ids=batch, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(1) / weights.sum(1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        for r, i in enumerate(rows):
            out[i] = pooled[r]
    return out
