"""The scoring engine: label log-likelihoods for batches of prompts.

The prompt's shared prefix (instruction and examples) is run through the model
once; its key/value cache is reused for every batch. Per batch only the tokens
that differ are computed: each query and, for labels of several tokens, a trie of
the label tokens appended after it. A 4-D attention mask lets each trie branch see
the prefix, its own query and its own ancestors only, so all labels are scored in
the same forward pass as the query, without copying anything per class. The LM
head runs only at the columns that are read.

Three layouts of a batch, equal to 1e-4 in float32:

- ``"packed"`` (CPU): the queries of a batch side by side in one row, kept apart
  by a block-diagonal mask. The prefix cache is used at batch size 1, never
  copied, and there is no padding; the attention between packed queries is
  computed and masked away, so packs are capped at ``pack_tokens``.
- ``"padded"`` (GPU): one row per query, left-padded so every query ends in the
  same column; the prefix cache is expanded to the batch.
- ``"plain"`` (families not verified for the two above, see
  :mod:`skllm_fewshot._families`): right-padded rows under a 2-D mask, one per
  prompt, or per (prompt, label) for labels of several tokens; the model builds
  its own masks and positions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._attention import BLOCKS_KWARG, is_block_attention
from ._families import engine_support
from ._tokenization import common_prefix_length

__all__ = ["LAYOUTS", "LabelTrie", "PrefixCachedScorer", "score_in_batches", "softmax"]

LAYOUTS = ("packed", "padded", "plain")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of label scores (log-likelihoods) into probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._scoring import softmax
    >>> softmax(np.log([[1.0, 3.0]]))
    array([[0.25, 0.75]])
    """
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class LabelTrie:
    """Label token sequences as the tokens to feed after the query and what to read.

    Parameters
    ----------
    sequences : list of list of int
        One token sequence per class.

    Attributes
    ----------
    tokens, parents, depths : list of int
        One entry per fed token (a trie node): its id, its parent node (-1 for the
        query's last token) and its depth (0 right after the query).
    reads : list of list of (int, int)
        Per class, ``(column, token)`` pairs whose log-probabilities add up to the
        label's log-likelihood; column 0 is the query's last token, column
        ``1 + n`` is node ``n``.

    Examples
    --------
    >>> from skllm_fewshot._scoring import LabelTrie
    >>> trie = LabelTrie([[5, 6], [5, 7], [8]])
    >>> trie.tokens, trie.reads
    ([5], [[(0, 5), (1, 6)], [(0, 5), (1, 7)], [(0, 8)]])
    """

    sequences: list[list[int]]
    tokens: list[int] = field(init=False, default_factory=list)
    parents: list[int] = field(init=False, default_factory=list)
    depths: list[int] = field(init=False, default_factory=list)
    reads: list[list[tuple[int, int]]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        node_of: dict[tuple[int, ...], int] = {}
        for seq in self.sequences:
            if not seq:
                raise ValueError("A label has no tokens.")
            reads = [(0, seq[0])]
            for j in range(1, len(seq)):
                key = tuple(seq[:j])
                if key not in node_of:
                    node_of[key] = len(self.tokens)
                    self.tokens.append(seq[j - 1])
                    self.parents.append(node_of[key[:-1]] if j > 1 else -1)
                    self.depths.append(j - 1)
                reads.append((1 + node_of[key], seq[j]))
            self.reads.append(reads)

    def ancestors_or_self(self, node: int) -> list[int]:
        out = []
        while node >= 0:
            out.append(node)
            node = self.parents[node]
        return out


def _forward_kwargs(model: Any) -> tuple[str, bool]:
    """The name of the cache argument (renamed in transformers 5) and logits_to_keep support."""
    import inspect

    params = inspect.signature(model.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"
    return cache_arg, "logits_to_keep" in params


def _output_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


class PrefixCachedScorer:
    """Label log-likelihoods of prompts that share a prefix, in batches.

    Parameters
    ----------
    model : PreTrainedModel
        A causal language model in evaluation mode.
    prefix_ids : list of int
        The tokens every prompt is expected to start with; their key/value cache
        is computed once, on first use.
    label_sequences : list of list of int
        Per class, the label tokens that follow the prompt. One token per class is
        the seed's first-token scoring.
    pad_id : int
        Any valid token id; padded positions are masked out.
    layout : {"packed", "padded", "plain"}, optional
        How a batch is laid out (see the module's notes); by default ``"packed"``
        on a CPU and ``"padded"`` elsewhere. Models of families not verified with
        the engine's masks always take ``"plain"`` (see
        :mod:`skllm_fewshot._families`).

    Notes
    -----
    A prompt that does not start with the whole prefix (its first tokens merged
    with the query's) is handled by computing, for its batch, everything after the
    longest prefix shared by all rows: the same tokens at the same positions, so
    the same result.
    """

    def __init__(
        self,
        model: Any,
        prefix_ids: Sequence[int],
        label_sequences: list[list[int]],
        pad_id: int = 0,
        layout: str | None = None,
    ) -> None:
        self.model = model
        self.prefix_ids = list(prefix_ids)
        self.trie = LabelTrie([list(s) for s in label_sequences])
        self.pad_id = int(pad_id)
        # Inputs go where the embeddings are: on a model sharded over devices
        # (device_map), accelerate's hooks move activations between the layers.
        weight = model.get_input_embeddings().weight
        self.device = weight.device
        self.dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
        self.support = engine_support(model)
        # Packing avoids copying the prefix cache per query and padding, at the cost
        # of attention between packed queries that the mask discards: the better
        # trade on a CPU; on a GPU, copies are cheap and attention is not. Families
        # not verified with the engine's masks take the plain layout.
        if layout is None:
            layout = "packed" if self.device.type == "cpu" else "padded"
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not valid; use one of {', '.join(map(repr, LAYOUTS))}.")
        self.layout = layout if self.support.masks else "plain"
        self.pack_tokens = 384
        # With the block attention function nothing is computed between packed
        # queries, so a whole batch can share one pack.
        self.block_attention = is_block_attention(model) and self.support.block_attention
        n = len(self.trie.tokens)
        # ancestors[a, b]: trie node a may attend to node b (b is a or above a).
        self._ancestors = torch.zeros((n, n), dtype=torch.bool)
        for a in range(n):
            self._ancestors[a, self.trie.ancestors_or_self(a)] = True
        self._cache_arg, self._keep_supported = _forward_kwargs(model)
        self._prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._lock = threading.Lock()
        # Work counters for benchmarks: token positions run through the model and
        # rows of the LM head computed (padding included).
        self.stats = {"tokens": 0, "head_rows": 0}

    @property
    def n_classes(self) -> int:
        return len(self.trie.reads)

    def rows_that_fit(self, free_bytes: int, query_tokens: int = 128) -> int:
        """How many prompts of ``query_tokens`` new tokens one padded batch can hold.

        A conservative estimate for ``batch_size="auto"``: per row, the prefix
        cache copied for the row (twice while it is extended), the query's
        activations and attention scores, and the LM-head rows read.
        """
        cfg = self.model.config.get_text_config()
        elt = torch.finfo(self.dtype).bits // 8
        heads = cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        context = len(self.prefix_ids) + query_tokens + len(self.trie.tokens)
        kv = 2 * 2 * cfg.num_hidden_layers * kv_heads * head_dim * context * elt
        activations = query_tokens * (4 * cfg.hidden_size + 3 * cfg.intermediate_size) * elt
        attention = 2 * heads * query_tokens * context * elt
        head = 2 * (1 + len(self.trie.tokens)) * cfg.vocab_size * 4
        return int(max(1, min(512, free_bytes // (kv + activations + attention + head))))

    @property
    def has_prefix_cache(self) -> bool:
        """Whether the prefix's key/value cache is built (it is, on first use)."""
        return self._prefix_kv is not None

    @property
    def is_building(self) -> bool:
        """Whether a thread is building the prefix cache now."""
        return self._lock.locked()

    def prefix_kv(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The prefix's keys and values per layer, each ``(1, heads, P, dim)``."""
        if self._prefix_kv is None:
            with self._lock:
                if self._prefix_kv is None:
                    with torch.inference_mode():
                        kv = self._run_prefix()
                    # Assigned only once complete, so an interruption leaves no half cache.
                    self._prefix_kv = kv
        return self._prefix_kv

    def _run_prefix(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One pass of the prefix, in the caller's gradient mode: its keys and values per layer."""
        ids = torch.tensor([self.prefix_ids], device=self.device)
        # A cache of full layers: a sliding-window layer's own cache would drop the keys
        # beyond its window, which the engine's masks hide per query instead.
        out = self.model(input_ids=ids, use_cache=True, **{self._cache_arg: _full_cache()}, **self._keep(1))
        self._count(len(self.prefix_ids), 1)
        return [(layer.keys, layer.values) for layer in _output_cache(out).layers]

    def _keep(self, columns: int | torch.Tensor) -> dict[str, Any]:
        return {"logits_to_keep": columns} if self._keep_supported else {}

    def _batch_cache(self, shared: int, batch: int, kv: list | None = None) -> Any:
        data = [
            (k[:, :, :shared].expand(batch, -1, -1, -1), v[:, :, :shared].expand(batch, -1, -1, -1))
            for k, v in (self.prefix_kv() if kv is None else kv)
        ]
        return _full_cache(data)

    def _shared_lengths(self, prompts: Sequence[Sequence[int]]) -> list[int]:
        """Tokens each prompt shares with the cached prefix, keeping at least one to
        compute: its output predicts the label."""
        return [max(0, min(common_prefix_length(p, self.prefix_ids), len(p) - 1)) for p in prompts]

    def trainable_scores(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        """Label log-likelihoods as a tensor that gradients flow through, for fine-tuning.

        The same layouts, tokens, positions and masks as :meth:`score`, with the
        prefix run in the same graph: once per call, shared by the batch (its keys
        and values depend on the weights being trained). The batch is one pack,
        whatever its size. Call it with gradients enabled, outside
        ``torch.inference_mode``.

        Parameters
        ----------
        prompts : sequence of sequence of int
            Whole prompts, as token ids.

        Returns
        -------
        Tensor of shape (n_prompts, n_classes), float32
        """
        keep = self._shared_lengths(prompts)
        # The whole prefix, in the graph: a batch reads the keys and values of the
        # tokens its prompts share with it (their values at those positions do not
        # depend on the tokens after them).
        kv = self._run_prefix() if self.prefix_ids else None
        if self.layout == "plain":
            return self._plain_scores(prompts, min(keep), kv)
        *batch, shared, kwargs = self._lay_out(prompts, keep, kv)
        return self._label_scores(*batch, shared, len(prompts), kwargs)

    def _lay_out(self, prompts: Sequence[Sequence[int]], keep: list[int], kv: list | None = None) -> tuple:
        """A batch in the packed or padded layout: input ids, positions, the allowed
        attention, the columns read, the cached tokens it uses, and the model's keyword
        arguments (the prefix cache expanded to the batch, the packed blocks)."""
        kwargs: dict[str, Any] = {}
        if self.layout == "packed":
            input_ids, positions, allowed, read_cols, blocks = self._layout_packed(prompts, keep)
            shared = max(keep)
            if self.block_attention:
                kwargs[BLOCKS_KWARG] = (shared, blocks)
        else:
            shared = min(keep)
            input_ids, positions, allowed, read_cols = self._layout_padded(
                [p[shared:] for p in prompts], shared
            )
        if shared:
            kwargs[self._cache_arg] = self._batch_cache(shared, input_ids.shape[0], kv)
        return input_ids, positions, allowed, read_cols, shared, kwargs

    def _label_scores(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        allowed: torch.Tensor,
        read_cols: torch.Tensor,
        shared: int,
        n_rows: int,
        kwargs: dict[str, Any],
    ) -> torch.Tensor:
        """One forward pass of a laid-out batch; each label's log-likelihood, float32."""
        read_cols = read_cols.to(self.device)
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=self._attention_mask(allowed, positions, shared),
            position_ids=positions.to(self.device),
            use_cache=True,
            **kwargs,
            **self._keep(read_cols),
        )
        logits = out.logits if self._keep_supported else out.logits[:, read_cols.to(out.logits.device)]
        logp = torch.log_softmax(logits.float(), dim=-1).reshape(n_rows, -1, logits.shape[-1])
        self._count(input_ids.numel(), input_ids.shape[0] * len(read_cols))
        return torch.stack([sum(logp[:, c, t] for c, t in reads) for reads in self.trie.reads], dim=1)

    def score(self, prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Log-likelihood of each label after each prompt.

        Parameters
        ----------
        prompts : sequence of sequence of int
            Whole prompts, as token ids.

        Returns
        -------
        ndarray of shape (n_prompts, n_classes), float64
        """
        return self.score_with_states(prompts, ())[0]

    def score_with_states(
        self, prompts: Sequence[Sequence[int]], layers: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Label log-likelihoods, and the hidden states where the label is predicted.

        Parameters
        ----------
        prompts : sequence of sequence of int
            Whole prompts, as token ids.
        layers : sequence of int
            Hidden-state layers to read at each prompt's last token (the position
            whose output predicts the label), numbered as transformers'
            ``hidden_states``: ``n`` is the output of the ``n``-th decoder layer,
            the number of layers (or -1) the final, normalised one.

        Returns
        -------
        scores : ndarray of shape (n_prompts, n_classes), float64
        states : ndarray of shape (n_prompts, len(layers), hidden_size), float32
        """
        n_rows = len(prompts)
        width = self.model.config.get_text_config().hidden_size
        if n_rows == 0:
            return np.empty((0, self.n_classes)), np.empty((0, len(layers), width), dtype=np.float32)
        keep = self._shared_lengths(prompts)
        if self.layout == "plain":
            return self._score_plain(prompts, min(keep), layers)
        if self.layout == "packed" and n_rows > 1 and not self.block_attention:
            # Attention between packed queries is computed then masked away, and it
            # grows with the square of the pack: cap a pack's tokens.
            packs, size = [[0]], self._block_size(prompts[0], keep[0])
            for i in range(1, n_rows):
                cost = self._block_size(prompts[i], keep[i])
                if size + cost > self.pack_tokens:
                    packs.append([])
                    size = 0
                packs[-1].append(i)
                size += cost
            if len(packs) > 1:
                scores = np.empty((n_rows, self.n_classes))
                states = np.empty((n_rows, len(layers), width), dtype=np.float32)
                for pack in packs:
                    scores[pack], states[pack] = self.score_with_states([prompts[i] for i in pack], layers)
                return scores, states
        input_ids, positions, allowed, read_cols, shared, kwargs = self._lay_out(prompts, keep)
        read_cols = read_cols.to(self.device)
        # The column of each prompt's last token, in its row of the batch.
        cols = (
            read_cols.reshape(n_rows, -1)[:, 0] if self.layout == "packed" else read_cols[:1].expand(n_rows)
        )
        rows = torch.zeros(n_rows, dtype=torch.long) if self.layout == "packed" else torch.arange(n_rows)
        with torch.inference_mode(), capture_states(self.model, layers) as captured:
            scores = self._label_scores(input_ids, positions, allowed, read_cols, shared, n_rows, kwargs)
        return scores.double().cpu().numpy(), _gather_states(
            captured, layers, rows, cols.cpu(), self.model.config
        )

    def _attention_mask(self, allowed: torch.Tensor, positions: torch.Tensor, shared: int) -> Any:
        """The 4-D float mask of ``allowed``; per layer type where some layers slide.

        A layer with a sliding window of ``w`` sees a key only if the query's
        position is less than ``w`` after the key's, as in the model's own masks.
        """

        def as_float(a: torch.Tensor) -> torch.Tensor:
            mask = torch.zeros(a.shape, dtype=self.dtype)
            mask.masked_fill_(~a, torch.finfo(self.dtype).min)
            return mask[:, None].to(self.device)

        windows = self.support.windows
        if not windows:
            return as_float(allowed)
        prefix = torch.arange(shared).expand(positions.shape[0], -1)
        distance = positions[:, :, None] - torch.cat([prefix, positions], dim=1)[:, None, :]
        masks = {kind: as_float(allowed & (distance < w)) for kind, w in windows.items()}
        if "all" in masks:
            return masks["all"]
        full = as_float(allowed)
        layer_types = set(self.model.config.get_text_config().layer_types)
        return {kind: masks.get(kind, full) for kind in layer_types}

    def _score_plain(
        self, prompts: Sequence[Sequence[int]], shared: int, layers: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded rows under a 2-D mask: how any causal LM runs a batch.

        One row per prompt, or per (prompt, label) when labels have several tokens;
        the model builds its own masks and positions (ALiBi, sliding windows).
        """
        with torch.inference_mode(), capture_states(self.model, layers) as captured:
            scores = self._plain_scores(prompts, shared)
        # Each prompt's first row, at its last token.
        rows = torch.arange(len(prompts)) * (self.n_classes if self.trie.tokens else 1)
        cols = torch.tensor([len(p) - shared - 1 for p in prompts])
        return scores.double().cpu().numpy(), _gather_states(captured, layers, rows, cols, self.model.config)

    def _plain_scores(
        self, prompts: Sequence[Sequence[int]], shared: int, kv: list | None = None
    ) -> torch.Tensor:
        """The plain layout's forward pass; each label's log-likelihood, float32."""
        units: list[tuple[int, int, list[int]]] = []  # (prompt, class, row tokens)
        multi = bool(self.trie.tokens)
        for i, p in enumerate(prompts):
            rest = list(p[shared:])
            if multi:
                units += [(i, c, rest + seq[:-1]) for c, seq in enumerate(self.trie.sequences)]
            else:
                units.append((i, -1, rest))
        width = max(len(u[2]) for u in units)
        input_ids = torch.full((len(units), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(units), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for r, (_, _, row) in enumerate(units):
            input_ids[r, : len(row)] = torch.tensor(row)
            mask[r, shared : shared + len(row)] = 1
        kwargs: dict[str, Any] = {}
        if shared:
            kwargs[self._cache_arg] = self._batch_cache(shared, len(units), kv)
        out = self.model(
            input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), use_cache=True, **kwargs
        )
        logp = torch.log_softmax(out.logits.float(), dim=-1)
        self._count(input_ids.numel(), input_ids.numel())
        scores: list[list[Any]] = [[None] * self.n_classes for _ in prompts]
        for r, (i, c, _) in enumerate(units):
            n_prompt = len(prompts[i]) - shared
            for k in [c] if multi else range(self.n_classes):
                seq = self.trie.sequences[k]
                scores[i][k] = sum(logp[r, n_prompt - 1 + j, t] for j, t in enumerate(seq))
        return torch.stack([torch.stack(row) for row in scores])

    def _layout_padded(self, rests: list[list[int]], shared: int):
        """One row per prompt, left-padded so every query ends in the same column."""
        trie = self.trie
        n_rows, n_nodes = len(rests), len(trie.tokens)
        lengths = torch.tensor([len(r) for r in rests])
        width = int(lengths.max())
        total = width + n_nodes
        input_ids = torch.full((n_rows, total), self.pad_id, dtype=torch.long)
        for i, rest in enumerate(rests):
            input_ids[i, width - len(rest) : width] = torch.tensor(rest)
        if n_nodes:
            input_ids[:, width:] = torch.tensor(trie.tokens)
        col = torch.arange(width)
        first_real = width - lengths
        real = col[None, :] >= first_real[:, None]
        positions = torch.empty((n_rows, total), dtype=torch.long)
        positions[:, :width] = shared + (col[None, :] - first_real[:, None]).clamp(min=0)
        if n_nodes:
            positions[:, width:] = shared + lengths[:, None] + torch.tensor(trie.depths)[None, :]
        allowed = torch.zeros((n_rows, total, shared + total), dtype=torch.bool)
        allowed[:, :, :shared] = True
        causal = col[:, None] >= col[None, :]
        allowed[:, :width, shared : shared + width] = causal[None] & real[:, None, :]
        # Padding rows see themselves, so that no row of the mask is empty.
        allowed[:, :width, shared : shared + width] |= (
            torch.eye(width, dtype=torch.bool)[None] & ~real[:, :, None]
        )
        if n_nodes:
            allowed[:, width:, shared : shared + width] = real[:, None, :]
            allowed[:, width:, shared + width :] = self._ancestors[None]
        read_cols = torch.tensor([width - 1] + [width + n for n in range(n_nodes)])
        return input_ids, positions, allowed, read_cols

    def _layout_packed(self, prompts: Sequence[Sequence[int]], keep: list[int]):
        """All prompts in one row, each query followed by its label trie.

        A block-diagonal mask keeps the queries apart and lets each block see only
        the prefix tokens it shares with the cache. The cache is used at batch size
        1, so it is never copied per query, and there is no padding.
        """
        trie = self.trie
        n_nodes = len(trie.tokens)
        shared = max(keep)
        rests = [list(p[k:]) for p, k in zip(prompts, keep)]
        lengths = torch.tensor([len(r) for r in rests])
        ids: list[int] = []
        for rest in rests:
            ids += rest
            ids += trie.tokens
        seg = torch.tensor([self._block_size(p, k) for p, k in zip(prompts, keep)])
        block = torch.repeat_interleave(torch.arange(len(rests)), seg)
        starts = torch.cumsum(seg, 0) - seg
        local = torch.arange(len(ids)) - starts[block]  # index inside its block
        qlen = lengths[block]
        is_node = local >= qlen
        node = (local - qlen).clamp(min=0, max=max(n_nodes - 1, 0))
        depth = torch.tensor(trie.depths)[node] if n_nodes else torch.zeros_like(node)
        start_pos = torch.tensor(keep)[block]
        positions = start_pos + torch.where(is_node, qlen + depth, local)
        same = block[:, None] == block[None, :]
        q_row, q_col = ~is_node[:, None], ~is_node[None, :]
        sees = q_col & (~q_row | (local[:, None] >= local[None, :]))
        if n_nodes:
            sees |= ~q_row & ~q_col & self._ancestors[node[:, None], node[None, :]]
        prefix_cols = torch.arange(shared)[None, :] < start_pos[:, None]
        allowed = torch.cat([prefix_cols, same & sees], dim=1)
        ends = starts + lengths - 1
        read_cols = torch.stack([ends] + [starts + lengths + n for n in range(n_nodes)], 1)
        blocks = list(zip(starts.tolist(), (starts + seg).tolist()))
        return torch.tensor([ids]), positions[None], allowed[None], read_cols.reshape(-1), blocks

    def _block_size(self, prompt: Sequence[int], keep: int) -> int:
        """Tokens a prompt adds to a pack: its uncached tokens and its label trie."""
        return len(prompt) - keep + len(self.trie.tokens)

    def _count(self, tokens: int, head_rows: int) -> None:
        self.stats["tokens"] += tokens
        self.stats["head_rows"] += head_rows


def decoder_layers(model: Any) -> torch.nn.ModuleList:
    """The model's list of decoder layers (``layers``, ``h``, ``decoder.layers``, ...)."""
    n = model.config.get_text_config().num_hidden_layers
    for module in model.base_model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise TypeError(
        f"Cannot find the {n} decoder layers of {type(model).__name__} to read hidden states from."
    )


def layer_index(layer: int, n_layers: int) -> int:
    """A hidden-state layer in transformers' numbering, 1..n_layers; -1 is the last.

    Examples
    --------
    >>> from skllm_fewshot._scoring import layer_index
    >>> layer_index(-1, 30), layer_index(12, 30)
    (30, 12)
    """
    index = n_layers + 1 + layer if layer < 0 else layer
    if not 1 <= index <= n_layers:
        raise ValueError(f"layer {layer} does not exist; use 1..{n_layers}, or -1 for the final states.")
    return index


@contextmanager
def capture_states(model: Any, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Hidden states of ``layers`` (transformers' numbering) during one forward pass.

    Forward hooks, removed on exit: transformers' ``output_hidden_states`` would
    keep hooks on the model for good, after which it no longer pickles.
    """
    captured: dict[int, torch.Tensor] = {}
    n = model.config.get_text_config().num_hidden_layers
    handles = []

    def keep(index: int) -> Callable:
        def hook(module: Any, args: Any, output: Any) -> None:
            states = output[0] if isinstance(output, (tuple, list)) else output
            captured[index] = getattr(states, "last_hidden_state", states)

        return hook

    try:
        for layer in dict.fromkeys(layer_index(layer, n) for layer in layers):
            # The final layer's states are read after the final norm, where the LM head reads them.
            target = model.base_model if layer == n else decoder_layers(model)[layer - 1]
            handles.append(target.register_forward_hook(keep(layer)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def _gather_states(
    captured: dict[int, torch.Tensor],
    layers: Sequence[int],
    rows: torch.Tensor,
    cols: torch.Tensor,
    config: Any,
) -> np.ndarray:
    """``(n_prompts, len(layers), hidden)`` states at each prompt's (row, column)."""
    config = config.get_text_config()
    n_layers, width = config.num_hidden_layers, config.hidden_size
    out = np.empty((len(rows), len(layers), width), dtype=np.float32)
    if not layers:
        return out
    for j, layer in enumerate(layers):
        states = captured[layer_index(layer, n_layers)]
        out[:, j] = states[rows.to(states.device), cols.to(states.device)].float().cpu().numpy()
    return out


def _full_cache(data: Any = None) -> Any:
    """A ``DynamicCache`` whose every layer keeps all its keys (no sliding-window layers)."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=data) if data is not None else DynamicCache()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def score_in_batches(
    score: Callable[[list[list[int]]], np.ndarray],
    encode: Callable[[Sequence[str]], list[list[int]]],
    texts: Sequence[str],
    n_classes: int,
    batch_size: int,
    *,
    chunk_size: int = 4096,
    verbose: bool = False,
    on_oom: Callable[[], None] | None = None,
) -> np.ndarray:
    """Score texts in batches sorted by length; results come back in input order.

    Texts are tokenized a chunk at a time, so memory holds one chunk of token ids
    and one batch of activations, whatever the number of texts. A batch that runs
    out of accelerator memory is retried at half the size, losing no rows.

    Parameters
    ----------
    score : callable
        Token-id prompts to a ``(n, n_classes)`` array.
    encode : callable
        Texts to token-id prompts.
    texts : sequence of str
    n_classes : int
    batch_size : int
    chunk_size : int, default=4096
        Texts tokenized and sorted together.
    verbose : bool, default=False
        Show a progress bar over batches.
    on_oom : callable, optional
        Called after an out-of-memory error, before the retry (e.g. to empty the
        CUDA cache).

    Returns
    -------
    ndarray of shape (len(texts), n_classes)
    """
    n = len(texts)
    out = np.empty((n, n_classes))
    progress = None
    if verbose:
        from tqdm.auto import tqdm

        progress = tqdm(total=n, unit="text", desc="scoring")
    try:
        for start in range(0, n, chunk_size):
            ids = encode(texts[start : start + chunk_size])
            # Longest first: an out-of-memory error shows on the first batch.
            order = np.argsort([-len(x) for x in ids], kind="stable")
            done = 0
            while done < len(order):
                rows = order[done : done + batch_size]
                try:
                    result = score([ids[i] for i in rows])
                except (torch.OutOfMemoryError, RuntimeError) as exc:
                    if not _is_oom(exc) or len(rows) == 1:
                        raise
                    batch_size = max(1, len(rows) // 2)
                    if on_oom is not None:
                        on_oom()
                    continue
                out[start + rows] = result
                done += len(rows)
                if progress is not None:
                    progress.update(len(rows))
    finally:
        if progress is not None:
            progress.close()
    return out
