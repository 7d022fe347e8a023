"""The batched, prefix-cached scorer agrees with plain one-prompt-at-a-time loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (
    LOG_ATOL,
    TEST_DEVICE,
    TEST_DTYPE,
    TRICKY_QUERIES,
    assert_proba_close,
    loop_log_likelihoods,
    whole_prompts,
)  # fmt: skip

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._engine import clear_feature_cache
from skllm_fewshot._scoring import LabelTrie, PrefixCachedScorer, score_in_batches
from skllm_fewshot.reference import full_label_proba, seed_first_token_proba

# Queries of very different lengths, some merging with the quote before them.
QUERIES = [
    "I love my new chess board!",
    "s is fine",
    "ll do",
    "re",
    "",
    " ",
    "It's the cat's hat. " * 15,
    "meh",
    "Not what I expected but I guess it'll do",
    "Me compré 2 alfajores Milka 😻 https://t.co/abc",
    "'",
    "wonderful and lovely, really great",
]
# The seed's loop turns special-token text in a query into special tokens; the
# library does not, so these are compared with loops over the library's own tokens.
QUERIES_WITH_SPECIALS = QUERIES + ["x <|im_end|> y", "</s>"]

TRAIN_X = ["great", "wonderful day", "awful", "terrible film", "meh", "okay I guess", "lovely", "boring"]
# Classes as words: first tokens 'b', 'g', 'm' differ, so first_token scoring works.
TRAIN_Y_FIRST = ["good", "good", "bad", "bad", "meh", "meh", "good", "bad"]
# Scored through FULL_LABEL_WORDS below.
TRAIN_Y_FULL = ["positive", "positive", "negative", "negative", "neutral", "neutral", "positive", "negative"]

# Three tokens each ("ne gat ive", "ne ut ral", "b an cos"), two sharing "ne": the
# probabilities are not dominated by the length of the words, and the trie branches.
FULL_LABEL_WORDS = {"negative": "negative", "neutral": "neutral", "positive": "bancos"}


@pytest.fixture(scope="module")
def tiny_model(tiny_model):
    """The tiny model on SKLLM_TEST_DEVICE in SKLLM_TEST_DTYPE (CPU float32 by default)."""
    import copy

    if TEST_DEVICE == "cpu" and TEST_DTYPE == torch.float32:
        return tiny_model
    return copy.deepcopy(tiny_model).to(TEST_DEVICE, TEST_DTYPE)


@pytest.fixture(params=["packed-blocks", "packed", "packed-split", "padded"])
def layout(request):
    """Every layout of the scorer, whatever the device picks by default.

    "packed-blocks" runs the block attention function (the default for models the
    library loads); "packed" masks plain SDPA instead; "packed-split" caps a pack
    at a few tokens, so a batch runs as several packs.
    """
    return request.param


def use_layout(scorer, layout):
    scorer.layout = layout.split("-")[0]
    scorer.pack_tokens = 8 if layout == "packed-split" else 384
    scorer.block_attention = layout == "packed-blocks"
    return scorer


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def first_token_clf(tiny_model, bpe_tokenizer):
    return FewShotLLMClassifier(
        tiny_model,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        label_scoring="first_token",
        random_state=0,
        batch_size=4,
    ).fit(TRAIN_X, TRAIN_Y_FIRST)


@pytest.fixture(scope="module")
def full_label_clf(tiny_model, bpe_tokenizer):
    return FewShotLLMClassifier(
        tiny_model,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        label_scoring="full_label",
        random_state=0,
        batch_size=4,
        label_words=FULL_LABEL_WORDS,
    ).fit(TRAIN_X, TRAIN_Y_FULL)


@pytest.fixture(scope="module")
def first_token_reference(first_token_clf, tiny_model, bpe_tokenizer):
    return seed_first_token_proba(
        tiny_model, bpe_tokenizer, whole_prompts(first_token_clf, QUERIES), list(first_token_clf.label_words_)
    )


@pytest.fixture(scope="module")
def full_label_reference(full_label_clf, tiny_model, bpe_tokenizer):
    return full_label_proba(
        tiny_model, bpe_tokenizer, whole_prompts(full_label_clf, QUERIES), list(full_label_clf.label_words_)
    )


def test_tiny_model_probabilities_vary(first_token_reference, full_label_reference):
    """Agreement to 1e-4 only means something if the probabilities move with the query."""
    for ref in (first_token_reference, full_label_reference):
        assert ref.std(axis=0).max() > 0.05
        assert len(set(ref.argmax(1))) >= 2


@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
@pytest.mark.parametrize("scoring, seed", [("first_token", 0), ("full_label", 100)])
def test_predictions_match_reference(request, scoring, seed, batch_size, layout):
    """first_token against the seed's loop, full_label against the full-label loop."""
    clf = request.getfixturevalue(f"{scoring}_clf")
    reference = request.getfixturevalue(f"{scoring}_reference")
    use_layout(clf.engine_.scorer, layout)
    if scoring == "full_label":
        # The labels share first tokens: the trie has nodes.
        assert len(clf.engine_.scorer.trie.tokens) > 0
    clf.set_params(batch_size=batch_size)
    try:
        rng = np.random.default_rng(seed + batch_size)
        for _ in range(2):
            perm = rng.permutation(len(QUERIES))
            p = clf.predict_proba([QUERIES[i] for i in perm])
            assert_proba_close(p, reference[perm])
    finally:
        clf.set_params(batch_size=4)


