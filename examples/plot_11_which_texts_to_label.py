"""
=====================================================
Which texts to label next, from the label names on
=====================================================

Labels are the scarce thing of a few-shot notebook. This example starts from the
names of the classes alone and labels a pool of tweets round by round, 7 texts a
round. Each round, :func:`~skllm_fewshot.suggest_labels` picks which texts to label
next; a random draw of the same size is the baseline. The pool is lopsided, as real
pools are: three sectors are common and two are rare. A classifier cannot predict a
class it has never seen a row of, unless it knows the class by name: here
``classes=`` lists every sector from the start, so a sector without a labelled row
is still scored by its name. Two strategies of ``suggest_labels`` are compared: the
default, ``"typical"``, which labels the most typical tweet of each of the largest
clusters of the pool not labelled yet, and ``"margin_diversity"``, which looks first
for the likeliest tweet of each sector nobody has labelled, then for the tweets the
classifier doubts.

The classifier is the seed notebook's prompt: it names every sector and shows one
labelled example of each sector labelled so far. Random draws are averaged over two seeds. With so few labels a single
pick can move the curves by several points; ``docs/active.md`` gives the measured
comparison on larger pools, and where suggested labels do not beat random ones.
"""

# %%
# A lopsided pool, and the classifier from the names
# --------------------------------------------------
import numpy as np
import pandas as pd
from sklearn.base import clone

from skllm_fewshot import FewShotLLMClassifier, suggest_labels
from skllm_fewshot.datasets import load_example_tweets

tweets, _ = load_example_tweets()
names = sorted(tweets["SECTOR"].unique())
keep = {"bancos": 13, "bebidas": 13, "deportes": 13, "alimentos": 6, "telefonía": 6}  # the others: 2
pool = pd.concat([rows.head(keep.get(name, 2)) for name, rows in tweets.groupby("SECTOR")])
X, y = pool["TEXTO"].to_numpy(dtype=object), pool["SECTOR"].to_numpy(dtype=object)
print(pool["SECTOR"].value_counts().to_dict())

instruction = (
    "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
    "Las posibles categorías son: {labels}"
)
zero_shot = FewShotLLMClassifier(
    instruction=instruction, text_name="Tweet", label_name="Categoría", n_examples_per_class=0
)
classifier = clone(zero_shot).set_params(classes=names, n_examples_per_class=1)

# %%
# The loop: suggest, label, refit
# -------------------------------
#
# The labeller is simulated: it reveals ``y`` for the texts it is given. Accuracy is
# measured on the texts of the pool not labelled yet.
rounds, per_round = 4, len(names)


def label_rounds(strategy: str, seed: int) -> tuple[list[float], list[int]]:
    rng = np.random.RandomState(seed)
    labelled: list[int] = []
    accuracy, found = [], []
    clf = clone(zero_shot).fit(None, names)  # no labels yet: the zero-shot prompt
    for _ in range(rounds):
        if strategy != "random":
            new = suggest_labels(clf, X, per_round, labelled=labelled, strategy=strategy, random_state=seed)
        else:
            new = rng.choice(np.setdiff1d(np.arange(len(X)), labelled), per_round, replace=False)
        labelled += new.tolist()
        clf = clone(classifier).fit(X[labelled], y[labelled])
        rest = np.setdiff1d(np.arange(len(X)), labelled)
        accuracy.append(clf.score(X[rest], y[rest]))
        found.append(len(set(y[labelled])))
    return accuracy, found


typical = label_rounds("typical", seed=0)
doubt = label_rounds("margin_diversity", seed=0)
random = [label_rounds("random", seed=seed) for seed in range(2)]
spent = per_round * np.arange(1, rounds + 1)
print("labels spent:     ", spent.tolist())
print("typical:          ", np.round(typical[0], 3).tolist(), "classes found", typical[1])
print("margin_diversity: ", np.round(doubt[0], 3).tolist(), "classes found", doubt[1])
print("random (mean):    ", np.round(np.mean([r[0] for r in random], axis=0), 3).tolist(),
      "classes found", np.mean([r[1] for r in random], axis=0).tolist())  # fmt: skip

# %%
# Accuracy against the labels spent
# ---------------------------------
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(spent, typical[0], marker="o", label="suggest_labels (typical)")
ax.plot(spent, doubt[0], marker="o", label="margin_diversity")
ax.plot(spent, np.mean([r[0] for r in random], axis=0), marker="o", linestyle="--", label="random (2 draws)")
ax.set(xlabel="labels spent", ylabel="accuracy on the unlabelled tweets", xticks=spent)
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The same loop works with :class:`~skllm_fewshot.FewShotLLMClassifierCV` as the
# classifier (``FewShotLLMClassifierCV(classifier)``): its search then compares the
# labelled sectors and leaves the others to the prompt over every sector.
