"""
==================================
Multi-label: every topic that fits
==================================

A customer message can be about the price *and* the delivery. Give ``fit`` a 0/1
indicator matrix (here a DataFrame whose columns name the topics) and each topic is
judged on its own: after the message, every topic's ``"topic: yes"`` and
``"topic: no"`` are scored as branches of one pass, so the message's tokens are
computed once whatever the number of topics. ``predict`` returns an indicator
matrix, ``predict_proba`` one probability per topic, and scikit-learn's multi-label
metrics apply.
"""

# %%
# The data: 120 messages, four topics
# -----------------------------------
from sklearn.model_selection import train_test_split

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot.datasets import load_customer_messages

messages = load_customer_messages()
X, Y = messages["text"], messages.drop(columns="text")
X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.5, random_state=0)
print(Y.sum().to_dict())

# %%
# Fit and predict
# ---------------
#
# Two examples per topic go into the prompt, each shown with its whole label set;
# the thresholds are tuned per topic on the training rows (``threshold="auto"``),
# and ``at_least_one=True`` gives every message its likeliest topic when none
# passes.
clf = FewShotLLMClassifier(n_examples_per_class=2, at_least_one=True, random_state=0).fit(X_train, Y_train)
print(clf.prompt_[:600], "...")
print("thresholds:", dict(zip(clf.classes_, clf.head_.thresholds_.round(2))))

# %%
# Scores per topic
# ----------------
from itertools import product

import numpy as np
from sklearn.metrics import classification_report, f1_score

pred = clf.predict(X_test)
print(classification_report(Y_test, pred, target_names=list(clf.classes_), zero_division=0))
# The best constant predictor: the same label set for every message, the best of all 16.
constant = max(
    f1_score(Y_test, np.tile(c, (len(Y_test), 1)), average="micro", zero_division=0)
    for c in product([0, 1], repeat=Y.shape[1])
)
print(f"micro-F1 {f1_score(Y_test, pred, average='micro'):.3f} (the best constant predictor: {constant:.3f})")

# %%
import matplotlib.pyplot as plt
from sklearn.metrics import precision_recall_fscore_support

precision, recall, _, _ = precision_recall_fscore_support(Y_test, pred, zero_division=0)
fig, ax = plt.subplots(figsize=(6, 3))
at = np.arange(len(clf.classes_))
ax.bar(at - 0.2, precision, 0.4, label="precision")
ax.bar(at + 0.2, recall, 0.4, label="recall")
ax.set_xticks(at, clf.classes_)
ax.set_ylim(0, 1)
ax.legend()
fig.tight_layout()
