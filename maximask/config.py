"""AstrOmatic-style configuration: the keyword mechanism, parsing, validation and dumps.

One mechanism serves the four commands, as SExtractor's prefs.c serves its keyword list
(preflist.h). A :class:`ConfigSpec` holds the keyword table of one command; the tables
themselves live in :mod:`maximask.keywords` (``MASK_KEYWORDS`` for ``maximask``,
``TRACK_KEYWORDS``, ``EVAL_KEYWORDS``, ``TRAIN_KEYWORDS``);
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
import difflib
import os
from collections.abc import Mapping
from typing import NamedTuple, Optional

from .errors import ConfigError
from .keyword_types import (_ENV_RE, Keyword, boolean, enumeration, enumeration_list, integer, number, number_list,
                            string, string_list)


__all__ = [
    "ConfigError",
    "Keyword",
    "ConfigSpec",
    "Config",
    "CommandLine",
    "INTERNAL_DEFAULTS",
    "SWITCHES",
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
