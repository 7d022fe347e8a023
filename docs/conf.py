"""Sphinx configuration: numpydoc API reference and a sphinx-gallery of examples.

Build (from the repository root, warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery's examples (``examples/``) run at build time on the embedded
SmolLM2-135M-Instruct, in one process, so the model is loaded once.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from pathlib import Path

# Nothing in the build may reach the Hugging Face Hub (set before transformers loads).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Progress bars (the GGUF loader's, which uses tqdm directly) would clutter the examples' output.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Figures are rendered off screen.
os.environ.setdefault("MPLBACKEND", "Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import skllm_fewshot  # noqa: E402

# The examples run in this process. On a CPU that other jobs share (CI runners, a
# machine several people use), two torch threads wait for each other at every
# operation: scoring measured 10-15 times slower than with one thread on a busy 2-core
# machine. One thread by default; set SKLLM_DOCS_TORCH_THREADS=2 on an idle machine.
torch.set_num_threads(int(os.environ.get("SKLLM_DOCS_TORCH_THREADS", "1")))

# -- project -----------------------------------------------------------------

project = "skllm-fewshot"
author = "skllm-fewshot developers"
copyright = "2026, skllm-fewshot developers"
release = skllm_fewshot.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = [
    "_build",
    # The tables benchmarks write from their records (docs/*.jsonl): the pages include
    # them, and they are not pages of their own.
    "*_latest*.md",
    # sphinx-gallery's own outputs that are not pages.
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.md5",
    "auto_examples/*.json",
]

# Pages that other parts of the project write; the toctree names them, and a page not
# written yet is left out of it (with a note in the log) rather than failing the build.
OPTIONAL_PAGES = ("accuracy", "reliability", "dask")


def _drop_missing_pages(app, docname, source):
    if docname != "index":
        return
    for page in OPTIONAL_PAGES:
        if not any((DOCS / f"{page}{suffix}").is_file() for suffix in source_suffix):
            from sphinx.util import logging

            logging.getLogger(__name__).info(f"[skllm-fewshot] docs/{page}.md is not written yet; left out")
            source[0] = re.sub(rf"^\s*{page}\s*$\n", "", source[0], flags=re.M)


def setup(app):
    app.connect("source-read", _drop_missing_pages)


# -- HTML ----------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skllm-fewshot {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_static_path: list[str] = []
html_show_sourcelink = True

# -- API reference: autosummary + numpydoc ---------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's "Parameters" sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# Documented but missing, or documented and not a parameter, fails the build: every
# public parameter has an entry (GL08: an object without a docstring).
numpydoc_validation_checks = {"PR01", "PR02", "PR03", "PR06", "RT01", "GL08", "SS01"}
numpydoc_validation_exclude = {
    # Methods inherited from scikit-learn, documented there.
    r"\.get_params$",
    r"\.set_params$",
    r"\.score$",
    r"\.set_score_request$",
    r"\.set_fit_request$",
    r"\.get_metadata_routing$",
    r"\.__init__$",
}

# -- gallery ----------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Every script runs, not only plot_*; one that raises fails the build.
    "filename_pattern": r".*\.py$",
    "ignore_pattern": r"__init__\.py",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": True,
    "doc_module": ("skllm_fewshot",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"skllm_fewshot": None},
    "capture_repr": ("_repr_html_", "__repr__"),
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "min_reported_time": 0,
    "show_signature": False,
}

# Warnings from the examples' libraries are not documentation errors; the examples
# print what the reader needs.
warnings.filterwarnings("ignore", category=FutureWarning)
