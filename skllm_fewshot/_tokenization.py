"""Prompt text to token ids, exactly as tokenizing the whole prompt at once.

The tokens of prefix + query are not always the prefix's tokens followed by the
query's (BPE merges across the quote before the query), so every query is
tokenized inside its whole prompt. Text from users is never turned into special
tokens: where it contains a special token's text, that text is encoded as plain
characters.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from ._prompt import FewShotPrompt, Piece

__all__ = ["TOKENIZER_LOCK", "PromptTokenizer", "common_prefix_length", "token_ids"]

# A fast tokenizer keeps call options (split_special_tokens, truncation, padding) as
# state on its Rust backend, set by each call just before it encodes. Two threads
# tokenizing at once (two threads predicting, or two estimators sharing a cached
# model) could then encode with each other's options, e.g. a query's
# "<|im_start|>" read as the special token, or fail with "Already borrowed". Every
# call made here holds this lock; one lock for all tokenizers, since a cached
# tokenizer is shared by many estimators and tokenizing is cheap next to scoring.
TOKENIZER_LOCK = threading.RLock()


def token_ids(tokenizer: Any, text: str | list[str], **kwargs: Any) -> Any:
    """``tokenizer(text, **kwargs)["input_ids"]``, one thread at a time (see above).

    Examples
    --------
    >>> from skllm_fewshot._tokenization import token_ids
    >>> token_ids(lambda text, **kw: {"input_ids": [len(text)]}, "abc")
    [3]
    """
    with TOKENIZER_LOCK:
        return tokenizer(text, **kwargs)["input_ids"]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences.

    Examples
    --------
    >>> from skllm_fewshot._tokenization import common_prefix_length
    >>> common_prefix_length([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PromptTokenizer:
    """Token ids of a :class:`~skllm_fewshot._prompt.FewShotPrompt` for any query.

    Parameters
    ----------
    prompt : FewShotPrompt
        The prompt; ``"plain"`` prompts get the tokenizer's leading special tokens
        (e.g. ``<bos>``) as ``tokenizer(prompt)`` adds them, ``"chat"`` prompts take
        those the chat template writes.
    tokenizer : PreTrainedTokenizerBase
        A Hugging Face tokenizer.
    max_length : int, optional
        The longest prompt the model takes, in tokens; longer queries are cut.

    Attributes
    ----------
    head_text, tail_text : str
        The prompt's text before and after the query (the chat template applied).
    """

    def __init__(self, prompt: FewShotPrompt, tokenizer: Any, max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.head, self.tail = prompt.split(tokenizer)
        self.head_text = "".join(p.text for p in self.head)
        self.tail_text = "".join(p.text for p in self.tail)
        self._add_special = prompt.prompt_format == "plain"
        self._bos, self._n_eos = self._special_affixes() if self._add_special else ([], 0)
        specials = sorted(
            {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
            | set(getattr(tokenizer, "all_special_tokens", [])),
            key=len,
            reverse=True,
        )
        self._special_re = re.compile("|".join(map(re.escape, specials))) if specials else None
        self._examples_need_care = any(p.user and self._has_special(p.text) for p in self.head + self.tail)

    def _special_affixes(self) -> tuple[list[int], int]:
        # What ``tokenizer(text)`` adds around a text: leading tokens are kept as the
        # seed keeps them; trailing ones (an EOS some tokenizers append) are dropped,
        # since the label must follow the prompt directly.
        bare = self._encode_plain("a")
        full = self._ids("a", add_special_tokens=True)
        for start in range(len(full) - len(bare) + 1):
            if full[start : start + len(bare)] == bare:
                return full[:start], len(full) - start - len(bare)
        return [], 0

    def _ids(self, text: str | list[str], **kwargs: Any) -> Any:
        return token_ids(self.tokenizer, text, **kwargs)

    def _has_special(self, text: str) -> bool:
        return self._special_re is not None and self._special_re.search(text) is not None

    def _encode_plain(self, text: str) -> list[int]:
        return self._ids(text, add_special_tokens=False)

    def _encode_literal(self, text: str) -> list[int]:
        # A special token's text written by a user, as plain characters. Encoded
        # after a newline so that SentencePiece adds no word-start marker.
        nl = self._ids("\n", add_special_tokens=False, split_special_tokens=True)
        ids = self._ids("\n" + text, add_special_tokens=False, split_special_tokens=True)
        return ids[len(nl) :] if ids[: len(nl)] == nl else ids

    def _encode_guarded(self, pieces: Sequence[Piece]) -> list[int]:
        """Tokenize pieces whose user text holds special-token text."""
        if not any(not p.user and self._has_special(p.text) for p in pieces):
            # No special token in the template's own text (the plain format): the whole
            # prompt at once, reading special-token text as plain characters.
            text = "".join(p.text for p in pieces)
            return list(self._bos) + self._ids(text, add_special_tokens=False, split_special_tokens=True)
        ids: list[int] = list(self._bos)
        buffer = ""
        for piece in pieces:
            if not piece.user or self._special_re is None:
                buffer += piece.text
                continue
            pos = 0
            for m in self._special_re.finditer(piece.text):
                buffer += piece.text[pos : m.start()]
                if buffer:
                    ids += self._encode_plain(buffer)
                buffer = ""
                ids += self._encode_literal(m.group(0))
                pos = m.end()
            buffer += piece.text[pos:]
        if buffer:
            ids += self._encode_plain(buffer)
        return ids

    def _encode_batch(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        out = self._ids(texts, add_special_tokens=self._add_special)
        if self._n_eos:
            out = [ids[: len(ids) - self._n_eos] for ids in out]
        return out

    def encode(
        self, queries: Sequence[str], answer: str = "", truncated: list[int] | None = None
    ) -> list[list[int]]:
        """Token ids of the whole prompt for each query, ``answer`` appended.

        A prompt longer than ``max_length`` has its query cut at the end (never the
        instruction, the examples or the prompt's tail); the indices of such queries
        are appended to ``truncated``.
        """
        out = self._encode_all(queries, answer)
        if self.max_length is not None:
            for i, ids in enumerate(out):
                if len(ids) > self.max_length:
                    out[i] = self._truncate(queries[i], answer, len(ids))
                    if truncated is not None:
                        truncated.append(i)
        return out

    def _truncate(self, query: str, answer: str, length: int) -> list[int]:
        # Cut the query's own tokens, decode, and tokenize the whole prompt again:
        # the kept text is then tokenized in context like any other query.
        query_ids = self._encode_plain(query)
        keep = len(query_ids) - (length - self.max_length)
        while keep > 0:
            with TOKENIZER_LOCK:
                text = self.tokenizer.decode(query_ids[:keep])
            ids = self._encode_all([text], answer)[0]
            if len(ids) <= self.max_length:
                return ids
            keep -= len(ids) - self.max_length
        return self._encode_all([""], answer)[0]

    def _encode_all(self, queries: Sequence[str], answer: str = "") -> list[list[int]]:
        out: list[list[int] | None] = [None] * len(queries)
        plain_rows = []
        tail = self.tail_text + answer
        for i, q in enumerate(queries):
            if self._examples_need_care or self._has_special(q):
                out[i] = self._encode_guarded([*self.head, Piece(q, user=True), *self.tail, Piece(answer)])
            else:
                plain_rows.append(i)
        encoded = self._encode_batch([self.head_text + queries[i] + tail for i in plain_rows])
        for i, ids in zip(plain_rows, encoded):
            out[i] = ids
        return out  # type: ignore[return-value]

    def prefix_ids(self) -> list[int]:
        """Token ids of the prompt before the query slot."""
        if self._examples_need_care:
            return self._encode_guarded(self.head)
        return self._encode_batch([self.head_text])[0]

    def label_ids_in_context(self, words: Sequence[str]) -> list[list[int]]:
        """Each label word's tokens as they follow the prompt (``full_label`` scoring).

        Where the word would merge with the prompt's last token, the word's own
        tokens are used instead.
        """
        base = self.encode([""])[0]
        out = []
        for word in words:
            ids = self.encode([""], answer=word)[0]
            if ids[: len(base)] == base and len(ids) > len(base):
                out.append(ids[len(base) :])
            else:
                out.append(self._encode_plain(word))
        return out

    def label_first_tokens(self, words: Sequence[str]) -> list[list[int]]:
        """Each label word's tokens encoded on their own, as the seed notebook does."""
        return [self._encode_plain(w) for w in words]
