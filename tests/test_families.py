"""Every causal LM family scores as the plain one-prompt-at-a-time loop does.

Each family is a tiny random model built from its transformers config (2 layers,
hidden 64, the BPE tokenizer of conftest), passed as an object and by path (the
library then loads it and picks its attention), scored with both scorings and
every layout the engine allows for it, against the reference loops of
:mod:`skllm_fewshot.reference`. Variants with a sliding window shorter than the
prompt check that the engine's masks hide what the model's own masks hide.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_proba_close, build_bpe_tokenizer, loop_log_likelihoods

from skllm_fewshot import FewShotLLMClassifier, check_model
from skllm_fewshot._calibration import domain_queries, mean_log_prior
from skllm_fewshot._classifier import CONTENT_FREE
from skllm_fewshot._families import engine_support
from skllm_fewshot._loading import load_model
from skllm_fewshot._prompt import FewShotPrompt
from skllm_fewshot._scoring import PrefixCachedScorer, softmax
from skllm_fewshot._tokenization import PromptTokenizer
from skllm_fewshot.reference import full_label_proba, seed_first_token_proba

COMMON = dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=1, eos_token_id=2, pad_token_id=3,
    initializer_range=0.2,
)  # fmt: skip
WINDOW = dict(sliding_window=12, use_sliding_window=True, max_window_layers=0)

# name -> (config class, options beyond COMMON)
FAMILIES = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {}),
    "mistral-window": ("MistralConfig", {"sliding_window": 12}),
    "mixtral": ("MixtralConfig", {"num_local_experts": 4}),
    "qwen2": ("Qwen2Config", {}),
    "qwen2-window": ("Qwen2Config", WINDOW),
    "qwen2-moe": ("Qwen2MoeConfig", {"moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
                                      "num_experts": 4, "num_experts_per_tok": 2}),
    "qwen3": ("Qwen3Config", {}),
    "gemma": ("GemmaConfig", {}),
    "gemma2": ("Gemma2Config", {}),
    "gemma2-window": ("Gemma2Config", {"sliding_window": 12}),
    "gemma3": ("Gemma3TextConfig", {}),
    "gemma3-window": ("Gemma3TextConfig", {"sliding_window": 12}),
    "phi3": ("Phi3Config", {}),
    "phi": ("PhiConfig", {}),
    "olmo2": ("Olmo2Config", {}),
    "olmo3": ("Olmo3Config", {"sliding_window": 12}),
    "stablelm": ("StableLmConfig", {}),
    "granite": ("GraniteConfig", {}),
    "granitemoe": ("GraniteMoeConfig", {"num_local_experts": 4}),
    "gpt2": ("GPT2Config", {}),
    "gpt-neox": ("GPTNeoXConfig", {}),
    "gptj": ("GPTJConfig", {"rotary_dim": 8}),
    "opt": ("OPTConfig", {}),
    "starcoder2": ("Starcoder2Config", {}),
    "cohere": ("CohereConfig", {}),
    "gpt-bigcode": ("GPTBigCodeConfig", {}),
    "smollm3": ("SmolLM3Config", {}),
    "glm4": ("Glm4Config", {}),
    "falcon": ("FalconConfig", {}),
    "bloom": ("BloomConfig", {"initializer_range": 0.05}),
}  # fmt: skip

# The plain layout, with the model's own masks: families not verified for the others.
PLAIN_FAMILIES = {"bloom"}

TRAIN_X = ["great", "wonderful day", "awful", "terrible film", "meh", "okay I guess", "lovely", "boring"]
TRAIN_Y = ["good", "good", "bad", "bad", "meh", "meh", "good", "bad"]
# Several tokens each, two sharing a first token: the label trie branches.
FULL_WORDS = {"good": "positive", "bad": "negative", "meh": "neutral"}
QUERIES = ["I love my new chess board!", "s is fine", "It's the cat's hat. " * 4, "meh", "", "'"]


def build_family(name: str):
    import transformers

    cls_name, options = FAMILIES[name]
    config = getattr(transformers, cls_name)(**{**COMMON, **options})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config)
    return model.to(torch.float32).eval()


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(name, model object, folder with the model and the tokenizer)."""
    model = build_family(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    build_bpe_tokenizer().save_pretrained(folder)
    return request.param, model, folder


def whole_prompts(clf, queries):
    return [clf.prompt_.replace("{}", q) for q in queries]


def reference_proba(clf, model, tokenizer, queries):
    loop = full_label_proba if clf.label_scoring == "full_label" else seed_first_token_proba
    return loop(model, tokenizer, whole_prompts(clf, queries), clf.label_words_)


@pytest.mark.parametrize("scoring", ["first_token", "full_label"])
@pytest.mark.parametrize("given", ["object", "path"])
def test_family_scores_like_the_plain_loop(family, given, scoring):
    name, model, folder = family
    tokenizer = build_bpe_tokenizer()
    source = model if given == "object" else folder
    clf = FewShotLLMClassifier(
        source, tokenizer=tokenizer, calibrate=False, label_scoring=scoring, random_state=0, batch_size=4,
        label_words=FULL_WORDS if scoring == "full_label" else None,
    ).fit(TRAIN_X, TRAIN_Y)  # fmt: skip
    loaded = (
        model if given == "object" else load_model(folder, tokenizer, device="cpu", dtype="float32").model
    )
    ref = reference_proba(clf, loaded, tokenizer, QUERIES)
    # The queries must move the scores, or agreement means little; compared in log
    # space, where assert_proba_close checks small probabilities too.
    assert np.log(ref).std(axis=0).max() > 0.01, "the tiny model must tell the queries apart"
    assert_proba_close(clf.predict_proba(QUERIES), ref)


def test_family_layouts_match_the_loop(family):
    """Every layout the engine allows for the family, on labels that branch in the trie."""
    name, model, _ = family
    tokenizer = build_bpe_tokenizer()
    prompt = FewShotPrompt("Classify: {labels}.", [("I love it", "positive")], ["negative", "positive"])
    tokens = PromptTokenizer(prompt, tokenizer)
    ids = tokens.encode(QUERIES)
    labels = tokens.label_ids_in_context(["positive", "negative", "neutral"])
    expected = loop_log_likelihoods(model, ids, labels)
    layouts = ["plain"] if name in PLAIN_FAMILIES else ["packed", "padded", "plain"]
    assert engine_support(model).masks == (name not in PLAIN_FAMILIES)
    for layout in layouts:
        scorer = PrefixCachedScorer(
            model, tokens.prefix_ids(), labels, pad_id=tokenizer.pad_token_id, layout=layout
        )
        assert scorer.layout == layout
        for batch in (1, len(ids)):
            got = np.concatenate([scorer.score(ids[i : i + batch]) for i in range(0, len(ids), batch)])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4, err_msg=f"{name}, {layout}")


