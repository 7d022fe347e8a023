"""
===================================================
Fine-tuning: a LoRA adapter trained on every row
===================================================

The other heads read a frozen model. ``head="lora"`` (or
:class:`~skllm_fewshot.LoRAFineTuning` with its parameters) trains a small
LoRA adapter with the loss of prompt-based fine-tuning: after the same prompt and
demonstrations, the cross-entropy of the softmax over the label words. The base
weights are shared and never change; the adapter (a few MiB) is what a pickle keeps.
It needs ``peft`` (``pip install 'skllm-fewshot[finetune]'``).

Training costs a forward and a backward pass per step of 8 rows: on two CPU cores
with the embedded 135M model, about a second or two per step. This example keeps it
short: 3 sectors of the shipped tweets, 6 rows each, 15 steps (about 7 epochs).
"""

# %%
# The data
# --------
from sklearn.model_selection import train_test_split

from skllm_fewshot.datasets import load_example_tweets

tweets, instruction = load_example_tweets()
tweets = tweets[tweets["SECTOR"].isin(["bancos", "bebidas", "deportes"])]
train, test = train_test_split(tweets, train_size=18, stratify=tweets["SECTOR"], random_state=0)
print(f"{len(train)} training tweets, {len(test)} test tweets")

# %%
# The prompt, a frozen head, and the fine-tuned adapter
# -----------------------------------------------------
#
# All three read the same prompt (one example per class); the head and the
# adapter learn from all 18 rows.
import time

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skllm_fewshot import FewShotLLMClassifier, LoRAFineTuning

common = dict(
    instruction="Clasificar los tweets por sector: {labels}.",
    text_name="Tweet",
    label_name="Categoría",
    random_state=0,
)
models = {
    "prompt": FewShotLLMClassifier(**common),
    "frozen head": FewShotLLMClassifier(
        head=make_pipeline(StandardScaler(), LogisticRegression(C=0.1)), **common
    ),
    "LoRA fine-tuned": FewShotLLMClassifier(head=LoRAFineTuning(max_steps=15), calibrate=False, **common),
}
scores = {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(train["TEXTO"], train["SECTOR"])
    scores[name] = model.score(test["TEXTO"], test["SECTOR"])
    print(f"{name}: accuracy {scores[name]:.3f} (fit {time.perf_counter() - start:.0f} s)")

# %%
# Do not expect the adapter to win here: 18 short Spanish tweets of a task the
# small model barely knows, and 15 steps, are too little for it (in this example's
# runs it was at or below the prompt, while the frozen head led). Fine-tuning pays
# where the model half-knows the task and its label words are plain: on SST-2 with 8
# reviews per class the adapter reached 0.85 against 0.75 for the frozen pick, over 5
# draws (``docs/accuracy.md``). ``FewShotLLMClassifierCV`` tries it from 8 rows per
# class for up to 4 classes, and keeps it only where it wins the cross-validation.

# %%
# The training loss
# -----------------
#
# ``head_.loss_curve_`` holds each step's loss; ``head_.n_steps_`` the steps run
# (``max_steps="auto"``: 4 epochs, 20 to 200 steps).
import matplotlib.pyplot as plt

tuned = models["LoRA fine-tuned"]
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
left.plot(tuned.head_.loss_curve_)
left.set_xlabel("step")
left.set_ylabel("training loss")
right.barh(list(scores), list(scores.values()))
right.set_xlabel(f"accuracy on {len(test)} test tweets")
fig.tight_layout()

# %%
# The adapter travels in the pickle, the base weights do not
# ----------------------------------------------------------
import pickle

blob = pickle.dumps(tuned)
adapter = sum(t.numel() * t.element_size() for t in tuned.head_.adapter_.values())
print(f"pickle: {len(blob) / 2**20:.1f} MiB, of which the adapter {adapter / 2**20:.1f} MiB")
again = pickle.loads(blob)
print("same predictions after loading:", (again.predict(test["TEXTO"]) == tuned.predict(test["TEXTO"])).all())
