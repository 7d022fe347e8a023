"""The converted-model cache on disk, on a tiny random Llama written as a GGUF file.

A ``.gguf`` model is converted once (safetensors, config and tokenizer files) and read
back from the copy by every later load: bit for bit the same model, one good entry
when processes convert at once, a corrupt entry rebuilt, an unwritable cache a
warning and never an error, a changed file a new entry, and nothing printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SENTIMENT_X, SENTIMENT_Y, WORDS, write_tiny_gguf

from skllm_fewshot import FewShotLLMClassifier, clear_model_cache, model_cache_info
from skllm_fewshot.__main__ import main
from skllm_fewshot._gguf_cache import ENV_VAR, ConvertedModelCache, ModelCacheWarning, resolve_cache_dir
from skllm_fewshot._loading import load_model

TEXT = "Text:\n'I love my new chess board!'\nLabel:\npositive It's 😻"


def load(gguf, cache, **kwargs):
    """A fresh load through ``cache`` (nothing from the process-wide cache)."""
    clear_model_cache()
    return load_model(gguf, disk_cache=cache, device="cpu", dtype="float32", **kwargs)


def logits(loaded):
    ids = loaded.tokenizer(TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return ids, loaded.model(ids).logits


def entries(cache):
    return model_cache_info(disk_cache=cache)["disk_entries"]


TOKENIZER_TEXTS = ["good film", "  two  spaces\n\nand lines\t", "'ll <s> x </s>", "¡Qué bien! 🚀", ""]


def assert_same_model(a, b):
    ids_a, logits_a = logits(a)
    ids_b, logits_b = logits(b)
    assert torch.equal(ids_a, ids_b)
    assert torch.equal(logits_a, logits_b)  # max diff 0
    # The converted entry's tokenizer is read from its tokenizer.json: the same tokens and specials.
    for special in (True, False):
        assert (
            a.tokenizer(TOKENIZER_TEXTS, add_special_tokens=special)["input_ids"]
            == b.tokenizer(TOKENIZER_TEXTS, add_special_tokens=special)["input_ids"]
        )
    # A set: transformers < 5.6 lists them in another order after the round trip.
    assert set(a.tokenizer.all_special_tokens) == set(b.tokenizer.all_special_tokens)
    assert (a.tokenizer.bos_token_id, a.tokenizer.eos_token_id, a.tokenizer.pad_token_id) == (
        b.tokenizer.bos_token_id,
        b.tokenizer.eos_token_id,
        b.tokenizer.pad_token_id,
    )
    assert a.tokenizer.chat_template == b.tokenizer.chat_template


@pytest.fixture(autouse=True)
def _forget_models():
    yield
    clear_model_cache()  # the tiny GGUF models loaded here are no use to other modules


def cache_warnings(record):
    return [w for w in record if issubclass(w.category, ModelCacheWarning)]


def test_converted_once_then_read_back_bit_for_bit(tiny_gguf, tmp_path):
    cache = tmp_path / "cache"
    direct = load(tiny_gguf, False)
    converted = load(tiny_gguf, cache)
    (entry,) = entries(cache)
    assert (
        entry["complete"] and entry["dtype"] == "float32" and entry["gguf"] == str(Path(tiny_gguf).resolve())
    )
    again = load(tiny_gguf, cache)
    # The second load read the converted copy, not the GGUF file.
    assert Path(again.model.name_or_path) == Path(entry["path"])
    assert len(entries(cache)) == 1
    assert_same_model(direct, converted)
    assert_same_model(direct, again)
    assert again.source == direct.source == str(Path(tiny_gguf).resolve())


@pytest.mark.parametrize("scoring", ["full_label", "first_token"])
def test_predictions_with_the_cache_equal_those_without(tiny_gguf, tmp_path, monkeypatch, scoring):
    def proba(cache_setting):
        monkeypatch.setenv(ENV_VAR, cache_setting)
        clear_model_cache()
        clf = FewShotLLMClassifier(
            str(tiny_gguf),
            label_words=WORDS,
            device="cpu",
            dtype="float32",
            label_scoring=scoring,
            random_state=0,
        )
        return clf.fit(SENTIMENT_X, SENTIMENT_Y).predict_proba(SENTIMENT_X)

    without = proba("off")
    assert entries(tmp_path) == []
    converting = proba(str(tmp_path))
    cached = proba(str(tmp_path))
    assert len(entries(tmp_path)) == 1
    np.testing.assert_array_equal(converting, without)
    np.testing.assert_array_equal(cached, without)


_LOAD_IN_A_NEW_PROCESS = """
import sys
from skllm_fewshot._loading import load_model
load_model(sys.argv[1], disk_cache=sys.argv[2], device="cpu", dtype="float32")
"""


def _python(*args, preexec_fn=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=preexec_fn,
    )  # fmt: skip


def test_two_processes_converting_at_once_leave_one_good_entry_and_print_nothing(tiny_gguf, tmp_path):
    cache = tmp_path / "cache"
    procs = [_python(_LOAD_IN_A_NEW_PROCESS, str(tiny_gguf), str(cache)) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert out == "" and err == ""  # quiet: no progress bar, no log line, no warning
    (entry,) = entries(cache)
    assert entry["complete"]
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == [entry["name"]]  # no temporary left
    assert_same_model(load(tiny_gguf, False), load(tiny_gguf, cache))


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_a_corrupt_entry_is_rebuilt_with_one_warning(tiny_gguf, tmp_path, damage):
    cache = tmp_path / "cache"
    load(tiny_gguf, cache)
    (entry,) = entries(cache)
    weights = Path(entry["path"]) / "model.safetensors"
    data = weights.read_bytes()
    # Truncated: the size no longer matches the manifest. Garbled: the same size, an unreadable header.
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"\xff" * len(data))
    assert entries(cache)[0]["complete"] is (damage == "garbled")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        rebuilt = load(tiny_gguf, cache)
    (warning,) = cache_warnings(record)
    assert "corrupt" in str(warning.message) and "converting it again" in str(warning.message)
    (entry,) = entries(cache)
    assert entry["complete"]
    assert_same_model(rebuilt, load(tiny_gguf, False))
    with warnings.catch_warnings(record=True) as record:  # the rebuilt entry reads without a word
        warnings.simplefilter("always")
        again = load(tiny_gguf, cache)
    assert cache_warnings(record) == []
    assert Path(again.model.name_or_path) == Path(entry["path"])


def test_a_cache_folder_that_cannot_be_created_falls_back_with_one_warning(tiny_gguf, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        loaded = load(tiny_gguf, blocker / "cache")
    (warning,) = cache_warnings(record)
    assert "cannot be written" in str(warning.message) and "SKLLM_FEWSHOT_CACHE" in str(warning.message)
    assert_same_model(loaded, load(tiny_gguf, False))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder_falls_back_with_one_warning(tiny_gguf, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            loaded = load(tiny_gguf, cache)
    finally:
        cache.chmod(0o755)
    assert len(cache_warnings(record)) == 1
    assert entries(cache) == []
    assert_same_model(loaded, load(tiny_gguf, False))


def _file_size_limit(limit: int):
    def apply():  # in the child: writes past `limit` bytes fail with EFBIG, as on a full disk
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(sys.platform != "linux", reason="a file size limit stands in for a full disk")
def test_a_full_disk_falls_back_with_one_warning_and_leaves_nothing(tiny_gguf, tmp_path):
    cache = tmp_path / "cache"
    # The weights (about 170 kB) do not fit under the limit; the small files do.
    proc = _python(_LOAD_IN_A_NEW_PROCESS, str(tiny_gguf), str(cache), preexec_fn=_file_size_limit(64 * 1024))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert err.count("ModelCacheWarning") == 1 and "could not be written" in err
    assert entries(cache) == []
    assert [p for p in cache.iterdir() if p.is_dir()] == []  # the partial copy was removed


def test_a_changed_gguf_file_misses_the_cache(tmp_path):
    gguf, cache = tmp_path / "model.gguf", tmp_path / "cache"
    write_tiny_gguf(gguf, seed=0)
    first = load(gguf, cache)
    size = gguf.stat().st_size
    write_tiny_gguf(gguf, seed=1)  # the same size, other weights
    assert gguf.stat().st_size == size
    second = load(gguf, cache)
    assert len(entries(cache)) == 2
    assert not torch.equal(logits(first)[1], logits(second)[1])
    assert_same_model(second, load(gguf, False))


def test_the_file_hash_is_remembered_by_size_and_time(tiny_gguf, tmp_path):
    import hashlib

    cache = ConvertedModelCache(tmp_path)
    digest = hashlib.sha256(Path(tiny_gguf).read_bytes()).hexdigest()
    assert cache.file_hash(Path(tiny_gguf)) == digest
    assert digest in (tmp_path / "gguf-hashes.json").read_text()
    assert cache.file_hash(Path(tiny_gguf)) == digest


def test_loading_prints_nothing_unless_verbose(tiny_gguf, tmp_path, capfd):
    cache = tmp_path / "cache"
    load(tiny_gguf, cache)  # converts
    load(tiny_gguf, cache)  # reads the copy
    load(tiny_gguf, False)  # reads the GGUF file
    assert capfd.readouterr() == ("", "")
    load(tiny_gguf, tmp_path / "other", verbose=True)
    assert "Converting and de-quantizing GGUF tensors" in capfd.readouterr().err


def test_cache_folder_from_parameter_environment_or_default(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_cache_dir().name == "models"
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_cache_dir() == tmp_path
    assert resolve_cache_dir(tmp_path / "x") == tmp_path / "x"
    assert resolve_cache_dir(False) is None
    for off in ("off", "0", "false", "OFF"):
        monkeypatch.setenv(ENV_VAR, off)
        assert resolve_cache_dir() is None
    with pytest.raises(TypeError, match="disk_cache"):
        resolve_cache_dir(3)


def test_info_and_clear_show_and_remove_the_disk_cache(tiny_gguf, tmp_path, capsys):
    cache = tmp_path / "cache"
    load(tiny_gguf, cache)
    info = model_cache_info(disk_cache=cache)
    assert info["disk_dir"] == str(cache) and len(info["disk_entries"]) == 1
    assert main(["cache", "info", "--dir", str(cache)]) == 0
    shown = capsys.readouterr().out
    assert str(cache) in shown and info["disk_entries"][0]["name"] in shown
    clear_model_cache()  # memory only
    assert len(entries(cache)) == 1
    assert main(["cache", "clear", "--dir", str(cache)]) == 0
    assert "removed 1" in capsys.readouterr().out
    assert entries(cache) == [] and not any(cache.iterdir())
    load(tiny_gguf, cache)
    clear_model_cache(disk=True, disk_cache=cache)
    assert entries(cache) == [] and model_cache_info(disk_cache=cache)["cached"] == 0
