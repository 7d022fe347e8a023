"""Prompt-based fine-tuning: a LoRA adapter trained on the label words after the prompt.

Every other head reads a frozen model. :class:`LoRAFineTuning` (``head=`` of
:class:`~skllm_fewshot.FewShotLLMClassifier`, or ``head="lora"``) trains low-rank
adapters (LoRA, Hu et al. 2022, through ``peft``) with the loss of prompt-based
fine-tuning (LM-BFF, Gao et al. 2021): the cross-entropy of the softmax over the
label words' log-likelihoods, after the same prompt and demonstrations the engine
scores. With ``label_scoring="full_label"`` every token of a word counts, so words of
several tokens train as they are scored. Multi-label prompts train each label's
``"yes"`` against its ``"no"``.

The base weights are never changed. The adapter lives in a structural copy of the
model whose modules share every base parameter (:func:`shared_copy`): the model in
the process-wide cache, and every other estimator using it, see no adapter, and the
copy has its own entries in the engine's feature cache. Training runs through
:meth:`~skllm_fewshot._scoring.PrefixCachedScorer.trainable_scores`: the prompt's
prefix once per step, shared by the batch. A pickle keeps the adapter's weights
(a few MiB), never the base weights.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight

from ._engine import PromptScorer
from ._heads import FeatureHead
from ._loading import LoadedModel
from ._multilabel import fixed_thresholds
from ._scoring import PrefixCachedScorer
from ._validation import HasMethods, Interval, StrOptions, validate_params

__all__ = ["FineTunedHead", "LoRAFineTuning", "auto_steps", "shared_copy"]


# The most steps of max_steps="auto": 1,600 rows seen at the default batch of 8, so
# that a fit on any number of rows takes minutes on a CPU, not half an hour (at 512
# rows per class on SST-2 it reached the accuracy given in docs/choosing.md).
MAX_AUTO_STEPS = 200


def auto_steps(n_rows: int, batch_size: int) -> int:
    """Optimizer steps of ``max_steps="auto"``: 4 epochs, at least 20 and at most 200 steps.

    Measured on SST-2 (``docs/accuracy_log.md``): with 16 rows, 20 steps (10 epochs)
    beat 40, which drive the training loss to 0.002 and overfit; with more rows,
    4 epochs, up to :data:`MAX_AUTO_STEPS`.

    Parameters
    ----------
    n_rows : int
        Labelled rows trained on.
    batch_size : int
        Rows per step.

    Returns
    -------
    int

    Examples
    --------
    >>> from skllm_fewshot._finetuning import auto_steps
    >>> auto_steps(16, 8), auto_steps(64, 8), auto_steps(10_000, 8)
    (20, 32, 200)
    """
    return int(min(MAX_AUTO_STEPS, max(20, 4 * math.ceil(n_rows / batch_size))))


def shared_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model``'s modules that shares every parameter and buffer.

    Adapters injected into the copy change the copy's modules only; the tensors,
    and so the memory, stay those of ``model``.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> from skllm_fewshot._finetuning import shared_copy
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> twin = shared_copy(net)
    >>> twin is net, twin[0] is net[0], twin[0].weight is net[0].weight
    (False, False, True)
    """
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo)


def _peft() -> Any:
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError(
            "Fine-tuning (head='lora' or LoRAFineTuning) needs peft: pip install 'skllm-fewshot[finetune]'."
        ) from exc
    return peft


