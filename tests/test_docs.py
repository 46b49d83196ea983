"""The documentation says what the code does: the README's and the manual's examples run on
the shipped examples, the keyword reference and the man pages list every keyword of the
tables, the version is written in one place."""
import doctest
import glob
import importlib.util
import os
import re
import shutil

import pytest

import maximask
from maximask.config import dump
from maximask.keywords import EVAL_KEYWORDS, MASK_KEYWORDS, TRACK_KEYWORDS, TRAIN_KEYWORDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
SPECS = (MASK_KEYWORDS, TRACK_KEYWORDS, EVAL_KEYWORDS, TRAIN_KEYWORDS)
PAGES = sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True)
               + glob.glob(os.path.join(DOCS, "**", "*.rst"), recursive=True))
PAGES = [p for p in PAGES if os.sep + "_build" + os.sep not in p and os.sep + "generated" + os.sep not in p]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def docs_extension():
    """The keyword reference generator of the manual (docs/_ext/keyword_reference.py)."""
    spec = importlib.util.spec_from_file_location("keyword_reference", os.path.join(DOCS, "_ext", "keyword_reference.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- examples that run


@pytest.fixture
def in_examples_copy(tmp_path, monkeypatch):
    """A working directory holding a copy of examples/, so outputs never land in the checkout."""
    shutil.copytree(os.path.join(ROOT, "examples"), tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_doctests(path):
    """Run the >>> examples of a Markdown or reST file; returns (failures, tries, report)."""
    text = read(path)
    # a code fence ends an example's expected output, as a blank line does
    text = "\n".join("" if line.lstrip().startswith("```") else line for line in text.splitlines())
    test = doctest.DocTestParser().get_doctest(text, {}, os.path.relpath(path, ROOT), path, 0)
    out = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.append)
    return runner.failures, runner.tries, "".join(out)


DOCTEST_FILES = [os.path.join(ROOT, "README.md")] + [p for p in PAGES if ">>> " in read(p)]


@pytest.mark.parametrize("path", DOCTEST_FILES, ids=lambda p: os.path.relpath(p, ROOT))
def test_examples_of_the_docs_run(path, in_examples_copy):
    failures, tries, report = run_doctests(path)
    assert tries > 0 and failures == 0, report


def test_python_blocks_import_what_exists():
    """Illustrative Python blocks (not run) still name functions that exist."""
    checked = 0
    for path in [os.path.join(ROOT, "README.md")] + PAGES:
        for block in re.findall(r"```python\n(.*?)```", read(path), re.S):
            for line in block.splitlines():
                if re.match(r"(from maximask\S* import |import maximask)", line):
                    exec(line, {})  # noqa: S102  an ImportError names the renamed function
                    checked += 1
    assert checked >= 5


# ---------------------------------------------------------------- README


def test_readme_is_short_and_keeps_its_two_setup_commands():
    text = read(os.path.join(ROOT, "README.md"))
    assert len(text.splitlines()) <= 150
    assert "    pip install . && maximask examples/field.fits.fz -OVERWRITE Y\n" in text
    assert '    pip install ".[test]" && pytest -q tests\n' in text
    assert "A&A 634, A48" in text and "MIT" in text


@pytest.mark.parametrize("path", [os.path.join(ROOT, "README.md")] + PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_no_paths_outside_the_repository_nor_machine_logs(path):
    text = read(path)
    for bad in ("../shared", "/work/", "other engineers", "shared with other"):
        assert bad not in text, bad
    for link in re.findall(r"\]\(([^)#]+)", text):  # relative Markdown links resolve
        if re.match(r"[a-z]+:", link):
            continue
        assert os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), link))), link


def test_benchmark_pages_say_machine_date_commit_and_command():
    pages = [p for p in glob.glob(os.path.join(DOCS, "benchmarks", "*.md"))]
    assert len(pages) >= 5
    for page in pages:
        text = read(page)
        assert re.search(r"machine", text, re.I), f"{page}: which machine?"
        assert re.search(r"20\d\d-\d\d-\d\d", text), f"{page}: which date?"
        assert re.search(r"commit `?[0-9a-f]{7,40}\b", text), f"{page}: which commit?"
        assert re.search(r"benchmarks/\w+\.py", text), f"{page}: which command?"


# ---------------------------------------------------------------- keywords: reference and man pages


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.program)
def test_keyword_reference_lists_every_keyword_with_default_range_and_meaning(spec):
    ext = docs_extension()
    text = "\n".join(ext.keyword_reference(spec.program))
    rows = re.findall(r"``([A-Z0-9_]+)``( \(expert, ``-dd``\))?\n     - ``(.*?)``\n     - (.*)\n     - (.*)", text)
    assert [r[0] for r in rows] == sorted(spec.names, key=lambda n: (spec.sections.index(spec.keyword(n).section),
                                                                       spec.names.index(n)))
    for name, expert, default, accepts, meaning in rows:
        kw = spec.keyword(name)
        assert default == (kw.format(kw.default) or '""')
        assert bool(expert) == kw.expert
        assert accepts.replace("\\", "") == kw.allowed() and meaning.replace("\\", "") == kw.comment
    for section in spec.sections:
        assert f".. rubric:: {section}" in text


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.program)
def test_man_page_lists_every_keyword_with_its_default(spec):
    text = read(os.path.join(ROOT, "man", f"{spec.program}.1"))
    for kw in spec:
        assert re.search(r"\\fB%s\\fR" % kw.name, text), f"man/{spec.program}.1 lacks {kw.name}"
        for m in re.finditer(r"\\fB%s\\fR \(([^)]*)\)" % kw.name, text):
            given = m.group(1).replace(", expert", "")
            if " " in given or given in ("none", "expert"):
                continue  # a description ("14 values", "those of maximask"), not a value
            want = kw.format(kw.default) or '""'
            assert given == want or (kw.kind == "float" and float(given) == kw.default), (kw.name, given, want)


def test_version_is_written_in_one_place():
    from importlib.metadata import version

    assert version("maximask") == maximask.__version__  # pyproject reads maximask.__version__
    pyproject = read(os.path.join(ROOT, "pyproject.toml"))
    assert 'dynamic = ["version"]' in pyproject and not re.search(r'^version\s*=\s*"', pyproject, re.M)
    for spec in SPECS:
        head = read(os.path.join(ROOT, "man", f"{spec.program}.1")).splitlines()[0]
        assert f'"maximask {maximask.__version__}"' in head, f"man/{spec.program}.1: run tools/sync_version.py"
        assert read(os.path.join(ROOT, "config", spec.default_file)) == dump(spec), "run tools/sync_version.py"


def test_root_licence_is_mit_and_the_weights_keep_theirs():
    assert read(os.path.join(ROOT, "LICENSE")).startswith("MIT License")
    assert "Paillassa" in read(os.path.join(ROOT, "maximask", "models", "LICENSE"))
