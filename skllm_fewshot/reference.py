"""Plain reference loops: one prompt at a time, whole prompt tokenized, no cache.

They are the seed notebook's method written out, kept to check the batched,
cached engine against and to time it in the benchmarks. They are slow on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._scoring import softmax

__all__ = ["check_model", "full_label_proba", "seed_first_token_proba"]

# A few labelled texts for check_model: any model can score them.
_CHECK_X = [
    "I love my new chess board!",
    "What a wonderful day.",
    "I'm so disappointed with it.",
    "Terrible service, never again.",
    "It arrived on Tuesday.",
    "The box is blue.",
]
_CHECK_Y = ["positive", "positive", "negative", "negative", "neutral", "neutral"]
_CHECK_QUERIES = [
    "Great value, works perfectly.",
    "Not what I expected but I guess it'll do",
    "s is fine",
    "",
    "'",
    "It's the cat's hat. " * 8,
]


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

    >>> from skllm_fewshot import load_model
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


def check_model(
    model: Any,
    tokenizer: Any = None,
    texts: Sequence[str] | None = None,
    *,
    device: str = "auto",
    dtype: str = "float32",
    model_kwargs: dict | None = None,
) -> float:
    """Largest difference between the library's engine and the plain loops, for one model.

    Fits a :class:`~skllm_fewshot.FewShotLLMClassifier` on six labelled sentences
    with each scoring (``calibrate=False``), predicts ``texts``, and compares the
    probabilities with :func:`seed_first_token_proba` and :func:`full_label_proba`
    run on the same model. Below ``1e-4`` in float32 the engine is exact for the
    model; a larger value is a bug worth reporting, with the model's family.

    Parameters
    ----------
    model : str, path or PreTrainedModel
        As the classifier's ``model`` parameter.
    tokenizer : str, path or tokenizer, optional
        As the classifier's ``tokenizer`` parameter.
    texts : sequence of str, optional
        The texts to compare on; by default a few short and long English ones.
    device, dtype : str
        As the classifier's parameters; float32 makes the comparison meaningful.
    model_kwargs : dict, optional
        As the classifier's parameter.

    Returns
    -------
    float
        The largest absolute difference of a class probability, over both scorings.

    Examples
    --------
    >>> from skllm_fewshot import check_model
    >>> check_model("Qwen/Qwen2.5-0.5B-Instruct") < 1e-4  # doctest: +SKIP
    True
    """
    from ._classifier import FewShotLLMClassifier
    from ._loading import load_model

    queries = list(_CHECK_QUERIES if texts is None else texts)
    worst = 0.0
    for scoring, keep in (("first_token", 2), ("full_label", 3)):
        classes = ["negative", "positive", "neutral"][:keep]
        rows = [i for i, c in enumerate(_CHECK_Y) if c in classes]
        clf = FewShotLLMClassifier(
            model,
            tokenizer=tokenizer,
            label_scoring=scoring,
            calibrate=False,
            random_state=0,
            device=device,
            dtype=dtype,
            model_kwargs=model_kwargs,
        )
        clf.fit([_CHECK_X[i] for i in rows], [_CHECK_Y[i] for i in rows])
        loaded = load_model(model, tokenizer, device=device, dtype=dtype, model_kwargs=model_kwargs)
        prompts = [clf.prompt_.replace("{}", q) for q in queries]
        loop = seed_first_token_proba if scoring == "first_token" else full_label_proba
        reference = loop(loaded.model, loaded.tokenizer, prompts, clf.label_words_)
        worst = max(worst, float(np.abs(clf.predict_proba(queries) - reference).max()))
    return worst
