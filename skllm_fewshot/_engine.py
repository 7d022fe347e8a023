"""One prompt's scoring engine: texts in, label scores and probabilities out.

:class:`PromptScorer` owns the whole chain for the texts scored under one prompt:
tokenization inside the prompt (:mod:`~skllm_fewshot._tokenization`), the context
limit, batching and the out-of-memory policy, the prefix-cached forward passes
(:mod:`~skllm_fewshot._scoring`), and what a head reads: label log-likelihoods,
or probabilities with or without contextual calibration.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._loading import LoadedModel
from ._prompt import FewShotPrompt
from ._scoring import PrefixCachedScorer, layer_index, score_in_batches, softmax
from ._tokenization import PromptTokenizer

__all__ = ["CONTENT_FREE", "SCORINGS", "PromptScorer", "calibrated", "clear_feature_cache"]

SCORINGS = ("full_label", "first_token")
# Content-free queries of contextual calibration (Zhao et al. 2021).
CONTENT_FREE = ("N/A", "", "[MASK]")


# Features of texts already scored, per model: {model: {(prompt key, text): row}}.
# Refits of the same prompt (a grid search over a head's parameters, cross-validation
# folds that share rows) then compute each row once. Bounded, least recently used out.
_FEATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_FEATURES_LOCK = threading.Lock()
MAX_CACHED_FEATURES = 20_000


def clear_feature_cache() -> None:
    """Forget the cached features of every model.

    Examples
    --------
    >>> from skllm_fewshot import clear_feature_cache
    >>> clear_feature_cache()
    """
    with _FEATURES_LOCK:
        _FEATURES.clear()


def calibrated(proba: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    """Contextual calibration: divide by the content-free probabilities and renormalise.

    Parameters
    ----------
    proba : ndarray of shape (n_texts, n_classes)
        Class probabilities.
    prior : ndarray of shape (n_classes,) or None
        What to divide by; None returns ``proba`` unchanged.

    Returns
    -------
    ndarray of shape (n_texts, n_classes)

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._engine import calibrated
    >>> calibrated(np.array([[0.5, 0.5]]), np.array([0.8, 0.2]))
    array([[0.2, 0.8]])
    """
    if prior is None:
        return proba
    # Floored so that a label the model never predicts cannot divide by zero.
    proba = proba / np.maximum(prior, 1e-300)
    return proba / proba.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _yes_log_odds(scores: np.ndarray) -> np.ndarray:
    """Per label, log P(yes) - log P(no), from scores laid out as yes, no, yes, no, ..."""
    return scores[:, 0::2] - scores[:, 1::2]


class PromptScorer:
    """Scores texts under one few-shot prompt.

    Parameters
    ----------
    loaded : LoadedModel
        The model and tokenizer (:func:`skllm_fewshot.load_model`).
    prompt : FewShotPrompt
        The prompt; its ``label_words`` are the classes' words, in class order.
    label_scoring : {"full_label", "first_token"}, default="full_label"
        Score every token of a label word, or its first token only (the seed's).
    classes : sequence, optional
        The class of each label word, named in error messages.
    batch_size : int or "auto", default=16
        Prompts per forward pass; ``"auto"`` sizes batches from free CUDA memory.
    verbose : bool, default=False
        Show a progress bar while scoring.
    layout : {"packed", "padded", "plain"}, optional
        Forces a batch layout (see :class:`~skllm_fewshot._scoring.PrefixCachedScorer`).

    Attributes
    ----------
    tokens : PromptTokenizer
        The prompt's tokenizer, with the context limit as ``max_length``.
    label_token_ids : list of list of int
        The scored tokens of each label word.
    scorer : PrefixCachedScorer
        The prefix-cached forward passes.

    Raises
    ------
    ValueError
        If a label word has no tokens, two words start with the same token under
        ``label_scoring="first_token"``, or the prompt alone does not fit the context.

    Examples
    --------
    >>> from skllm_fewshot._engine import PromptScorer
    >>> from skllm_fewshot import load_model
    >>> from skllm_fewshot._prompt import FewShotPrompt
    >>> prompt = FewShotPrompt("Sentiment: {labels}.", [("I love it", "positive")],
    ...                        ["negative", "positive"], "Review", "Sentiment")
    >>> engine = PromptScorer(load_model(), prompt)  # doctest: +SKIP
    >>> engine.proba(["So bad", "Great"], calibrate=True).shape  # doctest: +SKIP
    (2, 2)
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prompt: FewShotPrompt,
        *,
        label_scoring: str = "full_label",
        classes: Sequence[Any] | None = None,
        batch_size: int | str = 16,
        verbose: bool = False,
        layout: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.prompt = prompt
        # Multi-label: each label's "yes" and "no" differ only at the answer, scored whole.
        self.label_scoring = "full_label" if prompt.multi_label else label_scoring
        self.classes = list(prompt.label_words if classes is None else classes)
        self.batch_size = batch_size
        self.verbose = verbose
        # The limit depends on the label tokens, which are found without one.
        self.tokens = PromptTokenizer(prompt, loaded.tokenizer)
        self.label_token_ids = self._label_tokens(self.tokens)
        self.tokens.max_length = self._max_length(self.tokens)
        tok = loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.scorer = PrefixCachedScorer(
            loaded.model, self.tokens.prefix_ids(), self.label_token_ids, pad_id=pad, layout=layout
        )
        self._prior: np.ndarray | None = None
        self._prior_lock = threading.Lock()

    # -- set-up -------------------------------------------------------------------

    def _label_tokens(self, tokens: PromptTokenizer) -> list[list[int]]:
        words = self.prompt.answers()
        if self.label_scoring == "full_label":
            seqs = tokens.label_ids_in_context(words)
        else:
            seqs = [ids[:1] for ids in tokens.label_first_tokens(words)]
        owners = (
            self.classes if len(self.classes) == len(words) else [c for c in self.classes for _ in (0, 1)]
        )
        for c, w, ids in zip(owners, words, seqs):
            if not ids:
                raise ValueError(
                    f"The label word {w!r} of class {c!r} tokenizes to nothing; use another word."
                )
        if self.label_scoring == "first_token":
            first: dict[int, str] = {}
            for w, ids in zip(words, seqs):
                if ids[0] in first:
                    piece = tokens.tokenizer.convert_ids_to_tokens(ids[0])
                    raise ValueError(
                        f"The label words {first[ids[0]]!r} and {w!r} start with the same token "
                        f"({piece!r}), so label_scoring='first_token' cannot tell them apart; use "
                        "label_scoring='full_label' or other label_words."
                    )
                first[ids[0]] = w
        return seqs

    def _max_length(self, tokens: PromptTokenizer) -> int | None:
        """The longest prompt that leaves room for the label tokens in the model's context."""
        context = getattr(self.loaded.model.config.get_text_config(), "max_position_embeddings", None)
        if not context:
            return None
        longest_label = max(len(ids) for ids in self.label_token_ids)
        needed = len(tokens.encode([""])[0]) + longest_label - 1
        if needed >= context:
            raise ValueError(
                f"The prompt needs {needed} tokens before any text (instruction, "
                f"{len(self.prompt.examples)} examples and the longest label), but the model's context is "
                f"{context} tokens. Use a smaller n_examples_per_class or a shorter instruction."
            )
        return context - longest_label + 1

    # -- what it tells --------------------------------------------------------------

    @property
    def prompt_text(self) -> str:
        """The rendered prompt, ``{}`` where the text goes."""
        return self.prompt.render("{}", self.loaded.tokenizer)

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    @property
    def stats(self) -> dict[str, int]:
        """Work done so far: ``tokens`` run through the model, LM-head ``head_rows``."""
        return dict(self.scorer.stats)

    # -- scoring --------------------------------------------------------------------

    def encode(self, texts: Sequence[str], truncated: list[int] | None = None) -> list[list[int]]:
        """Token ids of the whole prompt with each text in it (cut to the context).

        Parameters
        ----------
        texts : sequence of str
        truncated : list, optional
            The indices of texts cut to fit the context are appended to it.

        Returns
        -------
        list of list of int
        """
        return self.tokens.encode(texts, truncated=truncated)

    def _resolve_batch_size(self) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        if self.device.type != "cuda":
            # On a CPU the engine packs a batch into forwards of a bounded size anyway.
            return 16
        free, _ = torch.cuda.mem_get_info(self.device)
        return self.scorer.rows_that_fit(free_bytes=free // 2)

    def log_likelihoods(self, texts: Sequence[str], truncated: list[int] | None = None) -> np.ndarray:
        """Log-likelihood of each label word after the prompt with each text.

        Parameters
        ----------
        texts : sequence of str
        truncated : list, optional
            The indices of texts cut to fit the context are appended to it.

        Returns
        -------
        ndarray of shape (n_texts, n_classes), float64
        """
        # The features' pass without hidden states, through the same cache.
        return self.features(texts, (), truncated)[0]

    def features(
        self, texts: Sequence[str], layers: Sequence[int] = (-1,), truncated: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """What a head reads for each text: label log-likelihoods and hidden states.

        Both are read at the text's last prompt token, the position whose output
        predicts the label. Rows already computed under the same prompt and labels,
        with these layers among those read (by any engine on the same model), come
        from a bounded cache.

        Parameters
        ----------
        texts : sequence of str
        layers : sequence of int, default=(-1,)
            Hidden-state layers, in transformers' numbering (-1: the final states).
        truncated : list, optional
            The indices of texts cut to fit the context are appended to it (cached
            texts included: a cut is remembered with the features).

        Returns
        -------
        scores : ndarray of shape (n_texts, n_classes), float64
        states : ndarray of shape (n_texts, len(layers), hidden_size), float32
        """
        texts = list(texts)
        n_classes = len(self.label_token_ids)
        config = self.loaded.model.config.get_text_config()
        hidden = config.hidden_size
        layers = [layer_index(layer, config.num_hidden_layers) for layer in layers]
        # One entry per (prompt, labels, text): the scores and every layer read so far.
        key = (tuple(self.scorer.prefix_ids), self.tokens.tail_text, str(self.label_token_ids))
        with _FEATURES_LOCK:
            cache = _FEATURES.setdefault(self.loaded.model, OrderedDict())
            missing = [
                t for t in dict.fromkeys(texts) if not {"scores", *layers} <= cache.get((key, t), {}).keys()
            ]

        def score(ids: list[list[int]]) -> np.ndarray:
            if not layers:
                return self.scorer.score(ids)
            scores, states = self.scorer.score_with_states(ids, layers)
            return np.concatenate([scores, states.reshape(len(ids), -1)], axis=1)

        cut: set[str] = set()

        def encode(chunk: Sequence[str]) -> list[list[int]]:
            where: list[int] = []
            ids = self.encode(chunk, where)
            cut.update(chunk[i] for i in where)
            return ids

        fresh = {}
        if missing:
            on_oom = torch.cuda.empty_cache if self.device.type == "cuda" else None
            rows = score_in_batches(
                score, encode, missing, n_classes + len(layers) * hidden,
                self._resolve_batch_size(), verbose=self.verbose, on_oom=on_oom,
            )  # fmt: skip
            for t, row in zip(missing, rows):
                states = row[n_classes:].reshape(len(layers), hidden).astype(np.float32)
                fresh[t] = {"scores": row[:n_classes], "cut": t in cut, **dict(zip(layers, states))}
        with _FEATURES_LOCK:
            for t, entry in fresh.items():
                cache[(key, t)] = {**cache.get((key, t), {}), **entry}
            entries = [fresh[t] if t in fresh else cache[(key, t)] for t in texts]
            for t in texts:
                if (key, t) in cache:
                    cache.move_to_end((key, t))
            while len(cache) > MAX_CACHED_FEATURES:
                cache.popitem(last=False)
        if truncated is not None:
            truncated.extend(i for i, e in enumerate(entries) if e["cut"])
        scores = np.array([e["scores"] for e in entries]).reshape(len(texts), n_classes)
        states = np.array([[e[layer] for layer in layers] for e in entries], dtype=np.float32)
        return scores, states.reshape(len(texts), len(layers), hidden)

    def content_free_scores(self) -> np.ndarray:
        """Label log-likelihoods of the content-free queries, one row each (computed once).

        Returns
        -------
        ndarray of shape (len(CONTENT_FREE), n_classes)
        """
        if self._prior is None:
            with self._prior_lock:
                if self._prior is None:
                    self._prior = self.log_likelihoods(list(CONTENT_FREE))
        return self._prior

    def content_free_proba(self) -> np.ndarray:
        """Mean class probabilities of the content-free queries.

        Returns
        -------
        ndarray of shape (n_classes,)
        """
        return softmax(self.content_free_scores()).mean(axis=0)

    def content_free_label_proba(self) -> np.ndarray:
        """Multi-label: per label, the content-free queries' mean probability of ``"yes"``.

        Returns
        -------
        ndarray of shape (n_labels,)
        """
        return np.mean(_sigmoid(_yes_log_odds(self.content_free_scores())), axis=0)

    def label_proba(
        self,
        texts: Sequence[str],
        *,
        calibrate: bool = False,
        prior: np.ndarray | None = None,
        truncated: list[int] | None = None,
    ) -> np.ndarray:
        """Multi-label: the probability of ``"yes"`` for each label, judged on its own.

        Each label's ``"word: yes"`` and ``"word: no"`` are scored after the query
        (in one pass, as branches of the label trie). Calibration divides each
        label's odds by those of ``prior`` (per label, the mean probability of
        ``"yes"``), by default of the content-free queries.

        Parameters
        ----------
        texts : sequence of str
        calibrate : bool, default=False
            Calibrate with the content-free queries.
        prior : ndarray of shape (n_labels,), optional
            Calibrate with this instead (e.g. the training texts' mean).
        truncated : list, optional
            The indices of texts cut to fit the context are appended to it.

        Returns
        -------
        ndarray of shape (n_texts, n_labels), float64
        """
        yes_odds = _yes_log_odds(self.log_likelihoods(texts, truncated))
        if calibrate or prior is not None:
            if prior is None:
                prior = self.content_free_label_proba()
            yes_odds = yes_odds - (np.log(prior) - np.log1p(-prior))
        return _sigmoid(yes_odds)

    def proba(
        self,
        texts: Sequence[str],
        *,
        calibrate: bool = False,
        prior: np.ndarray | None = None,
        truncated: list[int] | None = None,
    ) -> np.ndarray:
        """Class probabilities: the softmax of the label scores, calibrated or not.

        Parameters
        ----------
        texts : sequence of str
        calibrate : bool, default=False
            Divide by :meth:`content_free_proba` and renormalise.
        prior : ndarray of shape (n_classes,), optional
            Divide by this instead (e.g. the mean probabilities of the training
            texts: batch calibration).
        truncated : list, optional
            The indices of texts cut to fit the context are appended to it.

        Returns
        -------
        ndarray of shape (n_texts, n_classes), float64
        """
        proba = softmax(self.log_likelihoods(texts, truncated))
        if prior is None and calibrate:
            prior = self.content_free_proba()
        return calibrated(proba, prior)