class LoRAFineTuning(BaseEstimator):
    """Prompt-based LoRA fine-tuning, as the ``head`` of a few-shot classifier.

    ``FewShotLLMClassifier(head=LoRAFineTuning())`` (or ``head="lora"``) trains a
    LoRA adapter on every labelled row: the loss is the cross-entropy of the label
    words' softmax after the prompt, the demonstrations fixed. Predictions are that
    softmax under the adapted model (or, with ``probe``, a classifier on its
    features). Parameters are searched like any head's: ``head__learning_rate``.

    Parameters
    ----------
    rank : int, default=8
        The adapters' rank.
    alpha : float, default=16
        LoRA's scale numerator (the update is scaled by ``alpha / rank``).
    target_modules : None or list of str, default=None
        The linear layers adapted; None: ``peft``'s defaults for the model's family
        (the attention's query and value projections for Llama-like models).
    learning_rate : float, default=1e-3
        AdamW's, decayed linearly to zero.
    max_steps : int or "auto", default="auto"
        Optimizer steps; ``"auto"``: :func:`auto_steps` (4 epochs, 20 to 200 steps).
    batch_size : int, default=8
        Rows per step.
    class_weight : None or "balanced", default=None
        ``"balanced"`` weighs each class's loss by the inverse of its frequency
        (scikit-learn's ``compute_class_weight``), so that the adapter predicts as if
        the classes were equally frequent, as a ``LogisticRegression`` with
        ``class_weight="balanced"`` does: on SST-2 with 4 negative and 16 positive
        reviews, 0.857 on balanced test rows against 0.787 unweighted (multiplying the
        training frequencies back at predict, as first built, scored 0.677).
    label_smoothing : float, default=0.1
        The targets' smoothing (each wrong class gets ``label_smoothing`` divided
        among the classes): a few rows drive an unsmoothed loss to zero, and the
        adapter to probabilities of 0.999 that cost dearly when wrong, in a
        cross-validated log-loss as on new texts.
    probe : None or classifier, default=None
        Fine-tune, then fit this classifier on the adapted model's features (the
        classifier's ``head_layers`` and ``head_features``).

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> from skllm_fewshot import LoRAFineTuning
    >>> clf = FewShotLLMClassifier(head=LoRAFineTuning(learning_rate=5e-4))
    >>> clf.get_params()["head__learning_rate"]
    0.0005
    """

    _parameter_constraints: dict = {
        "rank": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "target_modules": [None, list, tuple],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_steps": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [None, StrOptions({"balanced"})],
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
        "probe": [None, HasMethods(["fit", "predict_proba"])],
    }

    def __init__(
        self,
        rank: int = 8,
        alpha: float = 16,
        target_modules: Sequence[str] | None = None,
        learning_rate: float = 1e-3,
        max_steps: int | str = "auto",
        batch_size: int = 8,
        class_weight: str | None = None,
        label_smoothing: float = 0.1,
        probe: Any = None,
    ) -> None:
        self.rank = rank
        self.alpha = alpha
        self.target_modules = target_modules
        self.learning_rate = learning_rate
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.probe = probe

    def build_head(self, layers: Any, kind: str, threshold: Any, random_state: Any) -> FineTunedHead:
        """The head that trains and applies the adapter (called by the classifier's fit).

        Parameters
        ----------
        layers, kind : as :class:`~skllm_fewshot._heads.FeatureHead`'s
            The features ``probe`` reads.
        threshold : "auto" or float
            Multi-label: the probability of ``"yes"`` that predicts a label.
        random_state : None, int or RandomState
            The classifier's.

        Returns
        -------
        FineTunedHead
        """
        return FineTunedHead(self, layers, kind, threshold, random_state)

    def check(self) -> None:
        """Raise a ValueError naming the parameter that is not valid.

        Raises
        ------
        ValueError
        """
        validate_params(self)


