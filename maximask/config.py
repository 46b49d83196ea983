"""AstrOmatic-style configuration: keyword tables, parsing, validation and dumps.

One mechanism serves both commands. A :class:`ConfigSpec` holds the keyword table of one
command (:data:`MASK_KEYWORDS` for ``maximask``, :data:`TRACK_KEYWORDS` for ``maxitrack``);
:func:`load_config` merges the internal defaults, a configuration file and command-line
overrides into a typed, read-only :class:`Config`; :func:`dump` writes the commented file that
``-d`` / ``-dd`` print. Every mistake a user can make raises :class:`ConfigError`, whose
``str()`` is one line naming the keyword, the value and what is allowed.

File syntax (as SExtractor)::

    # comment
    KEYWORD   value            # comment
    PRIORS    0.0005, 1e-05    # comma-separated list
    OUTPUT_DIR  ${DATA}/masks  # $VAR and ${VAR} are expanded from the environment

Keywords and enumeration values are case-insensitive (normalised to upper case); booleans are
``Y`` or ``N``; a string may be written in double quotes (``""`` is the empty string, and a
quoted value may contain ``#``). When a keyword appears more than once, the last one wins;
command-line ``-KEYWORD value`` pairs override the file.

This module is pure Python: it must not import the C++ extension.
"""
import dataclasses
import difflib
import math
import numbers
import os
import re
from collections.abc import Mapping
from typing import NamedTuple, Optional, Tuple

from .classes import ABBREVIATIONS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, NCLASSES

__all__ = [
    "ConfigError",
    "Keyword",
    "ConfigSpec",
    "Config",
    "CommandLine",
    "INTERNAL_DEFAULTS",
    "SWITCHES",
    "MASK_KEYWORDS",
    "TRACK_KEYWORDS",
    "EVAL_KEYWORDS",
    "COMMON_KEYWORDS",
    "boolean",
    "integer",
    "number",
    "string",
    "enumeration",
    "number_list",
    "enumeration_list",
    "string_list",
    "expand_env",
    "parse_text",
    "read_config_file",
    "parse_overrides",
    "split_argv",
    "load_config",
    "dump",
]

#: ``Config.source`` when no configuration file was read.
INTERNAL_DEFAULTS = "internal defaults"

#: Stand-alone options that :func:`split_argv` passes through (they take no value).
SWITCHES = ("-d", "-dd", "-h", "--help", "-v", "--version")

BOOL, INT, FLOAT, STRING, ENUM = "bool", "int", "float", "string", "enum"
FLOAT_LIST, ENUM_LIST, STRING_LIST = "float_list", "enum_list", "string_list"
_KINDS = (BOOL, INT, FLOAT, STRING, ENUM, FLOAT_LIST, ENUM_LIST, STRING_LIST)
_LIST_KINDS = (FLOAT_LIST, ENUM_LIST, STRING_LIST)

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ConfigError(ValueError):
    """A configuration mistake a user can make; ``str()`` is one line.

    Attributes: ``message`` (without location), ``location`` (``"file:line"``,
    ``"command line"`` or None), ``keyword`` (or None).
    """

    def __init__(self, message, location=None, keyword=None):
        self.message = " ".join(str(message).split())  # always one line
        self.location = location
        self.keyword = keyword
        super().__init__(self.message)

    def __str__(self):
        return f"{self.location}: {self.message}" if self.location else self.message

    def at(self, location):
        """The same error, located (an existing location is kept)."""
        if self.location:
            return self
        return ConfigError(self.message, location, self.keyword)


# --------------------------------------------------------------------------------------------
# Keywords


def _fmt_bound(x):
    return format(x, "g")


def _fmt_float(x):
    """Shortest text that parses back to exactly ``x`` (``repr``), without a useless ``.0``."""
    x = float(x)
    text = repr(x)
    return text[:-2] if text.endswith(".0") else text


def _quote(text):
    return '"' + text + '"'