@pytest.mark.parametrize("calibrate", [True, "domain"])
@pytest.mark.parametrize("name", ["llama", "gemma2-window", "bloom"])
def test_calibrated_matches_the_loop_with_the_same_calibration(name, calibrate):
    model, tokenizer = build_family(name), build_bpe_tokenizer()
    clf = FewShotLLMClassifier(
        model,
        tokenizer=tokenizer,
        label_scoring="full_label",
        label_words=FULL_WORDS,
        calibrate=calibrate,
        random_state=0,
    )
    clf.fit(TRAIN_X, TRAIN_Y)
    prior = reference_proba(clf, model, tokenizer, list(CONTENT_FREE)).mean(axis=0)
    if calibrate == "domain":
        bags = domain_queries(TRAIN_X, random_state=0)
        prior = mean_log_prior(prior, reference_proba(clf, model, tokenizer, bags).mean(axis=0))
    ref = reference_proba(clf, model, tokenizer, QUERIES) / prior
    assert_proba_close(clf.predict_proba(QUERIES), ref / ref.sum(axis=1, keepdims=True))


def test_chat_format_matches_the_loop():
    model, tokenizer = build_family("qwen2"), build_bpe_tokenizer()
    clf = FewShotLLMClassifier(
        model,
        tokenizer=tokenizer,
        calibrate=False,
        prompt_format="chat",
        label_words=FULL_WORDS,
        random_state=0,
    ).fit(TRAIN_X, TRAIN_Y)
    assert clf.prompt_.startswith("<|im_start|>user\n")
    # The chat template writes its own special tokens: none are added.
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in whole_prompts(clf, QUERIES)]
    expected = softmax(loop_log_likelihoods(model, ids, clf.label_token_ids_))
    assert_proba_close(clf.predict_proba(QUERIES), expected)


