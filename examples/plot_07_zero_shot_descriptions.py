"""
===============================================
Zero-shot from class names and descriptions
===============================================

With no labelled text at all, ``fit(None, class_names)`` builds a zero-shot
classifier from the names of the classes. ``label_descriptions`` adds a short
description of each class, shown in the prompt as a demonstration: the
description as a text of its class. It gives a small model the layout of an
answer and the words of each class without a single labelled row. This example compares, on the package's 91 example
tweets, zero-shot with names, zero-shot with descriptions, and the calibrated
prompt with one labelled example per class.
"""

# %%
# Zero-shot: no rows, only the names
# ----------------------------------
from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot.datasets import SECTOR_DESCRIPTIONS, load_example_tweets

tweets, _ = load_example_tweets()
X, y = tweets["TEXTO"], tweets["SECTOR"]
names = sorted(y.unique())
instruction = (
    "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
    "Las posibles categorías son: {labels}"
)
common = dict(text_name="Tweet", label_name="Categoría", n_examples_per_class=0)
names_only = FewShotLLMClassifier(instruction=instruction, **common).fit(None, names)
print(f"zero-shot, names: {names_only.score(X, y):.3f}")

# %%
# With a description of each class
# --------------------------------
#
# Each description becomes one demonstration, before the text to classify.
described = FewShotLLMClassifier(instruction=instruction, label_descriptions=SECTOR_DESCRIPTIONS, **common)
described.fit(None, names)
print(described.prompt_)
print(f"zero-shot, names and descriptions: {described.score(X, y):.3f}")

# %%
# Against one labelled example per class
# --------------------------------------
#
# Averaged over 3 draws of the examples, scored on the tweets not in the prompt.
import numpy as np

one_shot = []
for seed in range(3):
    clf = FewShotLLMClassifier(
        instruction=instruction,
        text_name="Tweet",
        label_name="Categoría",
        n_examples_per_class=1,
        random_state=seed,
    ).fit(X, y)
    rest = ~X.isin([text for text, _ in clf.examples_])
    one_shot.append(clf.score(X[rest], y[rest]))
print(f"one example per class: {np.mean(one_shot):.3f} ± {np.std(one_shot):.3f}")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 3))
labels = ["zero-shot, names", "zero-shot, descriptions", "1 example per class"]
ax.barh(
    labels, [names_only.score(X, y), described.score(X, y), np.mean(one_shot)], xerr=[0, 0, np.std(one_shot)]
)
ax.axvline(1 / len(names), color="grey", ls=":", label="chance")
ax.set_xlabel("accuracy on the 91 example tweets")
ax.legend()
fig.tight_layout()