@dataclasses.dataclass(frozen=True)
class Keyword:
    """One configuration keyword.

    kind: one of ``bool int float string enum float_list enum_list string_list``.
    default: the typed default (lists as tuples). minimum/maximum: bounds of numbers (or of
    each number of a list), exclusive when min_open/max_open. choices: the allowed values of
    an enumeration (upper case). length: the fixed length of a list, or None for a free
    length between min_length and max_length. unique: no repeated list items.
    comment: one line for the dump. section: the dump section. expert: dumped by ``-dd`` only.
    Build keywords with the helpers :func:`boolean`, :func:`integer`, :func:`number`,
    :func:`string`, :func:`enumeration`, :func:`number_list`, :func:`enumeration_list`,
    :func:`string_list`.
    """

    name: str
    kind: str
    default: object
    comment: str
    section: str
    expert: bool = False
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    min_open: bool = False
    max_open: bool = False
    choices: Tuple[str, ...] = ()
    length: Optional[int] = None
    min_length: int = 1
    max_length: Optional[int] = None
    unique: bool = False

    def __post_init__(self):
        if not _NAME_RE.match(self.name):
            raise ValueError(f"keyword name {self.name!r} must be upper case")
        if self.kind not in _KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.kind in (ENUM, ENUM_LIST):
            choices = tuple(str(c).upper() for c in self.choices)
            if not choices or len(set(choices)) != len(choices):
                raise ValueError(f"{self.name}: an enumeration needs distinct choices")
            object.__setattr__(self, "choices", choices)
        if "\n" in self.comment:
            raise ValueError(f"{self.name}: the comment must be one line")
        # Normalise the default and make sure it passes its own validation and round-trips.
        default = self.coerce(self.default)
        object.__setattr__(self, "default", default)
        if self.parse(self.format(default)) != default:
            raise ValueError(f"{self.name}: default {default!r} does not round-trip")

    # ---- description of what is allowed

    def _range(self):
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            return (f"in {'(' if self.min_open else '['}{_fmt_bound(lo)},"
                    f"{_fmt_bound(hi)}{')' if self.max_open else ']'}")
        if lo is not None:
            return f"{'>' if self.min_open else '>='} {_fmt_bound(lo)}"
        if hi is not None:
            return f"{'<' if self.max_open else '<='} {_fmt_bound(hi)}"
        return ""

    def _list_length(self):
        if self.length is not None:
            return str(self.length)
        if self.max_length is not None:
            if self.max_length == self.min_length:
                return str(self.min_length)
            return f"{self.min_length} to {self.max_length}"
        return f"at least {self.min_length}"

    def allowed(self):
        """What the keyword accepts, in words (used in error messages)."""
        rng = self._range()
        rng = " " + rng if rng else ""
        if self.kind == BOOL:
            return "Y or N"
        if self.kind == INT:
            return "integer" + rng
        if self.kind == FLOAT:
            return "number" + rng
        if self.kind == STRING:
            return "string"
        if self.kind == ENUM:
            return "one of " + ", ".join(self.choices)
        n = self._list_length()
        if self.kind == FLOAT_LIST:
            return f"list of {n} numbers{rng}"
        distinct = " distinct" if self.unique else ""
        if self.kind == ENUM_LIST:
            return f"list of {n}{distinct} values among " + ",".join(self.choices)
        return f"list of {n}{distinct} strings"

    def _error(self, got, text=None):
        got = f"{got} {_quote(text)}" if text is not None else got
        return ConfigError(f"{self.name}: {self.allowed()} expected, got {got}", keyword=self.name)

    # ---- text -> typed value

    def _parse_item(self, item, text, index=0):
        """One scalar or list item (``index`` from 1); ``text`` is the whole value."""
        is_list = self.kind in _LIST_KINDS
        where = (lambda: self._error(f"{_quote(item)} (item {index}) in", text)) if is_list else (
            lambda: self._error(_quote(item)))
        if self.kind == BOOL:
            if item.upper() in ("Y", "N"):
                return item.upper() == "Y"
            raise where()
        if self.kind == INT:
            if not _INT_RE.match(item):
                raise where()
            value = int(item)
        elif self.kind in (FLOAT, FLOAT_LIST):
            if not _FLOAT_RE.match(item):
                raise where()
            value = float(item)
            if not math.isfinite(value):
                raise where()
        elif self.kind in (ENUM, ENUM_LIST):
            value = item.upper()
            if value not in self.choices:
                raise where()
            return value
        else:  # strings
            if item.startswith('"'):
                if len(item) < 2 or not item.endswith('"') or '"' in item[1:-1]:
                    raise ConfigError(f"{self.name}: unbalanced quotes in {item}", keyword=self.name)
                return item[1:-1]
            return item
        lo, hi = self.minimum, self.maximum
        if ((lo is not None and (value < lo or (self.min_open and value == lo)))
                or (hi is not None and (value > hi or (self.max_open and value == hi)))):
            raise where()
        return value

    def parse(self, text):
        """Typed value of ``text`` (already stripped of comments and expanded)."""
        text = text.strip()
        if self.kind not in _LIST_KINDS:
            if text == "" and self.kind != STRING:
                raise self._error("no value")
            return self._parse_item(text, text)
        if text == "":
            items = []
        else:
            items = [item.strip() for item in text.split(",")]
            if any(item == "" for item in items):
                raise self._error("an empty item in", text)
        n = len(items)
        if (n < self.min_length or (self.length is not None and n != self.length)
                or (self.max_length is not None and n > self.max_length)):
            raise self._error(f"{n} value{'' if n == 1 else 's'}", text)
        values = tuple(self._parse_item(item, text, i) for i, item in enumerate(items, 1))
        if self.unique:
            seen = set()
            for v in values:
                if v in seen:
                    raise self._error(f"{v} twice in", text)
                seen.add(v)
        return values

    # ---- typed value -> text

    def _format_item(self, value):
        if self.kind == BOOL:
            return "Y" if value else "N"
        if self.kind == INT:
            return str(value)
        if self.kind in (FLOAT, FLOAT_LIST):
            return _fmt_float(value)
        if self.kind in (STRING, STRING_LIST):
            if '"' in value or _ENV_RE.search(value) or (self.kind == STRING_LIST and "," in value):
                raise ValueError(f"{self.name}: {value!r} cannot be written in a configuration file")
            if value == "" or value != value.strip() or "#" in value:
                return _quote(value)
            return value
        return value  # enumerations

    def format(self, value):
        """Text of a typed value that :meth:`parse` turns back into the same value."""
        if self.kind in _LIST_KINDS:
            return ",".join(self._format_item(v) for v in value)
        return self._format_item(value)

    def coerce(self, value):
        """Validated typed value from a Python value (str: parsed; bool, numbers, sequences)."""
        if isinstance(value, str):
            return self.parse(value)
        if self.kind in _LIST_KINDS:
            if not isinstance(value, (list, tuple)) and not hasattr(value, "__array__"):
                raise self._error(_quote(repr(value)))
            items = list(value)
            # Quote-free text for strings: build the text item by item, then parse it.
            return self.parse(",".join(self._py_item(v) for v in items))
        return self.parse(self._py_item(value))

    def _py_item(self, v):
        if isinstance(v, str):
            if self.kind in (STRING, STRING_LIST) and (v == "" or v != v.strip() or "#" in v):
                return _quote(v)
            return v
        if self.kind == BOOL:
            if isinstance(v, bool) or type(v).__name__ == "bool_":
                return "Y" if v else "N"
            raise self._error(_quote(repr(v)))
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return str(int(v))
        if isinstance(v, numbers.Real) and not isinstance(v, bool):
            return repr(float(v)) if math.isfinite(v) else str(v)
        raise self._error(_quote(repr(v)))


