"""The keyword reference of the manual, as reStructuredText lines, from the keyword tables
(:mod:`maximask.keywords`). Plain Python (no Sphinx, no docutils), so the tests can compare
it with the tables in the test environment; the ``maximask-keywords`` directive of
``maximask_docs`` renders it.
"""

SPECS = {"maximask": "MASK_KEYWORDS", "maxitrack": "TRACK_KEYWORDS", "maxieval": "EVAL_KEYWORDS",
         "maxitrain": "TRAIN_KEYWORDS"}


def spec_of(program):
    """The ConfigSpec of a command."""
    from maximask import keywords

    return getattr(keywords, SPECS[program])


def _cell(text):
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|").replace("`", "\\`")


def keyword_reference(program):
    """reStructuredText lines: one list-table per section of the command's keyword table."""
    spec = spec_of(program)
    lines = []
    for section in spec.sections:
        lines += [f".. rubric:: {section}", "", ".. list-table::", "   :header-rows: 1",
                  "   :widths: 22 22 26 30", "   :class: maximask-keywords", ""]
        lines += ["   * - Keyword", "     - Default", "     - Accepts", "     - Meaning"]
        for kw in spec:
            if kw.section != section:
                continue
            default = kw.format(kw.default) or '""'
            name = f"``{kw.name}``" + (" (expert, ``-dd``)" if kw.expert else "")
            lines += [f"   * - .. _{program}-{kw.name.lower().replace('_', '-')}:", "",
                      f"       {name}", f"     - ``{default}``", f"     - {_cell(kw.allowed())}",
                      f"     - {_cell(kw.comment)}"]
        lines.append("")
    return lines
