"""Prompt-based LoRA fine-tuning: the differentiable scores, training, isolation, pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_X, SENTIMENT_Y, build_tiny_model
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._finetuning import FineTunedHead, LoRAFineTuning, auto_steps, shared_copy
from skllm_fewshot._scoring import PrefixCachedScorer

pytest.importorskip("peft")

# A task the tiny random model cannot do from the prompt: the label is in one word.
WORDS_X = [f"{w} {n}" for n in ("one", "two", "three", "four", "five", "six") for w in ("sun", "rain")]
WORDS_Y = ["warm" if t.startswith("sun") else "cold" for t in WORDS_X]


@pytest.fixture
def make(tiny_model, bpe_tokenizer):
    def make(**params):
        params = {"random_state": 0, "calibrate": False, **params}
        return FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, **params)

    return make


def quick(**params):
    return LoRAFineTuning(**{"max_steps": 8, "learning_rate": 1e-2, "batch_size": 4, **params})


@pytest.mark.parametrize("layout", ["padded", "plain"])
@pytest.mark.parametrize("scoring", ["full_label", "first_token"])
def test_trainable_scores_equal_the_engine_scores_and_carry_gradients(make, layout, scoring):
    words = {"negative": "bad", "neutral": "okay so", "positive": "good"}  # distinct first tokens
    clf = make(label_scoring=scoring, label_words=words).fit(SENTIMENT_X, SENTIMENT_Y)
    engine = clf.engine_
    model = shared_copy(engine.loaded.model)
    scorer = PrefixCachedScorer(
        model, engine.scorer.prefix_ids, engine.label_token_ids, engine.scorer.pad_id, layout
    )
    ids = engine.encode(SENTIMENT_X)
    with torch.enable_grad():
        scores = scorer.trainable_scores(ids)
        np.testing.assert_allclose(scores.detach().double().numpy(), engine.scorer.score(ids), atol=1e-4)
        weight = model.get_input_embeddings().weight
        (grad,) = torch.autograd.grad(scores.sum(), weight)
    # The prefix is in the graph: its tokens' embeddings get gradients too.
    prefix_token = engine.scorer.prefix_ids[1]
    assert grad[prefix_token].abs().sum() > 0


def test_shared_copy_shares_the_weights_and_not_the_modules(tiny_model):
    twin = shared_copy(tiny_model)
    assert twin is not tiny_model and twin.model.layers[0] is not tiny_model.model.layers[0]
    assert all(a is b for a, b in zip(twin.parameters(), tiny_model.parameters()))


def test_auto_steps_grow_with_the_rows_within_bounds():
    assert [auto_steps(n, 8) for n in (2, 16, 64, 400, 10**6)] == [20, 20, 32, 200, 200]


def test_fine_tuning_learns_what_the_prompt_cannot(make):
    before = make().fit(WORDS_X, WORDS_Y)
    tuned = make(head=LoRAFineTuning(max_steps=40, learning_rate=2e-2, batch_size=6)).fit(WORDS_X, WORDS_Y)
    assert isinstance(tuned.head_, FineTunedHead) and tuned.head_.n_steps_ == 40
    curve = tuned.head_.loss_curve_
    assert np.mean(curve[-5:]) < 0.5 * np.mean(curve[:5])
    accuracy = (tuned.predict(WORDS_X) == np.array(WORDS_Y)).mean()
    assert accuracy == 1.0 and accuracy > (before.predict(WORDS_X) == np.array(WORDS_Y)).mean()


def test_the_shared_model_and_other_estimators_are_untouched(make, tiny_model):
    modules = [type(m) for m in tiny_model.modules()]
    weights = [p.detach().clone() for p in tiny_model.parameters()]
    flags = [p.requires_grad for p in tiny_model.parameters()]
    other = make(head=LogisticRegression()).fit(SENTIMENT_X, SENTIMENT_Y)
    proba, features = other.predict_proba(SENTIMENT_X), other.features(SENTIMENT_X)
    tuned = make(head=quick()).fit(SENTIMENT_X, SENTIMENT_Y)
    tuned.predict_proba(SENTIMENT_X)
    assert [type(m) for m in tiny_model.modules()] == modules
    assert all(torch.equal(a, b) for a, b in zip(tiny_model.parameters(), weights))
    assert [p.requires_grad for p in tiny_model.parameters()] == flags
    np.testing.assert_array_equal(other.predict_proba(SENTIMENT_X), proba)
    np.testing.assert_array_equal(other.features(SENTIMENT_X), features)
    # The adapted model has its own feature-cache entries: its features differ.
    assert not np.allclose(tuned.head_.features(tuned.engine_, SENTIMENT_X), features)


def test_the_shared_models_gradient_flags_are_kept(bpe_tokenizer):
    import copy

    # A model of its own: the session's tiny model has been through other fits.
    model = copy.deepcopy(build_tiny_model())
    flags = [p.requires_grad for p in model.parameters()]
    assert all(flags)
    FewShotLLMClassifier(model, tokenizer=bpe_tokenizer, head=quick(), random_state=0, calibrate=False).fit(
        SENTIMENT_X, SENTIMENT_Y
    )
    assert [p.requires_grad for p in model.parameters()] == flags


def test_a_pickle_keeps_the_adapter_and_not_the_base_weights(path_clf):
    tuned = path_clf(head=quick(), calibrate=False).fit(SENTIMENT_X, SENTIMENT_Y)
    blob = pickle.dumps(tuned)
    weights = sum(p.numel() * p.element_size() for p in tuned.engine_.loaded.model.parameters())
    adapter = sum(t.numel() * t.element_size() for t in tuned.head_.adapter_.values())
    assert 0 < adapter < len(blob) < adapter + weights / 2
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.predict_proba(SENTIMENT_X), tuned.predict_proba(SENTIMENT_X))


def test_the_same_random_state_gives_the_same_adapter(make):
    a = make(head=quick()).fit(SENTIMENT_X, SENTIMENT_Y)
    b = make(head=quick()).fit(SENTIMENT_X, SENTIMENT_Y)
    np.testing.assert_array_equal(a.predict_proba(SENTIMENT_X), b.predict_proba(SENTIMENT_X))
    c = make(head=quick(), random_state=1).fit(SENTIMENT_X, SENTIMENT_Y)
    assert not np.array_equal(a.predict_proba(SENTIMENT_X), c.predict_proba(SENTIMENT_X))


def test_lora_is_a_head_parameter_grid_search_can_tune(make):
    clf = make(head="lora")
    assert clone(clf).head == "lora"
    search = GridSearchCV(make(head=quick()), {"head__learning_rate": [1e-3, 1e-2]}, cv=3)
    search.fit(SENTIMENT_X * 2, SENTIMENT_Y * 2)
    assert search.best_params_["head__learning_rate"] in (1e-3, 1e-2)


def test_balanced_weights_and_the_probe(make):
    X, y = SENTIMENT_X + SENTIMENT_X[:1], SENTIMENT_Y + SENTIMENT_Y[:1]  # 4 positive, 3 of the others
    balanced = make(head=quick(class_weight="balanced")).fit(X, y)
    counts = np.unique(y, return_counts=True)[1]
    np.testing.assert_allclose(balanced.head_.class_weight_, len(y) / (len(counts) * counts))
    assert make(head=quick()).fit(X, y).head_.class_weight_ is None
    proba = balanced.predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    # The weights change the training, not the prediction (no prior multiplied back):
    # the same adapter predicts the same without them.
    unweighted = pickle.loads(pickle.dumps(balanced))
    unweighted.head_.class_weight_ = None
    np.testing.assert_allclose(unweighted.predict_proba(SENTIMENT_X), proba, atol=1e-6)
    probed = make(head=quick(probe=LogisticRegression()), head_layers=[-1]).fit(X, y)
    assert probed.head_.probe_ is not None
    assert probed.predict_proba(SENTIMENT_X).shape == (len(SENTIMENT_X), 3)


def test_multi_label_targets_train_each_labels_yes(make):
    from skllm_fewshot.datasets import load_customer_messages

    frame = load_customer_messages()[:24]
    X, Y = frame["text"], frame.drop(columns="text")
    clf = make(head=quick()).fit(X, Y)
    assert clf.multi_label_ and clf.head_.thresholds_.tolist() == [0.5] * Y.shape[1]
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(clf.predict(X), (proba >= 0.5).astype(int))


def test_bfloat16_models_fine_tune_with_the_same_code(bpe_tokenizer):
    model = build_tiny_model()
    import copy

    model = copy.deepcopy(model).to(torch.bfloat16)
    clf = FewShotLLMClassifier(model, tokenizer=bpe_tokenizer, head=quick(), random_state=0, calibrate=False)
    proba = clf.fit(SENTIMENT_X, SENTIMENT_Y).predict_proba(SENTIMENT_X)
    assert np.isfinite(proba).all() and np.isfinite(clf.head_.loss_curve_).all()
    assert all(t.dtype == torch.float32 for t in clf.head_.adapter_.values())


@pytest.mark.parametrize(
    "params, match",
    [
        ({"rank": 0}, "'rank' parameter.*Got 0"),
        ({"learning_rate": -1.0}, "'learning_rate' parameter.*Got -1.0"),
        ({"max_steps": "many"}, "'max_steps' parameter.*Got 'many'"),
        ({"class_weight": "auto"}, "'class_weight' parameter.*Got 'auto'"),
        ({"label_smoothing": 1.0}, "'label_smoothing' parameter.*Got 1.0"),
        ({"target_modules": ["no_such_layer"]}, "target_modules"),
    ],
)
def test_invalid_parameters_are_named(make, params, match):
    with pytest.raises(ValueError, match=match):
        make(head=LoRAFineTuning(**params)).fit(SENTIMENT_X, SENTIMENT_Y)
