"""Guards on the internals of other libraries that the engine reaches into.

Each test names what the library relies on and where, so that a release of
transformers or scikit-learn that changes it fails here with a clear message rather
than somewhere deep in a fit.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
import transformers
from conftest import build_tiny_model

from skllm_fewshot._attention import register as register_block_attention

VERSIONS = f"transformers {transformers.__version__}"


def _importable(module: str, name: str, used_in: str) -> None:
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{VERSIONS}: {module}.{name} is gone ({exc}); skllm_fewshot/{used_in} uses it.")


def test_attention_registry():
    # _attention.py registers the packed queries' block attention under its own name.
    _importable("transformers", "AttentionInterface", "_attention.py (register)")
    _importable("transformers", "AttentionMaskInterface", "_attention.py (register)")
    _importable("transformers.masking_utils", "sdpa_mask", "_attention.py (register)")
    _importable("transformers.integrations.sdpa_attention", "sdpa_attention_forward", "_attention.py")


def test_attention_implementation_is_read_and_switched():
    # _loading._use_block_attention reads config._attn_implementation and calls
    # set_attn_implementation; _attention.is_block_attention reads it back.
    model = build_tiny_model()
    assert isinstance(getattr(model.config, "_attn_implementation", None), str), (
        f"{VERSIONS}: config._attn_implementation is no longer a str; _loading._use_block_attention reads it."
    )
    assert getattr(model, "_supports_attention_backend", False), (
        f"{VERSIONS}: Llama no longer declares _supports_attention_backend; _loading._use_block_attention checks it."
    )
    assert hasattr(model, "set_attn_implementation"), (
        f"{VERSIONS}: set_attn_implementation is gone; _loading._use_block_attention calls it."
    )
    model.set_attn_implementation(register_block_attention())
    assert model.config._attn_implementation == register_block_attention()


def test_the_cache_argument_has_a_known_name():
    # _scoring._forward_kwargs passes the prefix cache as "cache" (transformers 5.x) or
    # "past_key_values" (earlier), and asks for logits_to_keep.
    params = inspect.signature(build_tiny_model().forward).parameters
    assert "cache" in params or "past_key_values" in params, (
        f"{VERSIONS}: the model's forward takes neither 'cache' nor 'past_key_values' "
        f"({list(params)}); _scoring._forward_kwargs must learn the new name."
    )
    assert "logits_to_keep" in params, f"{VERSIONS}: forward lost logits_to_keep; _scoring uses it."


def test_a_model_read_from_gguf_saves_once_its_quantizer_is_dropped(tiny_gguf, tmp_path):
    # _loading._save_converted sets hf_quantizer = None so that save_pretrained writes a
    # model read from GGUF (which transformers otherwise calls "not serializable").
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from skllm_fewshot._loading import _save_converted

    lm = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    tok = AutoTokenizer.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    try:
        _save_converted((lm, tok), tmp_path)
    except Exception as exc:  # the message says what to fix
        pytest.fail(f"{VERSIONS}: a model read from GGUF no longer saves after hf_quantizer = None: {exc!r}")
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()


def test_quiet_loading_finds_the_gguf_progress_bar():
    # _loading.quiet_loading silences the GGUF reader's tqdm by replacing the module's name.
    _importable("transformers.modeling_gguf_pytorch_utils", "tqdm", "_loading.py (quiet_loading)")


def test_scikit_learn_parameter_validation():
    # _validation.py checks every estimator's parameters with scikit-learn's own
    # (private) parameter validation.
    for name in ("HasMethods", "Hidden", "Interval", "StrOptions", "validate_parameter_constraints"):
        _importable("sklearn.utils._param_validation", name, "_validation.py")
