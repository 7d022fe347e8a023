"""
=====================================
Moving to a GPU and a larger model
=====================================

Everything in this gallery runs SmolLM2-135M-Instruct on a CPU, so that it runs
anywhere. For useful accuracy, give the classifier a larger instruction-tuned model,
and run it on a GPU. This page says what to change, what the library does on each
device, and what the measured speed is; it runs only small parts, on a CPU.
"""

# %%
# What to change
# --------------
#
# Four parameters; the rest of the code (``fit``, ``predict_proba``, pipelines,
# searches) stays as it is:
#
# ``model``
#     a Hugging Face id (``"google/gemma-2b-it"``, the seed notebook's model), a local
#     folder saved with ``save_pretrained``, a ``.gguf`` file, or a model object you
#     loaded yourself (then pass ``tokenizer=`` too). Names and paths are loaded once
#     per process and shared by every clone of the classifier.
# ``device``
#     ``"auto"`` (the default) is ``"cuda"`` when torch sees a GPU, else ``"cpu"``;
#     ``"cuda:1"`` picks a GPU.
# ``dtype``
#     ``"auto"`` is ``bfloat16`` on CUDA (half the memory of float32, and the GPU's
#     fast path) and ``float32`` on a CPU, where it is exact. ``"float16"`` for GPUs
#     without bfloat16.
# ``batch_size``
#     texts per forward pass. ``"auto"`` sizes batches from free GPU memory, and a
#     batch that runs out of memory is retried at half the size. On a CPU the engine
#     packs a batch's texts into bounded forwards anyway; 16 is fine.
#
# So the seed notebook's setup on a GPU is::
#
#     clf = FewShotLLMClassifier(
#         model="google/gemma-2b-it",   # downloaded once; needs `huggingface-cli login`
#         instruction=instruction, text_name="Tweet", label_name="Categoría",
#         n_examples_per_class=1, label_scoring="first_token",
#         device="cuda", dtype="bfloat16", batch_size="auto", verbose=True,
#     )
#
# A model that needs several GPUs or quantized weights is loaded by you and passed
# as an object, as it is (it is neither moved nor cast)::
#
#     from transformers import AutoModelForCausalLM, AutoTokenizer
#
#     name = "meta-llama/Llama-3.1-8B-Instruct"
#     model = AutoModelForCausalLM.from_pretrained(name, dtype="bfloat16", device_map="auto")
#     clf = FewShotLLMClassifier(model, tokenizer=AutoTokenizer.from_pretrained(name), ...)
#
# Instruction-tuned chat models often follow the task better with
# ``prompt_format="chat"``, which puts the same prompt through the model's chat
# template; compare both with a grid search (see
# :ref:`sphx_glr_auto_examples_plot_02_grid_search.py`).

# %%
# What "auto" picks on this machine
# ----------------------------------
import torch

print("CUDA available:", torch.cuda.is_available())  # device="auto" then means "cuda", dtype="auto" bfloat16

# %%
# How much memory
# ---------------
#
# The weights take (number of parameters) x (bytes per parameter): 2 bytes in
# bfloat16 or float16, 4 in float32. On top of that the engine keeps the key/value
# cache of the prompt's shared part (instruction and examples) and, per batch, the
# activations of the texts' tokens; ``batch_size="auto"`` accounts for them.
import pandas as pd

from skllm_fewshot import load_model

smollm2 = load_model().model  # the embedded model, loaded once for this whole gallery
models = {
    "SmolLM2-135M-Instruct (embedded)": sum(p.numel() for p in smollm2.parameters()),
    "google/gemma-2b-it (seed notebook)": 2.51e9,
    "meta-llama/Llama-3.1-8B-Instruct": 8.03e9,
}
pd.DataFrame(
    {
        "parameters (billions)": {name: n / 1e9 for name, n in models.items()},
        "float32 weights (GiB)": {name: 4 * n / 2**30 for name, n in models.items()},
        "bfloat16 weights (GiB)": {name: 2 * n / 2**30 for name, n in models.items()},
    }
).round(2)