def test_sliding_window_is_shorter_than_the_prompts():
    """Otherwise the window variants would test nothing."""
    tokens = PromptTokenizer(
        FewShotPrompt("Classify: {labels}.", [("I love it", "positive")], ["a", "b"]), build_bpe_tokenizer()
    )
    assert len(tokens.prefix_ids()) > 2 * WINDOW["sliding_window"]
    assert engine_support(build_family("gemma2-window")).windows == {"sliding_attention": 12}
    assert engine_support(build_family("mistral-window")).windows == {"all": 12}


@pytest.mark.parametrize("name", ["llama", "bloom"])
def test_check_model_reports_the_largest_difference(name):
    diff = check_model(build_family(name), tokenizer=build_bpe_tokenizer())
    assert 0 <= diff < 1e-4


def test_model_kwargs_reach_from_pretrained_and_key_the_cache(tiny_model_dir, bpe_tokenizer):
    default = load_model(tiny_model_dir, bpe_tokenizer, device="cpu", dtype="float32")
    eager = load_model(
        tiny_model_dir,
        bpe_tokenizer,
        device="cpu",
        dtype="float32",
        model_kwargs={"attn_implementation": "eager"},
    )
    assert eager.model is not default.model  # another cache entry
    assert eager.model.config._attn_implementation == "eager"  # kept, not switched to block attention
    again = load_model(
        tiny_model_dir,
        bpe_tokenizer,
        device="cpu",
        dtype="float32",
        model_kwargs={"attn_implementation": "eager"},
    )
    assert again.model is eager.model
    clf = FewShotLLMClassifier(
        tiny_model_dir,
        tokenizer=bpe_tokenizer,
        calibrate=False,
        model_kwargs={"attn_implementation": "eager"},
    ).fit(TRAIN_X, TRAIN_Y)
    assert_proba_close(clf.predict_proba(QUERIES), reference_proba(clf, eager.model, bpe_tokenizer, QUERIES))


def test_placement_options_are_passed_through_and_not_overridden(tiny_model_dir, monkeypatch):
    """device_map and quantization_config (GPU options) go to from_pretrained; the model is not moved."""
    import transformers

    seen, moved = {}, []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def recording(source, **kwargs):
        seen.update(kwargs)
        kwargs.pop("quantization_config")
        model = real(source, **{k: v for k, v in kwargs.items() if k != "device_map"})
        monkeypatch.setattr(model, "to", lambda *a, **k: moved.append(a) or model)
        return model

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", recording)
    options = {"device_map": "auto", "quantization_config": "4-bit stand-in", "revision": "main"}
    loaded = load_model(tiny_model_dir, device="cpu", dtype="float32", model_kwargs=options)
    assert {k: seen[k] for k in options} == options
    assert moved == []
    assert loaded.model.training is False


def test_model_kwargs_must_be_a_dict(tiny_model, bpe_tokenizer):
    with pytest.raises(ValueError, match="'model_kwargs' parameter"):
        FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, model_kwargs=["device_map"]).fit(
            TRAIN_X, TRAIN_Y
        )