def test_full_label_raw_scores_match_loop(full_label_clf, tiny_model, layout):
    engine = full_label_clf.engine_
    use_layout(engine.scorer, layout)
    ids = engine.tokens.encode(QUERIES_WITH_SPECIALS)
    expected = loop_log_likelihoods(tiny_model, ids, full_label_clf.label_token_ids_)
    for batch in (1, 3, len(ids)):
        got = np.concatenate([engine.scorer.score(ids[i : i + batch]) for i in range(0, len(ids), batch)])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=LOG_ATOL)


@pytest.mark.parametrize(
    "labels",
    [
        [[7], [9], [11]],  # one token each: no trie nodes
        [[20, 21, 22], [20, 21, 23], [20, 24], [25]],  # shared prefixes of different depths
        [[30], [30, 31], [30, 31, 32]],  # a label that is a prefix of another
        [[40, 41, 42, 43, 44], [45, 46]],
    ],
)
def test_scorer_matches_loop_for_any_label_trie(tiny_model, bpe_tokenizer, labels, layout):
    from skllm_fewshot._prompt import FewShotPrompt
    from skllm_fewshot._tokenization import PromptTokenizer

    prompt = FewShotPrompt("Classify: {labels}.", [("I love it", "x")], ["x", "y"], "Text", "Label")
    tokens = PromptTokenizer(prompt, bpe_tokenizer)
    ids = tokens.encode(QUERIES_WITH_SPECIALS)
    scorer = PrefixCachedScorer(tiny_model, tokens.prefix_ids(), labels, pad_id=bpe_tokenizer.pad_token_id)
    use_layout(scorer, layout)
    expected = loop_log_likelihoods(tiny_model, ids, labels)
    np.testing.assert_allclose(scorer.score(ids), expected, rtol=1e-5, atol=LOG_ATOL)
    # Scoring again (the prefix cache is reused, not extended) gives the same.
    np.testing.assert_allclose(scorer.score(ids[:3]), expected[:3], rtol=1e-5, atol=LOG_ATOL)


def test_scorer_handles_prompts_shorter_than_the_prefix(tiny_model, layout):
    prefix = [1, 50, 51, 52, 53]
    prompts = [[1, 50], [1, 50, 51, 52, 53, 54], [1, 60, 61], [1]]
    scorer = use_layout(PrefixCachedScorer(tiny_model, prefix, [[5, 6], [5, 7], [8]], pad_id=0), layout)
    expected = loop_log_likelihoods(tiny_model, prompts, [[5, 6], [5, 7], [8]])
    np.testing.assert_allclose(scorer.score(prompts), expected, rtol=1e-5, atol=LOG_ATOL)
    assert scorer.score([]).shape == (0, 3)


