"""The keyword record: one :class:`Keyword` per configuration keyword, with its kind, default,
range and comment, and the constructors the keyword tables use (:func:`integer`,
:func:`enumeration_list`, ...). The mechanism that reads files and command lines is
:mod:`maximask.config`; the tables are :mod:`maximask.keywords`.
"""
import dataclasses
import math
import numbers
import re
from typing import Optional, Tuple

from .errors import ConfigError

BOOL, INT, FLOAT, STRING, ENUM = "bool", "int", "float", "string", "enum"
FLOAT_LIST, ENUM_LIST, STRING_LIST = "float_list", "enum_list", "string_list"
_KINDS = (BOOL, INT, FLOAT, STRING, ENUM, FLOAT_LIST, ENUM_LIST, STRING_LIST)
_LIST_KINDS = (FLOAT_LIST, ENUM_LIST, STRING_LIST)

_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")
#: $VAR and ${VAR} (expanded in configuration files; never written by a dump)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


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
