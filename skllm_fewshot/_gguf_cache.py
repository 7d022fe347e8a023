"""The converted-model cache on disk: a GGUF file de-quantized once, read back in a second.

transformers reads a ``.gguf`` file by parsing its metadata and de-quantizing every
tensor in Python, and rebuilds the tokenizer from the metadata: 19-34 s for the
embedded SmolLM2-135M on two cores, in every new process. The same weights written as
safetensors, with the config and tokenizer files beside them, load in about half a
second, bit for bit the same. This module keeps those folders.

- **Where**: ``load_model(disk_cache=...)``, else the environment variable
  ``SKLLM_FEWSHOT_CACHE`` (a folder, or ``off`` to switch the cache off), else the
  user's cache directory (``platformdirs``: ``~/.cache/skllm-fewshot/models`` on Linux).
- **Key**: the GGUF file's content hash (computed once per file size and modification
  time, and remembered in ``gguf-hashes.json``), the dtype and the transformers
  version: a changed file, dtype or version makes a new entry.
- **Safe**: an entry is written to a temporary folder and renamed into place under a
  file lock, so that processes converting at once (Dask workers, ``n_jobs``) leave one
  good entry; an entry whose files do not match its manifest, or that fails to load, is
  rebuilt with one warning; a cache that cannot be written (read-only, full) falls back
  to the GGUF with one warning, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ._embedded import ASSEMBLED

__all__ = ["ModelCacheWarning", "ConvertedModelCache", "default_cache_dir", "resolve_cache_dir"]

logger = logging.getLogger(__name__)

ENV_VAR = "SKLLM_FEWSHOT_CACHE"
_OFF = {"0", "off", "false", "no", "none"}
MANIFEST = "skllm-fewshot-entry.json"
HASHES = "gguf-hashes.json"
_TMP_PREFIX = ".tmp-"
# A converted entry of SmolLM2 is written in about a second; one that takes minutes is
# a process that died holding the lock (filelock's locks are released by the OS then).
LOCK_TIMEOUT_S = 900

T = TypeVar("T")


class ModelCacheWarning(UserWarning):
    """The converted-model cache could not be used; the model was loaded without it."""


def default_cache_dir() -> Path:
    """The folder the converted models go to when neither a parameter nor the environment says.

    Returns
    -------
    pathlib.Path
        ``models`` in the user's cache directory for ``skllm-fewshot``, as
        ``platformdirs`` places it (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux).

    Examples
    --------
    >>> from skllm_fewshot._gguf_cache import default_cache_dir
    >>> default_cache_dir().name
    'models'
    """
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("skllm-fewshot", appauthor=False)) / "models"


def resolve_cache_dir(disk_cache: bool | str | os.PathLike | None = None) -> Path | None:
    """Where converted models are kept, or ``None`` when the disk cache is off.

    Parameters
    ----------
    disk_cache : bool, str, path or None, default=None
        ``None`` or ``True``: the environment variable ``SKLLM_FEWSHOT_CACHE`` (a
        folder, or ``off``/``0``/``false`` for no cache), else :func:`default_cache_dir`;
        ``False``: no cache; a folder: that folder.

    Returns
    -------
    pathlib.Path or None

    Examples
    --------
    >>> from skllm_fewshot._gguf_cache import resolve_cache_dir
    >>> resolve_cache_dir(False) is None
    True
    >>> resolve_cache_dir("/tmp/converted").as_posix()
    '/tmp/converted'
    """
    if disk_cache is False:
        return None
    if disk_cache is None or disk_cache is True:
        env = os.environ.get(ENV_VAR, "").strip()
        if env.lower() in _OFF:
            return None
        return Path(env).expanduser() if env else default_cache_dir()
    if isinstance(disk_cache, (str, os.PathLike)):
        return Path(disk_cache).expanduser()
    raise TypeError(f"disk_cache must be None, a bool or a folder; got {type(disk_cache).__name__}.")


def _warn(message: str) -> None:
    # stacklevel 4: through ConvertedModelCache.load and load_model to the user's call.
    warnings.warn(message, ModelCacheWarning, stacklevel=4)


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX, suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())


class ConvertedModelCache:
    """Converted copies of GGUF models in one folder, one entry per file, dtype and version.

    Parameters
    ----------
    root : path
        The cache folder (created on first write).

    Examples
    --------
    >>> import tempfile
    >>> from skllm_fewshot._gguf_cache import ConvertedModelCache
    >>> cache = ConvertedModelCache(tempfile.mkdtemp())
    >>> cache.entries()
    []
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # -- identity ------------------------------------------------------------------

    def file_hash(self, gguf: Path) -> str:
        """The SHA-256 of ``gguf``, read once per (path, size, modification time) and remembered.

        Parameters
        ----------
        gguf : pathlib.Path
            The GGUF file.

        Returns
        -------
        str
            The hexadecimal digest.
        """
        stat = gguf.stat()
        key = str(gguf.resolve())
        stamp = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        known = _read_json(self.root / HASHES)
        known = known if isinstance(known, dict) else {}
        seen = known.get(key)
        if isinstance(seen, dict) and {k: seen.get(k) for k in stamp} == stamp and "sha256" in seen:
            return seen["sha256"]
        digest = _sha256(gguf)
        try:  # remembering is an optimisation: a cache we cannot write still hashes correctly
            self.root.mkdir(parents=True, exist_ok=True)
            known[key] = {**stamp, "sha256": digest}
            _write_json(self.root / HASHES, known)
        except OSError:
            pass
        return digest

    def entry_path(self, gguf: Path, dtype: str) -> Path:
        """The folder of ``gguf`` converted to ``dtype`` by this transformers version.

        Parameters
        ----------
        gguf : pathlib.Path
            The GGUF file.
        dtype : str
            The dtype of the converted weights, e.g. ``"float32"``.

        Returns
        -------
        pathlib.Path
            ``<root>/<file stem>-<hash prefix>-<dtype>-transformers<version>``.
        """
        import transformers

        name = f"{gguf.stem}-{self.file_hash(gguf)[:16]}-{dtype}-transformers{transformers.__version__}"
        return self.root / name

    # -- entries -------------------------------------------------------------------

    @staticmethod
    def is_complete(entry: Path) -> bool:
        """Whether every file the manifest names is there with its size (a truncated copy is not).

        Parameters
        ----------
        entry : pathlib.Path
            An entry's folder.

        Returns
        -------
        bool
        """
        manifest = _read_json(entry / MANIFEST)
        if (
            not isinstance(manifest, dict)
            or not isinstance(manifest.get("files"), dict)
            or not manifest["files"]
        ):
            return False
        for name, size in manifest["files"].items():
            path = entry / name
            if not path.is_file() or path.stat().st_size != size:
                return False
        return True

    def entries(self) -> list[dict[str, Any]]:
        """The entries on disk: folder name, source file, dtype, transformers version, size.

        Returns
        -------
        list of dict
        """
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            manifest = _read_json(entry / MANIFEST) if entry.is_dir() else None
            if not isinstance(manifest, dict):
                continue
            found.append({
                "name": entry.name,
                "path": str(entry),
                "gguf": manifest.get("gguf"),
                "dtype": manifest.get("dtype"),
                "transformers": manifest.get("transformers"),
                "bytes": _folder_bytes(entry),
                "complete": self.is_complete(entry),
            })  # fmt: skip
        return found

    def clear(self) -> int:
        """Remove every entry, the remembered hashes and any left-over temporary folder.

        Returns
        -------
        int
            The number of entries removed.
        """
        if not self.root.is_dir():
            return 0
        removed = 0
        for path in self.root.iterdir():
            if path.is_dir() and ((path / MANIFEST).exists() or path.name.startswith(_TMP_PREFIX)):
                removed += not path.name.startswith(_TMP_PREFIX)
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_dir() and path.name == ASSEMBLED:  # embedded models' files joined from chunks
                shutil.rmtree(path, ignore_errors=True)
            elif path.name == HASHES or path.suffix == ".lock":
                path.unlink(missing_ok=True)
        return removed

    # -- loading -------------------------------------------------------------------

    def load(
        self,
        gguf: Path,
        dtype: str,
        from_gguf: Callable[[], T],
        from_folder: Callable[[Path], T],
        save: Callable[[T, Path], None],
    ) -> T:
        """Load ``gguf`` through the cache: from its entry, or converted once and kept.

        Parameters
        ----------
        gguf : pathlib.Path
            The GGUF file.
        dtype : str
            The dtype of the weights, part of the key.
        from_gguf : callable
            ``() -> loaded``: reads the GGUF file (slow).
        from_folder : callable
            ``(folder) -> loaded``: reads a converted entry (fast).
        save : callable
            ``(loaded, folder)``: writes what ``from_folder`` reads back.

        Returns
        -------
        loaded
            What ``from_folder`` or ``from_gguf`` returned.
        """
        try:
            entry = self.entry_path(gguf, dtype)
        except OSError as exc:
            _warn(
                f"The converted-model cache at {self.root} cannot be used ({exc}); loading {gguf.name} from GGUF."
            )
            return from_gguf()
        loaded = self._read(entry, from_folder, warn=False)
        if loaded is not None:
            return loaded
        from filelock import FileLock

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(entry) + ".lock", timeout=LOCK_TIMEOUT_S)
            lock.acquire()
        except OSError as exc:
            _warn(
                f"The converted-model cache at {self.root} cannot be written ({exc}); loading {gguf.name} from "
                "GGUF, which is slow in every new process. Set SKLLM_FEWSHOT_CACHE to a writable folder."
            )
            return from_gguf()
        try:
            # Another process may have written the entry while this one waited.
            loaded = self._read(entry, from_folder, warn=True)
            if loaded is not None:
                return loaded
            loaded = from_gguf()
            self._write(loaded, gguf, dtype, entry, save)
            return loaded
        finally:
            lock.release()

    def _read(self, entry: Path, from_folder: Callable[[Path], T], warn: bool) -> T | None:
        """The entry's model, or None where there is none; a broken entry is removed (warned once)."""
        if not entry.exists():
            return None
        problem = None if self.is_complete(entry) else "its files do not match its manifest"
        if problem is None:
            try:
                return from_folder(entry)
            except Exception as exc:  # noqa: BLE001 (any failure to read it back means: rebuild it)
                problem = f"{type(exc).__name__}: {exc}"
        if warn:  # the caller holds the lock: only then may the entry be removed
            _warn(f"The converted model at {entry} is corrupt ({problem}); converting it again.")
            shutil.rmtree(entry, ignore_errors=True)
        return None

    def _write(self, loaded: T, gguf: Path, dtype: str, entry: Path, save: Callable[[T, Path], None]) -> None:
        import transformers

        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=_TMP_PREFIX))
        try:
            save(loaded, tmp)
            files = {f.name: f.stat().st_size for f in tmp.iterdir() if f.is_file()}
            manifest = {
                "gguf": str(gguf.resolve()), "sha256": self.file_hash(gguf), "dtype": dtype,
                "transformers": transformers.__version__, "files": files,
            }  # fmt: skip
            # The manifest is written last and names every file: an entry without it is unfinished.
            _write_json(tmp / MANIFEST, manifest)
            os.replace(tmp, entry)
        except Exception as exc:  # noqa: BLE001 (a disk that cannot take the copy must not stop the load)
            shutil.rmtree(tmp, ignore_errors=True)
            _warn(
                f"The converted model could not be written to {self.root} ({exc}); it is loaded from GGUF "
                "this time, and will be again in every new process until the cache can be written."
            )
            return
        logger.info("Converted %s once; cached at %s", gguf.name, entry)
