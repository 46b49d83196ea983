"""Write maximask.__version__ (the one place it is set) into the files that show it.

    python tools/sync_version.py        # after changing maximask/__init__.py; then commit

Rewrites the version on the .TH line of man/*.1 and the configuration files config/default.*
(exactly what ``-d`` prints). tests/test_docs.py fails until this has been run.
"""
import os
import re

import maximask
from maximask.config import dump
from maximask.keywords import EVAL_KEYWORDS, MASK_KEYWORDS, TRACK_KEYWORDS, TRAIN_KEYWORDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    for spec in (MASK_KEYWORDS, TRACK_KEYWORDS, EVAL_KEYWORDS, TRAIN_KEYWORDS):
        page = os.path.join(ROOT, "man", f"{spec.program}.1")
        with open(page, encoding="utf-8") as f:
            text = f.read()
        new = re.sub(r'^(\.TH .*?)"maximask [^"]*"', rf'\1"maximask {maximask.__version__}"', text, count=1)
        with open(page, "w", encoding="utf-8") as f:
            f.write(new)
        with open(os.path.join(ROOT, "config", spec.default_file), "w", encoding="utf-8") as f:
            f.write(dump(spec))
        print(f"{page}, config/{spec.default_file}: {maximask.__version__}")


if __name__ == "__main__":
    main()
