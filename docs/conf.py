"""Sphinx configuration of the maximask manual.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (needs the ``docs`` extra and an
installed maximask: the API pages import it, the keyword reference reads its tables).
"""
import importlib.util
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

import maximask  # noqa: E402  (the installed package: its version, its docstrings)

project = "maximask"
author = "the maximask developers"
copyright = "2026, the maximask developers (MIT); networks: 2018 Maxime Paillassa (MIT)"
version = release = maximask.__version__  # the one place the version is written

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "maximask_docs",  # docs/_ext/maximask_docs.py: keyword reference and API pages
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# Pages merged from other branches may skip a heading level; that alone should not fail -W.
suppress_warnings = ["myst.header"]

# The training and cluster pages import PyTorch and Dask; without them (the docs extra alone)
# autodoc stands mocks in, so the manual still builds.
autodoc_mock_imports = [m for m in ("torch", "onnx", "distributed", "dask") if importlib.util.find_spec(m) is None]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False  # members are documented by autodoc below each class
numpydoc_validation_checks = set()

html_theme = "pydata_sphinx_theme"
html_title = f"maximask {release}"
html_static_path = ["_static"]
html_css_files = ["maximask.css"]
smartquotes = False  # "" is the empty string of the configuration, not typography
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "navigation_with_keys": False,
}
html_sidebars = {"index": [], "keywords": [], "getting_started": []}

#: The API reference: (page title, module, members or None for the module's own list).
#: Module paths live here only: when a module moves, change its line and nothing else.
maximask_api_pages = [
    ("Masking images", "maximask.masker", ["Masker"]),
    ("Scoring tracking errors", "maximask.tracker", ["Tracker", "TrackScore"]),
    ("NDData, CCDData and bit masks", "maximask.nddata", None),
    ("Errors", "maximask.errors", ["InputError", "OutputError", "OutputExistsError", "SkippedInput", "ConfigError"]),
    ("Input discovery", "maximask.inputs", ["ImageSource", "find_inputs", "is_output_file"]),
    ("Atomic outputs", "maximask.outputs", ["write_atomically", "temporary_output", "remove_stale_temporaries", "plan_outputs"]),
    ("Configuration", "maximask.config", ["ConfigSpec", "Config", "load_config", "dump"]),
    ("Keyword records", "maximask.keyword_types", ["Keyword"]),
    ("Network sessions", "maximask.engine", ["open_network", "Network", "EngineError"]),
    ("C++ kernels", "maximask.kernels", None),
    ("Clusters (Dask)", "maximask.distributed", None),
    ("Simulated contaminants", "maximask.simulation", ["inject", "parse_classes", "parameter_names"]),
    ("Evaluation metrics", "maximask.evaluation.metrics", None),
    ("Evaluation: priors by EM", "maximask.evaluation.em_priors", None),
    ("Evaluation: the maxieval pipeline", "maximask.evaluation.pipeline", ["Evaluation"]),
    ("Training: networks in PyTorch", "maximask.training", None),
    ("Training: loss", "maximask.training.loss", None),
    ("Training: export", "maximask.training.export", None),
    ("Training: the maxitrain pipeline", "maximask.training.pipeline", ["Training"]),
]