def boolean(name, default, comment, section, expert=False):
    """A ``Y``/``N`` keyword."""
    return Keyword(name, BOOL, default, comment, section, expert)


def integer(name, default, comment, section, *, minimum=None, maximum=None, expert=False):
    """An integer keyword, within [minimum, maximum] (either may be None)."""
    return Keyword(name, INT, default, comment, section, expert, minimum=minimum, maximum=maximum)


def number(name, default, comment, section, *, minimum=None, maximum=None, min_open=False,
           max_open=False, expert=False):
    """A floating-point keyword; min_open/max_open make the bounds exclusive."""
    return Keyword(name, FLOAT, default, comment, section, expert, minimum=minimum,
                   maximum=maximum, min_open=min_open, max_open=max_open)


def string(name, default, comment, section, expert=False):
    """A free string keyword (case preserved)."""
    return Keyword(name, STRING, default, comment, section, expert)


def enumeration(name, default, choices, comment, section, expert=False):
    """One of ``choices`` (case-insensitive, normalised to upper case)."""
    return Keyword(name, ENUM, default, comment, section, expert, choices=tuple(choices))


def number_list(name, default, comment, section, *, length=None, min_length=1, max_length=None,
                minimum=None, maximum=None, min_open=False, max_open=False, expert=False):
    """A comma-separated list of numbers: ``length`` items, or min_length..max_length."""
    return Keyword(name, FLOAT_LIST, default, comment, section, expert, minimum=minimum,
                   maximum=maximum, min_open=min_open, max_open=max_open, length=length,
                   min_length=min_length, max_length=max_length)


def enumeration_list(name, default, choices, comment, section, *, length=None, min_length=1,
                     max_length=None, unique=False, expert=False):
    """A comma-separated list of values among ``choices``."""
    return Keyword(name, ENUM_LIST, default, comment, section, expert, choices=tuple(choices),
                   length=length, min_length=min_length, max_length=max_length, unique=unique)


def string_list(name, default, comment, section, *, length=None, min_length=1, max_length=None,
                unique=False, expert=False):
    """A comma-separated list of strings."""
    return Keyword(name, STRING_LIST, default, comment, section, expert, length=length,
                   min_length=min_length, max_length=max_length, unique=unique)


# --------------------------------------------------------------------------------------------
# Keyword tables


