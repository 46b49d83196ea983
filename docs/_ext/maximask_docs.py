"""Sphinx extension of the maximask manual: pages generated from the code at build time.

``.. maximask-keywords:: maximask`` renders the keyword table of one command
(:data:`maximask.keywords.MASK_KEYWORDS`, ...): every keyword with its default, what it
accepts, whether it is expert (``-dd``) and its meaning, section by section, as ``-d`` dumps
them. The API pages (``api/generated/``) are written from ``maximask_api_pages`` in conf.py.
"""
import os

from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from keyword_reference import SPECS, keyword_reference  # docs/_ext is on sys.path (conf.py)


class KeywordTable(Directive):
    required_arguments = 1

    def run(self):
        program = self.arguments[0]
        if program not in SPECS:
            raise self.error(f"unknown command {program}; expected one of {', '.join(SPECS)}")
        node_lines = StringList(keyword_reference(program), source=f"<{program} keyword table>")
        from docutils import nodes

        container = nodes.container()
        self.state.nested_parse(node_lines, self.content_offset, container)
        return container.children


def api_page(title, module, members):
    """reStructuredText of one API page."""
    lines = [title, "=" * len(title), "", f".. automodule:: {module}"]
    if members is None:
        lines.append("   :members:")
    else:
        lines += ["   :no-members:", ""]
        kinds = {}
        import importlib

        mod = importlib.import_module(module)
        for name in members:
            obj = getattr(mod, name)
            kinds[name] = ("autoexception" if isinstance(obj, type) and issubclass(obj, BaseException)
                           else "autoclass" if isinstance(obj, type) else "autofunction")
            lines += ["", f".. {kinds[name]}:: {module}.{name}"]
            if kinds[name] != "autofunction":
                lines.append("   :members:")
    return "\n".join(lines) + "\n"


def write_api_pages(app):
    """Write api/generated/NN_module.rst from conf.maximask_api_pages (only when changed)."""
    folder = os.path.join(app.srcdir, "api", "generated")
    os.makedirs(folder, exist_ok=True)
    wanted = {}
    for i, (title, module, members) in enumerate(app.config.maximask_api_pages):
        wanted[f"{i:02d}_{module}.rst"] = api_page(title, module, members)
    for name in os.listdir(folder):
        if name.endswith(".rst") and name not in wanted:
            os.remove(os.path.join(folder, name))
    for name, text in wanted.items():
        path = os.path.join(folder, name)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)


def literal_examples(app, what, name, obj, options, lines):
    """Show the indented examples of plain docstrings as code: an indented block after a blank
    line, under a paragraph that does not end with ``::``, gets a ``::`` of its own."""
    i = 1
    while i < len(lines):
        line, before = lines[i], lines[i - 1]
        if line.startswith("    ") and line.strip() and not before.strip():
            above = next((l for l in reversed(lines[:i - 1]) if l.strip()), "")
            if not above.startswith(" ") and not above.rstrip().endswith("::") and not above.startswith(".."):
                lines[i:i] = ["::", ""]
                i += 2
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                i += 1
            continue
        i += 1


def setup(app):
    app.add_config_value("maximask_api_pages", [], "env")
    app.add_directive("maximask-keywords", KeywordTable)
    app.connect("builder-inited", write_api_pages)
    app.connect("autodoc-process-docstring", literal_examples)
    return {"version": "1", "parallel_read_safe": True}