# %%
# Measured speed
# --------------
#
# :doc:`/performance` records how fast ``predict_proba`` scores the MAS tweets,
# measured side by side with the seed notebook's loop
# (:func:`~skllm_fewshot.reference.seed_first_token_proba`: one whole prompt at a
# time). On a CPU (SmolLM2-135M, 2 cores, one example per class, 200 tweets) the
# classifier runs the shared part of the prompt once and only the tweet's own tokens
# after it. Rows marked *opt-in* are cheaper arithmetic that changes some
# predictions ("same predictions" compares with the exact float32 row of the same
# scoring).
import matplotlib.pyplot as plt

# From docs/performance.md (tests/test_docs.py checks that they are still there).
CPU_RECORD = pd.DataFrame(
    [
        ("seed loop (reference)", 1.01, 1.00, 100.0),
        ("first_token", 10.53, 10.41, 100.0),
        ("full_label", 7.55, 7.46, 100.0),
        ("first_token, dtype=bfloat16 (opt-in)", 19.18, 18.96, 86.0),
        ("full_label, dtype=bfloat16 (opt-in)", 14.63, 14.46, 96.5),
        ("first_token, dtype=qint8 (opt-in)", 24.00, 23.74, 40.0),
        ("full_label, dtype=qint8 (opt-in)", 17.27, 17.08, 35.5),
    ],
    columns=["method", "tweets/s", "speed-up vs seed loop", "same predictions (%)"],
).set_index("method")

fig, ax = plt.subplots(figsize=(7, 3.2))
speeds = CPU_RECORD["tweets/s"][::-1]
speeds.plot.barh(ax=ax, color=["C1" if "opt-in" in method else "C0" for method in speeds.index])
ax.set(xlabel="tweets per second (2 CPU cores, SmolLM2-135M)", ylabel="")
fig.tight_layout()
CPU_RECORD

# %%
# On a GPU the engine gives each text its own left-padded row (with the shared
# prefix's cache expanded to the batch) instead of packing texts into one row as on
# a CPU; both layouts are tested to agree to 1e-4. No GPU figures are recorded yet;
# the benchmark measures them with a randomly initialised Gemma-2B-shaped model, so
# that nothing needs downloading::
#
#     python benchmarks/bench_predict.py --random-init gemma-2b --device cuda

# %%
# Trying the settings on a CPU
# ----------------------------
#
# The same parameters on the embedded model: ``dtype="bfloat16"`` is opt-in on a CPU
# (faster where the CPU has bfloat16 instructions, with some predictions changed),
# and ``batch_size`` changes how many texts go through the model together, not the
# results.
import time

import numpy as np

from skllm_fewshot import FewShotLLMClassifier, clear_model_cache, model_cache_info
from skllm_fewshot.datasets import load_example_tweets

tweets, instruction = load_example_tweets()
X, y = tweets["TEXTO"], tweets["SECTOR"]
texts = X.sample(21, random_state=0)

results, probas = {}, {}
for dtype, batch_size in (("float32", 16), ("float32", 4), ("bfloat16", 16)):
    clf = FewShotLLMClassifier(
        instruction=instruction,
        text_name="Tweet",
        label_name="Categoría",
        label_scoring="first_token",
        device="cpu",
        dtype=dtype,
        batch_size=batch_size,
        random_state=0,
    ).fit(X, y)
    clf.predict_proba(texts[:1])  # the model is loaded, the prompt's shared part computed
    start = time.perf_counter()
    probas[dtype, batch_size] = clf.predict_proba(texts)
    results[f"dtype={dtype}, batch_size={batch_size}"] = {"seconds": time.perf_counter() - start}

exact = probas["float32", 16]
for (dtype, batch_size), proba in probas.items():
    row = results[f"dtype={dtype}, batch_size={batch_size}"]
    row["largest difference vs float32"] = np.abs(proba - exact).max()
    row["same predictions (%)"] = 100 * np.mean(proba.argmax(1) == exact.argmax(1))
pd.DataFrame(results).T.round(4)

# %%
# ``batch_size`` leaves the probabilities as they are (up to float rounding); bfloat16
# moves them by up to a few hundredths, enough to flip near ties: SmolLM2-135M's class
# probabilities on this task are close together. A larger model's margins are wider.
#
# Each ``(model, dtype, device)`` is loaded once and kept for the whole process. On a
# GPU, free the memory of a model you no longer need with
# :func:`~skllm_fewshot.clear_model_cache` (and drop the classifiers that hold it).
print(model_cache_info())
del clf
clear_model_cache()
print(model_cache_info())
