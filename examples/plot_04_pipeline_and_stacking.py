"""
=====================================================
In a Pipeline, and stacked with a TF-IDF model
=====================================================

:class:`~skllm_fewshot.FewShotLLMClassifier` takes raw texts (a list, an array, a
pandas Series) and is a scikit-learn classifier in every other way: it goes at the
end of a :class:`~sklearn.pipeline.Pipeline` and into ensembles. This example puts
it after a text-cleaning step, then stacks it with a classic TF-IDF + logistic
regression model, which learns from all the training tweets where the prompt holds
only a few, and multiplies the two models' probabilities.
"""

# %%
# The data
# --------
#
# The package's 91 example tweets (:func:`~skllm_fewshot.datasets.load_example_tweets`),
# split 67/33 as in the seed notebook.
from sklearn.model_selection import train_test_split

from skllm_fewshot.datasets import load_example_tweets

tweets, instruction = load_example_tweets()
train, test = train_test_split(tweets, test_size=0.33, stratify=tweets["SECTOR"], random_state=0)
X_train, y_train, X_test, y_test = train["TEXTO"], train["SECTOR"], test["TEXTO"], test["SECTOR"]

# %%
# A Pipeline: clean the text, then classify
# -----------------------------------------
#
# Tweets carry links and mentions that say nothing about the sector. A
# :class:`~sklearn.preprocessing.FunctionTransformer` removes them before the texts
# reach the prompt (for the few-shot examples at ``fit`` and for every text at
# ``predict``). The transformer returns a list of strings, which the classifier
# takes as it is.
import re

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skllm_fewshot import FewShotLLMClassifier


def clean_tweets(texts):
    """Drop links and @mentions, keep the words of #hashtags, squeeze spaces."""
    texts = [re.sub(r"https?://\S+|@\w+", " ", text) for text in texts]
    return [" ".join(text.replace("#", " ").split()) for text in texts]


llm = make_pipeline(
    FunctionTransformer(clean_tweets),
    FewShotLLMClassifier(
        model=None,  # the embedded SmolLM2-135M-Instruct
        instruction=instruction,
        text_name="Tweet",
        label_name="Categoría",
        n_examples_per_class=2,
        random_state=0,
    ),
)
print(clean_tweets(["@vecina ¡Ofertas en el súper! #ahorro https://example.com/x"]))

# %%
# Its parameters are reached through the step's name, as for any pipeline: here,
# ``fewshotllmclassifier__n_examples_per_class``. The pipeline's display (in a
# notebook, the last line of a cell) stays short: the classifier's parameters, not the
# model's layers.
llm.set_params(fewshotllmclassifier__label_scoring="full_label")
llm

# %%
# Fitted alone, on the training tweets, it scores the test tweets like any classifier.
llm.fit(X_train, y_train)
llm_accuracy = llm.score(X_test, y_test)
print(f"few-shot accuracy: {llm_accuracy:.3f} (chance: {1 / 7:.3f})")

# %%
# A TF-IDF model to compare with
# ------------------------------
#
# Character n-grams and a logistic regression, trained on all 60 training tweets.
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

tfidf = make_pipeline(
    TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
    LogisticRegression(C=10, max_iter=1000),
)
tfidf.fit(X_train, y_train)
print(f"TF-IDF accuracy: {tfidf.score(X_test, y_test):.3f}")

# %%
# Stacking the two
# ----------------
#
# :class:`~sklearn.ensemble.StackingClassifier` fits a logistic regression on the two
# models' class probabilities. To get probabilities for the training tweets from
# models that did not see them, it cross-validates each model on the training set
# (``cv=3``: three more fits of the few-shot classifier, which only pick examples,
# and one pass of it over the 60 training tweets).
#
# One thing to know: ``StackingClassifier`` encodes the classes as 0, 1, 2, ... before
# it fits its estimators, so the few-shot classifier inside it would write ``0``,
# ``1``, ... in the prompt and score those instead of the sector names. Give it the
# words with ``label_words``: the codes follow the sorted class names.
from sklearn.base import clone
from sklearn.ensemble import StackingClassifier
from sklearn.model_selection import StratifiedKFold

sectors = sorted(y_train.unique())
llm_for_stacking = clone(llm).set_params(fewshotllmclassifier__label_words=dict(enumerate(sectors)))
stack = StackingClassifier(
    estimators=[("llm", llm_for_stacking), ("tfidf", tfidf)],
    final_estimator=LogisticRegression(C=1, max_iter=1000),
    cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0),
    stack_method="predict_proba",
)
stack.fit(X_train, y_train)
stacked_llm = stack.named_estimators_["llm"][-1]
print(f"classes inside the stack: {stacked_llm.classes_}, label words: {stacked_llm.label_words_}")
stack

# %%
# Multiplying the two
# -------------------
#
# :class:`~skllm_fewshot.ProductOfExperts` needs no cross-validation and no
# label codes: it fits both models on the training tweets, with their own labels, and
# multiplies their class probabilities. A model that knows nothing about a tweet
# (probabilities close to uniform) leaves the other's ranking as it is. With one row
# per class :class:`~skllm_fewshot.FewShotLLMClassifierCV` falls back to such a
# product, with a union of the model's features and TF-IDF in place of TF-IDF alone
# (:doc:`/accuracy`).
from skllm_fewshot import ProductOfExperts

product = ProductOfExperts([("llm", llm), ("tfidf", tfidf)]).fit(X_train, y_train)
product

# %%
# Test accuracy of the four.
import matplotlib.pyplot as plt
import pandas as pd

accuracy = pd.Series(
    {
        "few-shot SmolLM2 (2 per class)": llm_accuracy,
        "TF-IDF + logistic regression": tfidf.score(X_test, y_test),
        "stacked": stack.score(X_test, y_test),
        "product of the two": product.score(X_test, y_test),
    }
)
fig, ax = plt.subplots(figsize=(6, 2.5))
accuracy.plot.barh(ax=ax)
ax.axvline(1 / 7, color="grey", linestyle=":", label="chance")
ax.set(xlabel=f"accuracy on {len(test)} test tweets", xlim=(0, 1))
ax.legend(loc="lower right")
fig.tight_layout()
accuracy.round(3)

# %%
# Whether stacking pays off depends on the data: the final regression learns how
# much to trust each model from their out-of-fold probabilities on the training
# tweets, 60 here, and it helps most when the two models are wrong on different
# texts. How much weight does it give each? It has one coefficient per (model,
# class) probability; their mean absolute value per model is a rough measure.
import numpy as np

coef = np.abs(stack.final_estimator_.coef_)
n_classes = len(stack.classes_)
weights = pd.Series({"llm": coef[:, :n_classes].mean(), "tfidf": coef[:, n_classes:].mean()})
best_single = accuracy.drop(["stacked", "product of the two"]).max()
verdict = "beats" if accuracy["stacked"] > best_single else "does not beat"
print(f"Here the stack {verdict} the better single model ({accuracy['stacked']:.3f} vs {best_single:.3f}).")
weights.round(3)
