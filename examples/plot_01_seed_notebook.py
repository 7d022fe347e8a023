"""
===================================================
The seed notebook: zero-shot and few-shot on tweets
===================================================

This library reproduces a Spanish course notebook, *Zero-shot and few-shot learning en
un problema de clasificación con instruction-tuned LLM*. The notebook:

1. writes a prompt (an instruction, then the text to classify) and lets
   ``google/gemma-2b-it`` answer: zero-shot;
2. puts one labelled example of each class before the text: few-shot;
3. reads the answer from the model's next-token probabilities instead of generated
   text: a softmax over the logits of each label's first token;
4. classifies marketing tweets of the MAS corpus into 7 sectors that way.

Here every step is one :class:`~skllm_fewshot.FewShotLLMClassifier`, run on the
embedded SmolLM2-135M-Instruct (``model=None``), a model 15 times smaller than gemma-2b
that runs on a laptop CPU. Its answers are worse than gemma's; the method is the same,
and the last section checks that it computes exactly the seed's probabilities.
"""

# %%
# Zero-shot: an instruction and the text
# --------------------------------------
#
# The notebook's first prompt asks for the sentiment of a product review. A
# classifier needs its classes, so ``fit`` gets the notebook's three labelled
# reviews; with ``n_examples_per_class=0`` none of them goes into the prompt.
# ``prompt_`` is the rendered prompt, with ``{}`` where each review goes.
from skllm_fewshot import FewShotLLMClassifier

instruction = "Decide whether the following product reviews' sentiment is positive, neutral, or negative."
reviews = [
    "I love my new chess board!",
    "Not what I expected but I guess it'll do",
    "I'm so disappointed. The product seemed much better on the website",
]
sentiments = ["positive", "neutral", "negative"]
sample = "The reactivity of your team has been good...ish. However, the overal experience is questionable."

zero_shot = FewShotLLMClassifier(
    model=None,  # the embedded SmolLM2-135M-Instruct
    instruction=instruction,
    text_name="Product review",
    label_name="Sentiment",
    n_examples_per_class=0,
    calibrate=False,  # the notebook's method: the model's probabilities as they are
)
zero_shot.fit(reviews, sentiments)
print(zero_shot.prompt_)

# %%
# ``predict_proba`` gives one probability per class, in the order of ``classes_``.
# The model never generates text: it scores each label word after the prompt.
import pandas as pd

pd.DataFrame(zero_shot.predict_proba([sample]), columns=zero_shot.classes_).round(3)

# %%
# Few-shot: one example per class
# -------------------------------
#
# With ``n_examples_per_class=1`` the prompt holds one labelled review of each class,
# in the notebook's layout (``generate_prompt``): the field name, the text in quotes,
# the label name, the label.
from sklearn.base import clone

few_shot = clone(zero_shot).set_params(n_examples_per_class=1, random_state=0)
few_shot.fit(reviews, sentiments)
print(few_shot.prompt_)

# %%
pd.DataFrame(few_shot.predict_proba([sample]), columns=few_shot.classes_).round(3)

# %%
# The tweets: the MAS corpus, or the package's own example set
# ------------------------------------------------------------
#
# The notebook classifies tweets of the MAS corpus by marketing sector. The corpus is
# course material and is not shipped with this package; the notebook downloads it::
#
#     wget --no-clobber --directory-prefix ./Datasets/mascorpus/ \
#     https://raw.githubusercontent.com/santiagxf/M72109/master/NLP/Datasets/mascorpus/tweets_marketing.csv
#
# :func:`~skllm_fewshot.datasets.load_mas_tweets` reads it and renames the sectors
# as the notebook does. Where the file is not at hand (as when this page is built),
# :func:`~skllm_fewshot.datasets.load_example_tweets` returns 91 short tweets of the
# same 7 sectors written for this package, in the same layout. Set the environment
# variable ``SKLLM_MAS_CORPUS`` to the corpus' path to run this page on the corpus
# itself (a sample of it: SmolLM2 scores a few tweets a second on a CPU).
import os
from pathlib import Path

from skllm_fewshot.datasets import load_example_tweets, load_mas_tweets

corpus = Path(os.environ.get("SKLLM_MAS_CORPUS", "Datasets/mascorpus/tweets_marketing.csv"))
if corpus.is_file():
    tweets, tweet_instruction = load_mas_tweets(corpus)
    # 15 tweets per sector keep this page at about a minute on two CPU cores.
    tweets = tweets.groupby("SECTOR").sample(15, random_state=0)
    print(f"MAS corpus: {corpus}")
else:
    tweets, tweet_instruction = load_example_tweets()
    print("MAS corpus not found: using the package's example tweets")
print(tweet_instruction)
tweets["SECTOR"].value_counts()

# %%
# The notebook splits the data 67/33, stratified by sector; the few-shot examples
# come from the training part, the scores from the test part.
from sklearn.model_selection import train_test_split