class ConfigSpec:
    """The keyword table of one command.

    program: the command name (in dumps); default_file: the file looked up in the working
    directory when no ``-c`` is given; keywords: Keyword objects, in dump order (sections
    appear in order of first use); checks: callables ``check(values)`` on the merged dict of
    typed values, raising ConfigError for cross-keyword constraints.
    """

    def __init__(self, program, default_file, keywords, checks=()):
        self.program = program
        self.default_file = default_file
        self._keywords = {}
        for kw in keywords:
            if kw.name in self._keywords:
                raise ValueError(f"{program}: keyword {kw.name} defined twice")
            self._keywords[kw.name] = kw
        self.checks = tuple(checks)
        self.check(self.default_values())

    def __iter__(self):
        return iter(self._keywords.values())

    def __len__(self):
        return len(self._keywords)

    def __contains__(self, name):
        return isinstance(name, str) and name.upper() in self._keywords

    def __repr__(self):
        return f"ConfigSpec({self.program!r}, {len(self)} keywords)"

    @property
    def names(self):
        return tuple(self._keywords)

    @property
    def sections(self):
        return tuple(dict.fromkeys(kw.section for kw in self))

    def keyword(self, name):
        """The Keyword called ``name`` (any case); ConfigError with a suggestion if unknown."""
        key = name.upper()
        if key in self._keywords:
            return self._keywords[key]
        close = difflib.get_close_matches(key, self.names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown keyword {name}{hint}", keyword=name)

    def default_values(self):
        """A new dict of the typed defaults, in table order."""
        return {kw.name: kw.default for kw in self}

    def defaults(self):
        """The internal defaults as a Config."""
        return Config(self, self.default_values(), INTERNAL_DEFAULTS)

    def check(self, values):
        """Run the cross-keyword checks on a complete dict of typed values."""
        for check in self.checks:
            check(values)


# ---- keywords shared by maximask and maxitrack

BACK_SIZE = integer("BACK_SIZE", 200, "background mesh size in pixels (>= 16)",
                    "Background and tiling", minimum=16)
BATCH_SIZE = integer("BATCH_SIZE", 8, "number of tiles per network call (>= 1)", "Engine",
                     minimum=1)
DEVICE = enumeration("DEVICE", "AUTO", ("AUTO", "CPU", "CUDA"),
                     "AUTO (CUDA if available, else CPU), CPU or CUDA", "Engine")
NTHREADS = integer("NTHREADS", 0, "number of CPU threads (0 = all cores)", "Engine", minimum=0)
NETWORK = string("NETWORK", "", 'model directory of a fine-tuned network ("" = the packaged one)',
                 "Engine")
VERBOSE_TYPE = enumeration("VERBOSE_TYPE", "NORMAL", ("QUIET", "NORMAL", "FULL"),
                           "QUIET, NORMAL (progress per file and HDU) or FULL", "Miscellaneous")

CLUSTER = string("CLUSTER", "NONE", "NONE (in-process), LOCAL (Dask workers here) or tcp://host:port",
                 "Cluster (Dask)")
NWORKERS = integer("NWORKERS", 0, "Dask workers of CLUSTER LOCAL (0 = one per core)", "Cluster (Dask)",
                   minimum=0)

#: The keyword definitions both commands share (reuse them, or dataclasses.replace them).
COMMON_KEYWORDS = {kw.name: kw for kw in (BACK_SIZE, BATCH_SIZE, DEVICE, NTHREADS, NETWORK, VERBOSE_TYPE,
                                          CLUSTER, NWORKERS)}

_CLUSTER_ADDRESS = re.compile(r"^([a-z][a-z0-9+.-]*://)?[^\s:/]+:[0-9]+$", re.IGNORECASE)


def _check_cluster(values):
    cluster = values["CLUSTER"]
    if cluster.upper() in ("NONE", "LOCAL"):
        return
    if not _CLUSTER_ADDRESS.match(cluster):
        raise ConfigError(f'CLUSTER: NONE, LOCAL or a scheduler address such as tcp://host:8786 '
                          f'expected, got "{cluster}"', keyword="CLUSTER")


def _check_tiles(values):
    size, margin = values["TILE_SIZE"], values["TILE_MARGIN"]
    if 2 * margin >= size:
        raise ConfigError(
            f"TILE_MARGIN: integer >= 0 and < TILE_SIZE/2 = {size / 2:g} expected, got {margin} "
            f"(TILE_SIZE {size})", keyword="TILE_MARGIN")


_DEFAULT_CLASSES = tuple(a for a in ABBREVIATIONS if a not in ("BBG", "BG"))

#: Check-image types (NONE alone: none) and the default suffix of each one's file.
CHECKIMAGE_SUFFIXES = {
    "CLEANED": ".cleaned.fits",
    "PREVIEW": ".preview.png",
    "BACKGROUND": ".back.fits",
    "BACKGROUND_RMS": ".backrms.fits",
}
_CHECKIMAGE_TYPES = ("NONE",) + tuple(CHECKIMAGE_SUFFIXES)
#: Classes CLEAN_CLASSES may name: BBG (sources) and BG are the image itself.
CLEANABLE_CLASSES = tuple(a for a in ABBREVIATIONS if a not in ("BBG", "BG"))


def checkimage_is_suffix(name):
    """True when a CHECKIMAGE_NAME is a suffix (starts with "." or "_"), not a file name."""
    return name.startswith((".", "_"))


def _check_checkimages(values):
    types, names = values["CHECKIMAGE_TYPE"], values["CHECKIMAGE_NAME"]
    if "NONE" in types and len(types) > 1:
        raise ConfigError(f"CHECKIMAGE_TYPE: NONE cannot be combined with other types, got "
                          f"{','.join(types)}", keyword="CHECKIMAGE_TYPE")
    if not names or types == ("NONE",):
        return
    if len(names) != len(types):
        got = f"{len(names)} name{'' if len(names) == 1 else 's'}"
        raise ConfigError(f"CHECKIMAGE_NAME: one name per CHECKIMAGE_TYPE expected, got {got} "
                          f"for {len(types)} types ({','.join(types)})",
                          keyword="CHECKIMAGE_NAME")
    for kind, name in zip(types, names):
        ending = (".png",) if kind == "PREVIEW" else (".fits", ".fit", ".fts")
        problem = None
        if not name.lower().endswith(ending):
            problem = f"a {kind} name must end with {' or '.join(ending)}"
        elif name == values["OUTPUT_SUFFIX"]:
            problem = "it is the OUTPUT_SUFFIX of the main output"
        elif checkimage_is_suffix(name) and os.sep in name:
            problem = "a suffix cannot contain a directory"
        elif not checkimage_is_suffix(name):
            folder = os.path.dirname(name) or "."
            if os.path.isdir(name):
                problem = "it is a directory"
            elif not os.path.isdir(folder):
                problem = f"directory {folder} does not exist"
            elif not os.access(folder, os.W_OK | os.X_OK):
                problem = f"directory {folder} is not writable"
        if problem:
            raise ConfigError(f"CHECKIMAGE_NAME: cannot write {kind} to {name}: {problem}",
                              keyword="CHECKIMAGE_NAME")


MASK_KEYWORDS = ConfigSpec("maximask", "default.mask", [
    # Output
    enumeration("OUTPUT_TYPE", "FLAGS", ("FLAGS", "MASKS", "PROBA", "WEIGHT"),
                "FLAGS (bit k = class k), MASKS (0/1 plane per class), PROBA or WEIGHT",
                "Output"),
    string("OUTPUT_DIR", "", 'output directory ("" = beside each input image)', "Output"),
    string("OUTPUT_SUFFIX", ".mask.fits",
           "output name = input name without .fits/.fz/.gz + this suffix", "Output"),
    boolean("OVERWRITE", False, "replace existing output files (Y/N)", "Output"),
    # Classes
    enumeration_list("CLASSES", _DEFAULT_CLASSES, ABBREVIATIONS,
                     "classes to output: " + ",".join(ABBREVIATIONS), "Classes",
                     min_length=1, max_length=NCLASSES, unique=True),
    boolean("PRIOR_CORRECTION", True, "correct the probabilities for the PRIORS (Y/N)",
            "Classes"),
    number_list("PRIORS", tuple(float(p) for p in DEFAULT_PRIORS),
                f"expected fraction of each of the {NCLASSES} classes, in (0,1)", "Classes",
                length=NCLASSES, minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    number_list("THRESHOLDS", tuple(float(t) for t in DEFAULT_THRESHOLDS),
                f"probability thresholds of the {NCLASSES} classes (FLAGS, MASKS, WEIGHT)",
                "Classes", length=NCLASSES, minimum=0.0, maximum=1.0),
    # Background and tiling
    BACK_SIZE,
    integer("TILE_SIZE", 400, "network tile size in pixels (>= 64)", "Background and tiling",
            minimum=64, expert=True),
    integer("TILE_MARGIN", 100, "tile margin dropped when stitching (< TILE_SIZE/2)",
            "Background and tiling", minimum=0, expert=True),
    # Engine
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    # Miscellaneous
    VERBOSE_TYPE,
    # Check-images
    enumeration_list("CHECKIMAGE_TYPE", ("NONE",), _CHECKIMAGE_TYPES,
                     "NONE or a list of " + ",".join(CHECKIMAGE_SUFFIXES), "Check-images",
                     max_length=len(CHECKIMAGE_SUFFIXES), unique=True),
    string_list("CHECKIMAGE_NAME", (), "one file name or suffix (.x or _x) per type; "
                '"" = ' + ",".join(CHECKIMAGE_SUFFIXES.values()), "Check-images",
                min_length=0, unique=True),
    enumeration_list("CLEAN_CLASSES", ("CR", "HCL", "DCL", "HP", "DP"), CLEANABLE_CLASSES,
                     "classes inpainted in CLEANED: " + ",".join(CLEANABLE_CLASSES),
                     "Check-images", max_length=len(CLEANABLE_CLASSES), unique=True),
    integer("CLEAN_RADIUS", 8, "[pixel] farthest valid pixel used to inpaint (CLEANED)",
            "Check-images", minimum=1, maximum=64, expert=True),
    integer("PREVIEW_SIZE", 2048, "[pixel] largest side of the PREVIEW's image grid",
            "Check-images", minimum=64, expert=True),
    # Cluster (Dask)
    CLUSTER,
    NWORKERS,
], checks=[_check_tiles, _check_checkimages, _check_cluster])

TRACK_KEYWORDS = ConfigSpec("maxitrack", "default.track", [
    number("PRIOR", 0.05, "expected fraction of images with tracking errors, in (0,1)",
           "Tracking", minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    number("FRAC", 1.0, "fraction of each file's image HDUs scored, in (0,1]", "Tracking",
           minimum=0.0, maximum=1.0, min_open=True),
    integer("SEED", 0, "random seed of the HDU selection when FRAC < 1", "Tracking",
            minimum=0),
    string("OUTPUT_NAME", "maxitrack.out", "output file (one line per file and cube plane)",
           "Output"),
    enumeration("OUTPUT_TYPE", "ASCII_HEAD", ("ASCII_HEAD", "JSON"),
                "ASCII_HEAD (FILE SCORE lines after # headers) or JSON", "Output"),
    boolean("OVERWRITE", False, "replace an existing OUTPUT_NAME (Y/N)", "Output"),
    dataclasses.replace(BACK_SIZE, section="Background"),
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    VERBOSE_TYPE,
    CLUSTER,
    NWORKERS,
], checks=[_check_cluster])



def _check_checkplots(values):
    types = values["CHECKPLOT_TYPE"]
    if "NONE" in types and len(types) > 1:
        raise ConfigError(f"CHECKPLOT_TYPE: NONE cannot be combined with other plots, got "
                          f"{','.join(types)}", keyword="CHECKPLOT_TYPE")


#: The smallest side of a maxieval sample: below 20 px the simulator's fringe and nebulosity
#: fields degenerate (NaN pixels or numpy warnings for 1 seed in 8 at 18x18 px, most at
#: <= 10 px; none at 20 to 40 px), and a 1-px side cannot be simulated at all.
MIN_SAMPLE_SIDE = 32


def _check_sample_size(values):
    size = values["SAMPLE_SIZE"]
    if 0 < size < MIN_SAMPLE_SIDE:
        raise ConfigError(f"SAMPLE_SIZE: 0 (the whole image) or an integer >= {MIN_SAMPLE_SIDE} expected, "
                          f"got {size}", keyword="SAMPLE_SIZE")


def _mask_keyword(name, section):
    """A maximask keyword reused by maxieval, in maxieval's section."""
    return dataclasses.replace(MASK_KEYWORDS.keyword(name), section=section)


EVAL_KEYWORDS = ConfigSpec("maxieval", "default.eval", [
    # Samples
    integer("NSAMPLES", 20, "samples injected per input image (HDU or cube plane)", "Samples",
            minimum=1),
    integer("SAMPLE_SIZE", 400, f"side of the samples cut from each input (0 = whole image, else >= {MIN_SAMPLE_SIDE})",
            "Samples", minimum=0),
    enumeration_list("INJECT_CLASSES", _DEFAULT_CLASSES, _DEFAULT_CLASSES,
                     "contaminants injected: " + ",".join(_DEFAULT_CLASSES), "Samples",
                     min_length=1, max_length=len(_DEFAULT_CLASSES), unique=True),
    integer("SEED", 0, "random seed of the sample positions and injections", "Samples",
            minimum=0),
    number("SATUR_LEVEL", 0.0, "saturation level of the inputs in ADU (0 = above every clean pixel)",
           "Samples", minimum=0.0),
    string_list("DARK_FRAMES", (), "dark frames (FITS) to cut cosmic rays from (none: generated)",
                "Samples", min_length=0),
    number("SEEING_FWHM", 0.0, "FWHM of injected stars/trails in pixels (0 = drawn in [2,6])",
           "Samples", minimum=0.0),
    # Evaluation
    dataclasses.replace(_mask_keyword("PRIORS", "Evaluation"),
                        comment=f"priors in use (maximask PRIORS) for the {NCLASSES} classes"),
    dataclasses.replace(_mask_keyword("THRESHOLDS", "Evaluation"),
                        comment=f"thresholds in use (maximask THRESHOLDS) for the {NCLASSES} classes"),
    boolean("IGNORE_FLAGGED", True,
            "leave out of scoring the pixels flagged in the clean input (Y/N)", "Evaluation"),
    integer("LOGIT_BINS", 100000, "histogram bins per class over logit(p) in [-30,20]",
            "Evaluation", minimum=100, expert=True),
    # Output
    string("OUTPUT_NAME", "maxieval",
           "outputs: <name>.txt, <name>.json, <name>_roc/_mcc/_sample.png", "Output"),
    enumeration_list("CHECKPLOT_TYPE", ("ROC", "MCC", "SAMPLE"), ("ROC", "MCC", "SAMPLE", "NONE"),
                     "figures: ROC, MCC, SAMPLE or NONE (needs matplotlib)", "Output",
                     min_length=1, max_length=3, unique=True),
    string("SAMPLES_DIR", "", 'directory for the samples as image + truth FITS ("" = none)',
           "Output"),
    boolean("OVERWRITE", False, "replace existing output files (Y/N)", "Output"),
    # Background and tiling
    BACK_SIZE,
    _mask_keyword("TILE_SIZE", "Background and tiling"),
    _mask_keyword("TILE_MARGIN", "Background and tiling"),
    # Engine
    BATCH_SIZE,
    DEVICE,
    NTHREADS,
    NETWORK,
    # Miscellaneous
    VERBOSE_TYPE,
], checks=[_check_tiles, _check_checkplots, _check_sample_size])


def _check_training(values):
    overlap = set(values["FOCUS_CLASSES"]) - set(values["INJECT_CLASSES"]) - {"NONE"}
    if "NONE" in values["FOCUS_CLASSES"] and len(values["FOCUS_CLASSES"]) > 1:
        raise ConfigError("FOCUS_CLASSES: NONE cannot be combined with classes", keyword="FOCUS_CLASSES")
    if overlap:
        raise ConfigError(f"FOCUS_CLASSES: {','.join(sorted(overlap))} not in INJECT_CLASSES",
                          keyword="FOCUS_CLASSES")
    if values["DISTILL_STRENGTH"] > 0 and values["FOCUS_CLASSES"] == ("NONE",):
        raise ConfigError("DISTILL_STRENGTH: distillation holds the classes outside FOCUS_CLASSES, "
                          "which is NONE", keyword="DISTILL_STRENGTH")
    if not values["OUTPUT_NETWORK"]:
        raise ConfigError('OUTPUT_NETWORK: a model directory name is needed, got ""', keyword="OUTPUT_NETWORK")


TRAIN_KEYWORDS = ConfigSpec("maxitrain", "default.train", [
    # Network
    enumeration("TRAIN_NETWORK", "MAXIMASK", ("MAXIMASK", "MAXITRACK"),
                "MAXIMASK (inputs: clean images) or MAXITRACK (inputs: lists of 'file label' lines)",
                "Network"),
    dataclasses.replace(NETWORK, comment='model directory to start from ("" = the published weights)',
                        section="Network"),
    string("OUTPUT_NETWORK", "maximask.model", "model directory written (never replaced)", "Network"),
    string_list("TRAIN_LAYERS", ("ALL",), "ALL, or layer groups (ENCODER, DECODER, UCP, FINAL; "
                "CONV, DENSE) and layer names to train", "Network", unique=True),
    # Samples
    integer("SAMPLE_SIZE", 256, "[pixel] side of the MaxiMask training samples (MaxiTrack: 400)",
            "Samples", minimum=64),
    integer("NSAMPLES", 2000, "samples in the training set", "Samples", minimum=1),
    integer("NVALID", 64, "samples in the validation set", "Samples", minimum=1),
    number("VALID_FRAC", 0.2, "fraction of the input images kept apart for validation", "Samples",
           minimum=0.0, maximum=1.0, min_open=True, max_open=True),
    enumeration_list("INJECT_CLASSES", _DEFAULT_CLASSES, _DEFAULT_CLASSES,
                     "contaminants injected, each with probability 1/2 per sample", "Samples",
                     min_length=1, max_length=len(_DEFAULT_CLASSES), unique=True),
    enumeration_list("FOCUS_CLASSES", ("NONE",), ("NONE",) + _DEFAULT_CLASSES,
                     "NONE or classes injected in every sample (among INJECT_CLASSES)", "Samples",
                     max_length=len(_DEFAULT_CLASSES), unique=True),
    boolean("REBIN", True, "rebin 2x2 half of the samples of images whose FWHM stays > 2 px (Y/N)",
            "Samples"),
    number("SEEING_FWHM", 0.0, "[pixel] FWHM of the inputs (0 = measured on each image)", "Samples",
           minimum=0.0),
    number("SATUR_LEVEL", 0.0, "saturation level of the inputs in ADU (0 = above every clean pixel)",
           "Samples", minimum=0.0),
    number("OFFSET_SIGMA", 1.0, "[sigma] std of the random background offset of the compression",
           "Samples", minimum=0.0, expert=True),
    integer("SEED", 0, "random seed of the samples, the validation split and the optimiser", "Samples",
            minimum=0),
    # Optimisation
    integer("STEPS", 1000, "optimisation steps", "Optimisation", minimum=1),
    integer("BATCH_SIZE", 4, "samples per step", "Optimisation", minimum=1),
    number("LEARNING_RATE", 1e-4, "Adam step size", "Optimisation", minimum=0.0, min_open=True),
    enumeration("REGULARISATION", "PUBLISHED", ("PUBLISHED", "ZERO", "NONE"),
                "kernels pulled towards the PUBLISHED (starting) weights, to ZERO (L2), or NONE",
                "Optimisation"),
    number("REG_STRENGTH", 1.0, "lambda of the regularisation (eq. 17)", "Optimisation", minimum=0.0),
    enumeration("CLASS_WEIGHTS", "NETWORK", ("NETWORK", "SAMPLES"),
                "class weights (eq. 15) from the starting NETWORK's training priors or the SAMPLES' fractions",
                "Optimisation"),
    number("DISTILL_STRENGTH", 0.0, "> 0: classes outside FOCUS_CLASSES keep the starting network's "
           "logits, with this weight", "Optimisation", minimum=0.0),
    enumeration("AUX_LOSSES", "THREE_SMALLEST", ("THREE_SMALLEST", "TWO_SMALLEST", "NONE"),
                "auxiliary losses of the pre-predictions at the smallest resolutions",
                "Optimisation", expert=True),
    integer("VALID_STEP", 100, "steps between validation losses", "Optimisation", minimum=1),
    integer("CHECKPOINT_STEP", 100, "steps between checkpoints", "Optimisation", minimum=1),
    string("CHECKPOINT_NAME", "", 'checkpoint file, resumed when present ("" = OUTPUT_NETWORK.ckpt)',
           "Optimisation"),
    # Engine
    dataclasses.replace(BACK_SIZE, section="Engine"),
    dataclasses.replace(DEVICE, comment="AUTO (CUDA if PyTorch sees one, else CPU), CPU or CUDA"),
    NTHREADS,
    VERBOSE_TYPE,
], checks=[_check_training])


# --------------------------------------------------------------------------------------------
# Parsing


def expand_env(text, environ=None):
    """Replace ``$VAR`` and ``${VAR}`` by their values; an undefined one is a ConfigError."""
    env = os.environ if environ is None else environ

    def repl(match):
        var = match.group(1) or match.group(2)
        if var not in env:
            raise ConfigError(f"environment variable {var} is not defined (in {text.strip()})")
        return env[var]

    return _ENV_RE.sub(repl, text)


def _strip_comment(line):
    """The line up to its first ``#`` outside double quotes."""
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
    return line


def parse_text(spec, text, source="<string>"):
    """Typed values set by configuration text: dict keyword -> value (last occurrence wins).

    Errors are located as ``source:line``.
    """
    values = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        parts = line.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""
        try:
            kw = spec.keyword(parts[0])
            try:
                rest = expand_env(rest)
            except ConfigError as exc:
                raise ConfigError(f"{kw.name}: {exc.message}", keyword=kw.name) from None
            values[kw.name] = kw.parse(rest)
        except ConfigError as exc:
            raise exc.at(f"{source}:{lineno}") from None
    return values


def read_config_file(spec, path):
    """Typed values set by the configuration file at ``path`` (see :func:`parse_text`)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory") from None
    except UnicodeDecodeError:
        raise ConfigError(f"configuration file {path} is not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    return parse_text(spec, text, path)


def parse_overrides(spec, overrides, location="command line"):
    """Typed values of overrides: a mapping or (keyword, value) pairs, in order (last wins).

    Values may be command-line text or Python values (bool, numbers, sequences).
    """
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    values = {}
    for name, value in items:
        try:
            kw = spec.keyword(name)
            values[kw.name] = kw.coerce(value)
        except ConfigError as exc:
            raise exc.at(location) from None
    return values


class CommandLine(NamedTuple):
    """What :func:`split_argv` finds on a command line."""

    images: list  # image names, in order
    config_path: Optional[str]  # the -c file, or None
    overrides: list  # (KEYWORD, value text) pairs, in order
    switches: list  # stand-alone options met (e.g. "-d"), in order


def split_argv(argv, spec=None, switches=SWITCHES):
    """Split ``[-c CONFIG] IMAGE... [-KEYWORD value ...]`` (options and images interleaved).

    ``--`` makes every following argument an image; ``-`` alone is an image. A ``-c`` or
    ``-KEYWORD`` with no value after it is a ConfigError. With ``spec``, keywords are checked
    at once (unknown ones get a suggestion), and a value that is itself a ``-KEYWORD`` of the
    spec, ``-c`` or a switch is taken as a missing value.
    """
    images, overrides, seen = [], [], []
    config_path = None
    args = list(argv)
    i = 0

    def is_option(token):
        if token == "-c" or token in switches:
            return True
        return spec is not None and token.startswith("-") and token[1:] in spec

    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            images.extend(args[i:])
            break
        if token in switches:
            seen.append(token)
        elif token == "-c":
            if i >= len(args) or is_option(args[i]):
                raise ConfigError("option -c needs a configuration file name",
                                  location="command line")
            config_path = args[i]
            i += 1
        elif token.startswith("-") and len(token) > 1:
            name = token[1:].upper()
            if spec is not None:
                try:
                    name = spec.keyword(name).name
                except ConfigError as exc:
                    raise exc.at("command line") from None
            if i >= len(args) or is_option(args[i]):
                raise ConfigError(f"option {token} needs a value", location="command line",
                                  keyword=name)
            overrides.append((name, args[i]))
            i += 1
        else:
            images.append(token)
    return CommandLine(images, config_path, overrides, seen)


# --------------------------------------------------------------------------------------------
# Result


class Config(Mapping):
    """The typed, read-only configuration of one run.

    Access by keyword, in any case: ``config["OUTPUT_TYPE"]``, ``config.OUTPUT_TYPE`` or
    ``config.output_type``. Values are bool, int, float, str, or tuples for lists.
    ``source`` is the path of the configuration file read, or :data:`INTERNAL_DEFAULTS`.
    """

    def __init__(self, spec, values, source=INTERNAL_DEFAULTS, origins=None):
        self._spec = spec
        self._values = {kw.name: values[kw.name] for kw in spec}
        self._origins = {name: "default" for name in self._values}
        self._origins.update(origins or {})
        self._source = source

    @property
    def spec(self):
        return self._spec

    @property
    def source(self):
        return self._source

    @property
    def from_file(self):
        """True when the defaults came from a configuration file."""
        return self._source != INTERNAL_DEFAULTS

    def origin(self, name):
        """Where a value comes from: ``"default"``, the file path, or ``"command line"``."""
        return self._origins[self._spec.keyword(name).name]

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise KeyError(name)
        try:
            return self._values[self._spec.keyword(name).name]
        except ConfigError as exc:
            raise KeyError(str(exc)) from None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Config({self._spec.program!r}, source={self._source!r}, {self._values!r})"

    def replace(self, overrides=(), location="arguments", **kwargs):
        """A new Config with some values changed (validated as command-line overrides)."""
        changes = parse_overrides(self._spec, list(_pairs(overrides)) + list(kwargs.items()),
                                  location)
        values = dict(self._values)
        values.update(changes)
        self._spec.check(values)
        origins = dict(self._origins)
        origins.update({name: location for name in changes})
        return Config(self._spec, values, self._source, origins)


def _pairs(overrides):
    return overrides.items() if isinstance(overrides, Mapping) else overrides


def load_config(spec, config_path=None, overrides=(), search_default=True):
    """Merge internal defaults < configuration file < overrides into a :class:`Config`.

    config_path: the ``-c`` file (a missing one is a ConfigError); without it, the spec's
    default file (``default.mask``) in the working directory is read when present and
    ``search_default`` is true. overrides: (keyword, value) pairs or a mapping, e.g.
    ``split_argv(...).overrides``. ``Config.source`` tells which file, if any, was read.
    """
    if config_path is not None:
        path = os.fspath(config_path)
        if not os.path.exists(path):
            raise ConfigError(f"configuration file {path} not found")
    elif search_default and os.path.isfile(spec.default_file):
        path = spec.default_file
    else:
        path = None
    values = spec.default_values()
    origins = {}
    if path is not None:
        from_file = read_config_file(spec, path)
        values.update(from_file)
        origins.update({name: path for name in from_file})
    from_cli = parse_overrides(spec, overrides)
    values.update(from_cli)
    origins.update({name: "command line" for name in from_cli})
    spec.check(values)
    return Config(spec, values, path if path is not None else INTERNAL_DEFAULTS, origins)


# --------------------------------------------------------------------------------------------
# Dump

_NAME_WIDTH = 23
_VALUE_WIDTH = 15
_RULE_WIDTH = 79


def _section_rule(title):
    left = "#" + "-" * 32 + " " + title + " "
    return left + "-" * max(4, _RULE_WIDTH - len(left))


def dump(spec, expert=False, values=None):
    """The commented configuration file of ``spec`` (``-d``; ``-dd`` is ``expert=True``).

    values: a Config or mapping to dump instead of the defaults (missing keywords: defaults).
    Reading the text back gives exactly the values dumped.
    """
    from . import __version__

    program = spec.program
    lines = [
        f"# Default configuration file for {program} {__version__}",
        f'# Written by "{program} -{"dd" if expert else "d"}"'
        + ("" if expert or not any(kw.expert for kw in spec)
           else f'; "{program} -dd" also lists the expert keywords') + ".",
    ]
    chosen = [kw for kw in spec if expert or not kw.expert]
    for section in spec.sections:
        kws = [kw for kw in chosen if kw.section == section]
        if not kws:
            continue
        lines += ["", _section_rule(section), ""]
        for kw in kws:
            value = kw.default if values is None or kw.name not in values else values[kw.name]
            text = kw.format(value)
            lines.append(f"{kw.name:<{_NAME_WIDTH - 1}} {text:<{_VALUE_WIDTH - 1}} # {kw.comment}")
    return "\n".join(lines) + "\n"