def test_chat_format_matches_loop(tiny_model, bpe_tokenizer, layout):
    clf = FewShotLLMClassifier(
        tiny_model,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        prompt_format="chat",
        label_scoring="first_token",
        random_state=0,
        batch_size=3,
    ).fit(TRAIN_X, TRAIN_Y_FIRST)
    use_layout(clf.engine_.scorer, layout)
    ids = clf.engine_.tokens.encode(QUERIES_WITH_SPECIALS)
    # Chat prompts are tokenized without add_special_tokens (the template writes them).
    plain = ids[: len(QUERIES)]
    prompts = whole_prompts(clf, QUERIES)
    assert plain == [bpe_tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    expected = softmax(loop_log_likelihoods(tiny_model, ids, clf.label_token_ids_))
    assert_proba_close(clf.predict_proba(QUERIES_WITH_SPECIALS), expected)


def test_tricky_queries_match_reference(tiny_model, bpe_tokenizer, layout):
    clf = FewShotLLMClassifier(
        tiny_model,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        label_scoring="first_token",
        n_examples_per_class=2,
        random_state=1,
        batch_size=5,
    ).fit(TRAIN_X, TRAIN_Y_FIRST)
    use_layout(clf.engine_.scorer, layout)
    prompts = whole_prompts(clf, TRICKY_QUERIES)
    ref = seed_first_token_proba(tiny_model, bpe_tokenizer, prompts, clf.label_words_)
    assert_proba_close(clf.predict_proba(TRICKY_QUERIES), ref)


def test_wordlevel_tokenizer_with_eos_matches_loop(tiny_model, wordlevel_tokenizer, layout):
    clf = FewShotLLMClassifier(
        tiny_model,
        tokenizer=wordlevel_tokenizer,
        calibrate=False,
        label_scoring="full_label",
        random_state=0,
        batch_size=2,
    ).fit(TRAIN_X, TRAIN_Y_FIRST)
    use_layout(clf.engine_.scorer, layout)
    ids = clf.engine_.tokens.encode(QUERIES_WITH_SPECIALS)
    assert all(row[-1] != wordlevel_tokenizer.eos_token_id for row in ids)
    expected = softmax(loop_log_likelihoods(tiny_model, ids, clf.label_token_ids_))
    assert_proba_close(clf.predict_proba(QUERIES_WITH_SPECIALS), expected)


# -- LabelTrie -----------------------------------------------------------------


def test_label_trie_shared_prefixes():
    trie = LabelTrie([[1, 2, 3], [1, 2, 4], [1, 5], [6]])
    # Nodes: the fed tokens 1 (after the query), then 2 under it.
    assert trie.tokens == [1, 2]
    assert trie.parents == [-1, 0]
    assert trie.depths == [0, 1]
    assert trie.reads == [
        [(0, 1), (1, 2), (2, 3)],
        [(0, 1), (1, 2), (2, 4)],
        [(0, 1), (1, 5)],
        [(0, 6)],
    ]
    assert trie.ancestors_or_self(1) == [1, 0]
    assert trie.ancestors_or_self(0) == [0]


def test_label_trie_single_tokens_need_no_nodes():
    trie = LabelTrie([[3], [4], [5]])
    assert trie.tokens == [] and trie.parents == [] and trie.depths == []
    assert trie.reads == [[(0, 3)], [(0, 4)], [(0, 5)]]


def test_label_trie_prefix_of_another_label():
    trie = LabelTrie([[1], [1, 2], [1, 2, 3]])
    assert trie.tokens == [1, 2]
    assert trie.reads == [[(0, 1)], [(0, 1), (1, 2)], [(0, 1), (1, 2), (2, 3)]]


def test_label_trie_no_shared_prefix():
    trie = LabelTrie([[1, 2], [3, 4]])
    assert trie.tokens == [1, 3]
    assert trie.parents == [-1, -1]
    assert trie.reads == [[(0, 1), (1, 2)], [(0, 3), (2, 4)]]


def test_label_trie_rejects_empty_label():
    with pytest.raises(ValueError, match="no tokens"):
        LabelTrie([[1], []])


# -- score_in_batches ------------------------------------------------------------


def _fake_encode(texts):
    # Token ids whose length depends on the text, so the length sort reorders rows.
    return [[1] + [ord(c) for c in t] for t in texts]


def _fake_score_of(ids):
    # Two "classes": the row's length and its first char code, so rows can be traced.
    return np.array([[len(p), p[1] if len(p) > 1 else -1] for p in ids], dtype=float)


TEXTS = ["a", "bbbb", "cc", "dddddd", "", "eee", "ffffffffff", "g", "hhhhh"]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
@pytest.mark.parametrize("chunk_size", [2, 4096])
def test_score_in_batches_keeps_input_order(batch_size, chunk_size):
    seen = []

    def score(ids):
        seen.append(len(ids))
        return _fake_score_of(ids)

    out = score_in_batches(score, _fake_encode, TEXTS, 2, batch_size, chunk_size=chunk_size)
    np.testing.assert_array_equal(out, _fake_score_of(_fake_encode(TEXTS)))
    assert max(seen) <= batch_size
    assert sum(seen) == len(TEXTS)


@pytest.mark.parametrize(
    "error", [torch.OutOfMemoryError("CUDA out of memory."), RuntimeError("CUDA error: out of memory")]
)
def test_score_in_batches_retries_on_oom_and_loses_no_rows(error):
    calls = []
    emptied = []

    def score(ids):
        calls.append(len(ids))
        if len(ids) > 1 and len(calls) == 1:
            raise error
        return _fake_score_of(ids)

    out = score_in_batches(score, _fake_encode, TEXTS, 2, 4, on_oom=lambda: emptied.append(True))
    np.testing.assert_array_equal(out, _fake_score_of(_fake_encode(TEXTS)))
    assert calls[0] == 4 and calls[1] == 2  # retried at half the size
    assert max(calls[1:]) <= 2
    assert sum(calls[1:]) == len(TEXTS)
    assert emptied == [True]


def test_score_in_batches_gives_up_when_one_row_does_not_fit():
    def score(ids):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    with pytest.raises(torch.OutOfMemoryError):
        score_in_batches(score, _fake_encode, TEXTS, 2, 4)


def test_score_in_batches_reraises_other_errors():
    calls = []

    def score(ids):
        calls.append(len(ids))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        score_in_batches(score, _fake_encode, TEXTS, 2, 4)
    assert calls == [4]


def test_classifier_retries_on_oom(tiny_model, bpe_tokenizer, monkeypatch):
    clf = FewShotLLMClassifier(
        tiny_model,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        label_scoring="first_token",
        random_state=0,
        batch_size=8,
    ).fit(TRAIN_X, TRAIN_Y_FIRST)
    expected = clf.predict_proba(QUERIES)
    clear_feature_cache()  # score the queries again, not from the cache
    scorer = clf.engine_.scorer
    real_score = scorer.score
    sizes = []

    def flaky(prompts):
        sizes.append(len(prompts))
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return real_score(prompts)

    monkeypatch.setattr(scorer, "score", flaky)
    np.testing.assert_allclose(clf.predict_proba(QUERIES), expected, rtol=0, atol=1e-6)
    assert sizes[:3] == [8, 4, 2]


def test_rows_that_fit_grows_with_memory_and_never_drops_below_one(tiny_model):
    scorer = PrefixCachedScorer(tiny_model, list(range(1, 300)), [[5, 6], [5, 7], [8]], pad_id=0)
    sizes = [scorer.rows_that_fit(free_bytes=b) for b in (0, 2**20, 2**24, 2**28, 2**40)]
    assert sizes[0] == 1
    assert sizes == sorted(sizes)
    assert sizes[-1] == 512


def test_auto_batch_size_predicts_like_a_fixed_one(first_token_clf):
    clf = first_token_clf
    fixed = clf.predict_proba(QUERIES)
    clf.set_params(batch_size="auto")
    try:
        assert_proba_close(clf.predict_proba(QUERIES), fixed)
    finally:
        clf.set_params(batch_size=4)


def test_score_in_batches_streams_100k_texts_one_chunk_and_batch_at_a_time():
    # Memory is bounded by one chunk of token ids and one batch: neither grows with
    # the number of texts.
    texts = [f"t{i % 97}" * (1 + i % 5) for i in range(100_000)]
    largest = {"chunk": 0, "batch": 0}

    def encode(chunk):
        largest["chunk"] = max(largest["chunk"], len(chunk))
        return _fake_encode(chunk)

    def score(batch):
        largest["batch"] = max(largest["batch"], len(batch))
        return _fake_score_of(batch)

    out = score_in_batches(score, encode, texts, 2, batch_size=64, chunk_size=4096)
    assert largest == {"chunk": 4096, "batch": 64}
    np.testing.assert_array_equal(out, _fake_score_of(_fake_encode(texts)))