train, test = train_test_split(tweets, test_size=0.33, stratify=tweets["SECTOR"], random_state=0)
print(f"{len(train)} training tweets, {len(test)} test tweets")

# %%
# Zero-shot, then few-shot, on the tweets
# ---------------------------------------
#
# The notebook's prompt: its instruction names the 7 sectors, each tweet is a
# ``Tweet`` and each label a ``Categoría``. ``label_scoring="first_token"`` with
# ``calibrate=False`` is the notebook's method: the softmax over the next-token logits
# of each label word's first token, nothing else.
seed_like = FewShotLLMClassifier(
    model=None,
    instruction=tweet_instruction,
    text_name="Tweet",
    label_name="Categoría",
    label_scoring="first_token",
    calibrate=False,
    random_state=0,
)
accuracy = {}
for shots in (0, 1):
    seed_like.set_params(n_examples_per_class=shots).fit(train["TEXTO"], train["SECTOR"])
    predicted = seed_like.predict(test["TEXTO"])
    accuracy[f"{shots}-shot"] = float((predicted == test["SECTOR"]).mean())
print(seed_like.prompt_)
print({name: round(acc, 3) for name, acc in accuracy.items()}, f"(chance: {1 / 7:.3f})")

# %%
# The confusion matrix of the few-shot classifier shows which sectors the small model
# mixes up.
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay

fig, ax = plt.subplots(figsize=(6.5, 5.5))
ConfusionMatrixDisplay.from_predictions(
    test["SECTOR"], predicted, labels=seed_like.classes_, xticks_rotation=45, colorbar=False, ax=ax
)
ax.set_title(f"SmolLM2-135M, 1 example per class: accuracy {accuracy['1-shot']:.2f}")
fig.tight_layout()

# %%
# Label-token probabilities
# -------------------------
#
# The notebook scores only the first token of each label word. A label such as
# ``supermercados`` is several tokens long, and with ``label_scoring="first_token"`` two
# labels that start with the same token could not be told apart (the classifier says
# so at ``fit``). ``label_token_ids_`` shows the tokens each label is scored by.
from skllm_fewshot import load_model

full_label = clone(seed_like).set_params(label_scoring="full_label").fit(train["TEXTO"], train["SECTOR"])
tokenizer = load_model().tokenizer  # the embedded model, loaded once: this is the cached one
for label, first, whole in zip(seed_like.classes_, seed_like.label_token_ids_, full_label.label_token_ids_):
    pieces = [tokenizer.decode([token]) for token in whole]
    print(f"{label:>14}: first_token scores {pieces[: len(first)]}, full_label scores {pieces}")

# %%
# The default, ``label_scoring="full_label"``, scores a label by the sum of the
# log-probabilities of all its tokens. Here are both methods' probabilities for the
# first three test tweets.
first_three = test["TEXTO"].iloc[:3].tolist()
pd.concat(
    {
        "first_token": pd.DataFrame(seed_like.predict_proba(first_three), columns=seed_like.classes_),
        "full_label": pd.DataFrame(full_label.predict_proba(first_three), columns=full_label.classes_),
    },
    names=["label_scoring", "tweet"],
).round(3)

# %%
# The same numbers as the notebook's loop
# ---------------------------------------
#
# :func:`~skllm_fewshot.reference.seed_first_token_proba` is the notebook's
# ``generate_for_classification`` written out: one whole prompt at a time through the
# model, the softmax over the label words' first tokens. The classifier computes the
# same probabilities faster: it runs the shared part of the prompt once and reuses it
# for every tweet (see :doc:`/performance`). Each whole prompt is the notebook's
# ``prompt.format(tweet)``.
import numpy as np

from skllm_fewshot.reference import seed_first_token_proba

loaded = load_model()
head, tail = seed_like.prompt_.rsplit("{}", 1)
few = test["TEXTO"].iloc[:8].tolist()
seed_proba = seed_first_token_proba(
    loaded.model, loaded.tokenizer, [head + t + tail for t in few], seed_like.label_words_
)
library_proba = seed_like.predict_proba(few)
print(f"largest difference: {np.abs(seed_proba - library_proba).max():.1e}")
print(f"same predictions: {(seed_proba.argmax(1) == library_proba.argmax(1)).all()}")

# %%
# On a GPU, with the notebook's model
# -----------------------------------
#
# The notebook ran gemma-2b-it in bfloat16 on a GPU. The same classifier, with the
# model's name instead of ``None`` (the weights are downloaded once by Hugging Face;
# gemma needs a ``huggingface-cli login`` and the licence accepted on its page)::
#
#     clf = FewShotLLMClassifier(
#         model="google/gemma-2b-it",
#         instruction=tweet_instruction, text_name="Tweet", label_name="Categoría",
#         label_scoring="first_token", calibrate=False,
#         device="cuda", dtype="bfloat16", batch_size="auto",
#     )
#
# :ref:`sphx_glr_auto_examples_plot_05_gpu_and_larger_models.py` says what to change
# and what it costs.