class FineTunedHead:
    """The head that :class:`LoRAFineTuning` builds: trains, keeps and applies the adapter.

    Parameters
    ----------
    tuning : LoRAFineTuning
    layers, kind : as :class:`~skllm_fewshot._heads.FeatureHead`'s, for ``probe`` and
        :meth:`features`.
    threshold : "auto" or float
        Multi-label: the probability of ``"yes"`` above which a label is predicted
        (``"auto"``: 0.5; rows the adapter was trained on are too sure to tune on).
    random_state : None, int or RandomState
        Seeds the adapters' initialisation and the order of the rows.
    """

    def __init__(
        self,
        tuning: LoRAFineTuning,
        layers: Any = "auto",
        kind: str = "auto",
        threshold: Any = "auto",
        random_state: Any = None,
    ) -> None:
        self.tuning = tuning
        self.layers = layers
        self.kind = kind
        self.threshold = threshold
        self.random_state = random_state

    # -- the adapted model ------------------------------------------------------------

    def _adapted(
        self, base: torch.nn.Module, state: dict[str, torch.Tensor] | None = None
    ) -> torch.nn.Module:
        peft = _peft()
        model = shared_copy(base)
        # peft freezes the base parameters, which are the shared model's: their flags are put back.
        flags = [(p, p.requires_grad) for p in base.parameters()]
        try:
            peft.inject_adapter_in_model(self.config_, model)
        except ValueError as exc:
            raise ValueError(
                f"Cannot place LoRA adapters in this {type(base).__name__}: {exc} Name its linear layers with "
                "LoRAFineTuning(target_modules=[...]), e.g. ['q_proj', 'v_proj']."
            ) from exc
        finally:
            for param, flag in flags:
                param.requires_grad_(flag)
        # Adapters train in float32 whatever the base dtype (bfloat16 on a GPU): AdamW's
        # small updates vanish in bfloat16. peft casts activations to and fro.
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.data = param.data.float()
        if state is not None:
            peft.set_peft_model_state_dict(model, state)
        return model.eval()

    def _engine(self, engine: PromptScorer) -> PromptScorer:
        """``engine``'s prompt scored by the adapted model (built once per prompt)."""
        models = self.__dict__.setdefault("_models", {})
        base = engine.loaded.model
        if id(base) not in models:
            models.clear()  # one base model at a time: the one the estimator loads
            models[id(base)] = self._adapted(base, self.adapter_)
        engines = self.__dict__.setdefault("_engines", {})
        key = (id(base), engine.prompt_text, engine.label_scoring)
        if key not in engines:
            loaded = LoadedModel(models[id(base)], engine.loaded.tokenizer, engine.loaded.source)
            engines[key] = PromptScorer(
                loaded,
                engine.prompt,
                label_scoring=engine.label_scoring,
                classes=engine.classes,
                layout=engine.scorer.layout,
            )
        adapted = engines[key]
        adapted.batch_size, adapted.verbose = engine.batch_size, engine.verbose
        return adapted

    def __getstate__(self) -> dict:
        # The adapted copy holds the base weights; the adapter's own are in adapter_.
        return {k: v for k, v in self.__dict__.items() if k not in ("_models", "_engines")}

    # -- fit ----------------------------------------------------------------------------

    def fit(self, engine: PromptScorer, texts: Sequence[str], y: np.ndarray) -> FineTunedHead:
        tuning = self.tuning
        tuning.check()
        peft = _peft()
        rng = check_random_state(self.random_state)
        multi = engine.prompt.multi_label
        if multi:
            targets = torch.as_tensor(np.asarray(y, dtype=np.float32))
            self.class_weight_ = None
        else:
            index = {c: i for i, c in enumerate(engine.classes)}
            codes = np.array([index[c] for c in y])
            targets = torch.as_tensor(codes)
            self.class_weight_ = None
            if tuning.class_weight == "balanced":
                self.class_weight_ = compute_class_weight(
                    "balanced", classes=np.arange(len(engine.classes)), y=codes
                )
        self.config_ = peft.LoraConfig(
            r=int(tuning.rank), lora_alpha=float(tuning.alpha), lora_dropout=0.0,
            target_modules=None if tuning.target_modules is None else list(tuning.target_modules),
        )  # fmt: skip
        base = engine.loaded.model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.randint(2**31 - 1)))
            model = self._adapted(base)
        trained = [p for n, p in model.named_parameters() if "lora_" in n]
        for p in trained:
            p.requires_grad_(True)
        scorer = PrefixCachedScorer(
            model, engine.scorer.prefix_ids, engine.label_token_ids, pad_id=engine.scorer.pad_id,
            layout=engine.scorer.layout,
        )  # fmt: skip
        ids = engine.encode(texts)
        n, batch = len(ids), int(tuning.batch_size)
        steps = auto_steps(n, batch) if tuning.max_steps == "auto" else int(tuning.max_steps)
        smoothing = float(tuning.label_smoothing)
        weight = None
        if self.class_weight_ is not None:
            weight = torch.as_tensor(self.class_weight_, dtype=torch.float32, device=scorer.device)
        optimizer = torch.optim.AdamW(trained, lr=float(tuning.learning_rate), weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
        order: list[int] = []
        self.loss_curve_ = []
        with torch.enable_grad():
            for _ in range(steps):
                if len(order) < min(batch, n):
                    order += list(rng.permutation(n))
                rows, order = order[: min(batch, n)], order[min(batch, n) :]
                scores = scorer.trainable_scores([ids[i] for i in rows])
                target = targets[rows].to(scores.device)
                if multi:
                    # Each label's "yes" against its "no", laid out yes, no, yes, no, ...
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        scores[:, 0::2] - scores[:, 1::2], target * (1 - smoothing) + smoothing / 2
                    )
                else:
                    loss = torch.nn.functional.cross_entropy(
                        scores, target, weight=weight, label_smoothing=smoothing
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward(inputs=trained)
                optimizer.step()
                schedule.step()
                self.loss_curve_.append(float(loss.detach()))
        self.n_steps_ = steps
        self.adapter_ = {
            k: v.detach().cpu().clone() for k, v in peft.get_peft_model_state_dict(model).items()
        }
        for p in trained:
            p.requires_grad_(False)
        # The trained copy serves the predictions: no second injection.
        self.__dict__["_models"] = {id(base): model}
        self.__dict__["_engines"] = {}
        if multi:
            self.thresholds_ = fixed_thresholds(self.threshold, targets.shape[1])
        self.probe_ = None
        if tuning.probe is not None:
            self.probe_ = FeatureHead(tuning.probe, self.layers, self.kind).fit(
                self._engine(engine), texts, y
            )
        return self

    # -- predict --------------------------------------------------------------------------

    def features(
        self, engine: PromptScorer, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        """The adapted model's features of ``texts`` (``layers`` and ``kind``)."""
        head = self.probe_ if self.probe_ is not None else FeatureHead(None, self.layers, self.kind)
        return head.features(self._engine(engine), texts, truncated)

    def predict_proba(
        self, engine: PromptScorer, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray:
        adapted = self._engine(engine)
        if self.probe_ is not None:
            return self.probe_.predict_proba(adapted, texts, truncated)
        if engine.prompt.multi_label:
            return adapted.label_proba(texts, truncated=truncated)
        return adapted.proba(texts, truncated=truncated)
