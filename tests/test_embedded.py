"""Models by name: a GGUF file found in its package without importing it, chunks joined once and checked."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from skllm_fewshot import _embedded
from skllm_fewshot import _loading as loading
from skllm_fewshot._loading import (
    EMBEDDED_MODELS,
    ModelNotAvailableError,
    embedded_model,
    embedded_model_path,
    load_model,
)

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, bytes(range(255, -1, -1)) * 2, b"tail"]
FILE = "fake-model.gguf"


def _package(site: Path, name: str, files: dict[str, bytes], requires: list[str] = ()) -> None:
    folder = site / name
    (folder / "data").mkdir(parents=True)
    # Importing the package fails: the library must find its files without importing it.
    (folder / "__init__.py").write_text("raise ImportError('imported')\n")
    for rel, data in files.items():
        (folder / "data" / rel).write_bytes(data)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    reqs = "".join(f"Requires-Dist: {r}==1.0\n" for r in requires)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n{reqs}"
    )


@pytest.fixture
def chunked(tmp_path, monkeypatch):
    """A fake model shipped in three chunk packages with a checksum, registered by name."""
    site = tmp_path / "site"
    whole = b"".join(CHUNKS)
    sums = f"{hashlib.sha256(whole).hexdigest()}  {FILE}\n".encode()
    parts = [f"fake-model-gguf-part{i}" for i in (1, 2, 3)]
    # The part list is out of order in the metadata: the part number decides.
    _package(site, "fake_model_gguf", {"SHA256SUMS": sums}, requires=[parts[2], parts[0], parts[1]])
    for i, chunk in enumerate(CHUNKS):
        _package(site, f"fake_model_gguf_part{i + 1}", {f"{FILE}.part{i:02d}": chunk})
    monkeypatch.syspath_prepend(str(site))
    model = _embedded.EmbeddedModel(
        name="fake-model", package="fake_model_gguf", install="pip install fake-model-gguf",
        hub_id="example/fake-model", licence="none", aliases=("fake",),
    )  # fmt: skip
    monkeypatch.setitem(EMBEDDED_MODELS, model.name, model)
    monkeypatch.setenv("SKLLM_FEWSHOT_CACHE", str(tmp_path / "cache"))
    return site, whole, tmp_path / "cache" / _embedded.ASSEMBLED


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp")) if folder.exists() else []


def test_names_and_aliases_in_any_case():
    assert embedded_model("Gemma-3-270M") is EMBEDDED_MODELS["gemma-3-270m"]
    assert embedded_model(" smollm2 ") is EMBEDDED_MODELS["smollm2-135m"]
    assert embedded_model("google/gemma-3-270m") is None
    assert loading.DEFAULT_MODEL in EMBEDDED_MODELS
    with pytest.raises(ValueError, match="not an embedded model"):
        embedded_model_path("no-such-model")


def test_chunks_are_joined_once_in_order_and_checked(chunked):
    _, whole, folder = chunked
    path = embedded_model_path("FAKE")
    assert path == folder / FILE and path.read_bytes() == whole
    assert "fake_model_gguf" not in sys.modules and "fake_model_gguf_part1" not in sys.modules
    stamp = path.stat().st_mtime_ns
    assert embedded_model_path("fake-model") == path and path.stat().st_mtime_ns == stamp  # not joined again
    assert _leftovers(folder) == []


def test_a_name_resolves_to_the_joined_file_for_loading(chunked):
    _, _, folder = chunked
    assert loading._source_key("fake-model") == str(folder / FILE)


def test_cache_info_lists_the_joined_file_and_clear_removes_it(chunked):
    path = embedded_model_path("fake-model")
    assert loading.model_cache_info()["joined_files"] == [str(path)]
    loading.clear_model_cache(disk=True)
    assert not path.exists() and loading.model_cache_info()["joined_files"] == []


def test_a_wrong_checksum_leaves_nothing_behind(chunked):
    site, _, folder = chunked
    (site / "fake_model_gguf" / "data" / "SHA256SUMS").write_text(f"{'0' * 64}  {FILE}\n")
    with pytest.raises(ModelNotAvailableError, match="checksum.*--force-reinstall"):
        embedded_model_path("fake-model")
    assert not (folder / FILE).exists() and _leftovers(folder) == []


def test_a_truncated_chunk_is_caught(chunked):
    site, _, folder = chunked
    part = site / "fake_model_gguf_part2" / "data" / f"{FILE}.part01"
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(ModelNotAvailableError, match="truncated"):
        embedded_model_path("fake-model")
    assert not (folder / FILE).exists()


def test_a_short_joined_file_is_joined_again(chunked):
    _, whole, folder = chunked
    folder.mkdir(parents=True)
    (folder / FILE).write_bytes(whole[:100])  # as a copy cut short by hand would be
    assert embedded_model_path("fake-model").read_bytes() == whole


def test_a_missing_chunk_package_is_named(chunked):
    site, _, _ = chunked
    for f in (site / "fake_model_gguf_part3" / "data").iterdir():
        f.unlink()
    with pytest.raises(
        ModelNotAvailableError, match="fake-model-gguf-part3 is missing.*pip install fake-model-gguf"
    ):
        embedded_model_path("fake-model")


def test_with_the_disk_cache_off_the_file_is_joined_in_the_temp_folder(chunked, tmp_path, monkeypatch):
    monkeypatch.setenv("SKLLM_FEWSHOT_CACHE", "off")
    monkeypatch.setattr(_embedded.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    assert (
        embedded_model_path("fake-model") == tmp_path / "tmp" / "skllm-fewshot" / _embedded.ASSEMBLED / FILE
    )


def test_a_whole_file_in_the_package_is_used_as_it_is(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _package(site, "whole_model", {})
    (site / "whole_model" / "model.Q4.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(site))
    model = _embedded.EmbeddedModel(
        "whole", "whole_model", "pip install whole-model", "example/whole", "none"
    )
    monkeypatch.setitem(EMBEDDED_MODELS, "whole", model)
    assert embedded_model_path("whole") == site / "whole_model" / "model.Q4.gguf"


def test_without_the_package_a_name_is_its_hub_id_and_a_failed_load_says_what_to_install(monkeypatch):
    model = _embedded.EmbeddedModel(
        "absent", "no_such_package_xyz", "pip install absent-gguf", "example/absent", "-"
    )
    monkeypatch.setitem(EMBEDDED_MODELS, "absent", model)
    assert loading._source_key("absent") == "example/absent"
    with pytest.raises(ModelNotAvailableError, match="is not installed.*pip install absent-gguf"):
        embedded_model_path("absent")

    def offline(cls, source, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(loading, "_from_pretrained", offline)
    with pytest.raises(ModelNotAvailableError, match=r"example/absent.*pip install absent-gguf"):
        load_model("absent", disk_cache=False)
