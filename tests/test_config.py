"""The AstrOmatic configuration mechanism (maximask.config): parse, validate, dump, merge."""
import dataclasses

import numpy as np
import pytest

import maximask
from maximask.classes import ABBREVIATIONS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, NCLASSES
from maximask.config import (INTERNAL_DEFAULTS, Config, ConfigError, ConfigSpec, dump, enumeration_list, expand_env, integer, load_config, number, parse_overrides, parse_text, split_argv, string, string_list)
from maximask.keywords import EVAL_KEYWORDS, MASK_KEYWORDS, TRACK_KEYWORDS, TRAIN_KEYWORDS

SPECS = [MASK_KEYWORDS, TRACK_KEYWORDS, EVAL_KEYWORDS, TRAIN_KEYWORDS]


def parse(text, spec=MASK_KEYWORDS):
    return parse_text(spec, text, "test.mask")


def error_of(text, spec=MASK_KEYWORDS):
    with pytest.raises(ConfigError) as info:
        parse(text, spec)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- defaults and the table


def test_mask_defaults_match_class_table():
    d = MASK_KEYWORDS.defaults()
    assert d.source == INTERNAL_DEFAULTS and not d.from_file
    assert d.OUTPUT_TYPE == "FLAGS"
    assert d.OUTPUT_DIR == ""
    assert d.OUTPUT_SUFFIX == ".mask.fits"
    assert d.CLASSES == tuple(a for a in ABBREVIATIONS if a not in ("BBG", "BG"))
    assert d.PRIOR_CORRECTION is True and d.OVERWRITE is False
    assert d.PRIORS == tuple(DEFAULT_PRIORS.tolist())
    assert d.THRESHOLDS == tuple(DEFAULT_THRESHOLDS.tolist())
    assert all(type(x) is float for x in d.PRIORS + d.THRESHOLDS)
    assert (d.BACK_SIZE, d.TILE_SIZE, d.TILE_MARGIN, d.BATCH_SIZE) == (200, 400, 100, 8)
    assert (d.DEVICE, d.NTHREADS, d.VERBOSE_TYPE) == ("AUTO", 0, "NORMAL")
    assert type(d.BACK_SIZE) is int


def test_track_keywords_share_common_definitions():
    d = TRACK_KEYWORDS.defaults()
    assert (d.PRIOR, d.FRAC, d.SEED, d.OUTPUT_NAME) == (0.05, 1.0, 0, "maxitrack.out")
    assert TRACK_KEYWORDS.default_file == "default.track"
    for name in ("BATCH_SIZE", "DEVICE", "NTHREADS", "VERBOSE_TYPE"):
        assert TRACK_KEYWORDS.keyword(name) is MASK_KEYWORDS.keyword(name)
    assert TRACK_KEYWORDS.keyword("BACK_SIZE").minimum == MASK_KEYWORDS.keyword("BACK_SIZE").minimum
    assert "CLASSES" not in TRACK_KEYWORDS
    # maxitrack writes a table, not images: its OUTPUT_TYPE is its own keyword
    assert TRACK_KEYWORDS.keyword("OUTPUT_TYPE").choices == ("ASCII_HEAD", "JSON")


def test_config_access_forms():
    c = MASK_KEYWORDS.defaults()
    assert c["OUTPUT_TYPE"] == c["output_type"] == c.output_type == c.OUTPUT_TYPE
    assert list(c) == list(MASK_KEYWORDS.names) and len(c) == len(MASK_KEYWORDS)
    assert dict(c)["BACK_SIZE"] == 200
    with pytest.raises(KeyError, match="did you mean OUTPUT_TYPE"):
        c["OUTPUT_TYP"]
    with pytest.raises(AttributeError):
        c.NO_SUCH_KEYWORD
    assert not hasattr(c, "_hidden")


def test_bad_spec_definitions_rejected_at_import_time():
    with pytest.raises(ValueError):
        integer("lower", 1, "x", "S")
    with pytest.raises(ValueError):  # default out of its own range
        integer("N", 3, "x", "S", minimum=5)
    with pytest.raises(ValueError):  # default breaking a cross-keyword check
        def check(v):
            raise ConfigError("no")
        ConfigSpec("p", "default.p", [integer("N", 1, "x", "S")], checks=[check])
    with pytest.raises(ValueError):
        ConfigSpec("p", "default.p", [integer("N", 1, "x", "S"), integer("N", 2, "y", "S")])


# ---------------------------------------------------------------- dump and round trip


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.program)
@pytest.mark.parametrize("expert", [False, True])
def test_dump_round_trip(spec, expert):
    text = dump(spec, expert=expert)
    values = parse_text(spec, text, "dump")
    expected = {kw.name: kw.default for kw in spec if expert or not kw.expert}
    assert values == expected
    # the types too (1 == 1.0 == True would hide a wrong type)
    assert {k: type(v) for k, v in values.items()} == {k: type(v) for k, v in expected.items()}


def test_dump_layout():
    text = dump(MASK_KEYWORDS)
    lines = text.splitlines()
    assert lines[0].startswith("#") and "maximask" in lines[0] and maximask.__version__ in lines[0]
    assert any(line.startswith("#----") and " Output " in line for line in lines)
    assert any(line.startswith("#----") and " Classes " in line for line in lines)
    out = next(line for line in lines if line.startswith("OUTPUT_TYPE"))
    assert out.split()[:3] == ["OUTPUT_TYPE", "FLAGS", "#"]
    # -d hides the expert keywords, -dd shows them
    assert "TILE_SIZE" not in text and "TILE_MARGIN" not in text
    expert = dump(MASK_KEYWORDS, expert=True)
    assert "\nTILE_SIZE " in expert and "\nTILE_MARGIN " in expert
    for kw in MASK_KEYWORDS:
        assert kw.comment in expert


def test_dump_of_given_values_round_trips():
    c = load_config(MASK_KEYWORDS, overrides=[("OUTPUT_DIR", "my dir#1"), ("PRIORS", "0.3," * 13 + "0.3"),
                                              ("TILE_MARGIN", "7")], search_default=False)
    back = parse_text(MASK_KEYWORDS, dump(MASK_KEYWORDS, expert=True, values=c), "dump")
    assert back == dict(c)
    assert back["OUTPUT_DIR"] == "my dir#1"


def test_float_formatting_is_exact():
    kw = MASK_KEYWORDS.keyword("THRESHOLDS")
    odd = (0.1 + 0.2, 1 / 3, 1e-300, 0.0, 1.0) + (0.5,) * (NCLASSES - 5)
    assert kw.parse(kw.format(odd)) == odd


# ---------------------------------------------------------------- parsing


def test_file_syntax_comments_blank_lines_and_case():
    values = parse(
        "# a comment\n"
        "\n"
        "   output_type   masks   # trailing comment\n"
        "Verbose_Type quiet\n"
        "DEVICE\tcuda\n"
        "OVERWRITE y\n"
        "PRIOR_CORRECTION n\n"
        "OUTPUT_SUFFIX .Flags.FITS\n"
    )
    assert values == {"OUTPUT_TYPE": "MASKS", "VERBOSE_TYPE": "QUIET", "DEVICE": "CUDA",
                      "OVERWRITE": True, "PRIOR_CORRECTION": False,
                      "OUTPUT_SUFFIX": ".Flags.FITS"}  # strings keep their case


def test_last_occurrence_wins_in_file():
    assert parse("BACK_SIZE 64\nBACK_SIZE 128\n") == {"BACK_SIZE": 128}


def test_list_parsing():
    values = parse("CLASSES cr , hcl,SAT\nTHRESHOLDS " + ", ".join(["0.5"] * 13) + ",1\n")
    assert values["CLASSES"] == ("CR", "HCL", "SAT")
    assert values["THRESHOLDS"] == (0.5,) * 13 + (1.0,)
    assert parse("CLASSES BG")["CLASSES"] == ("BG",)
    assert parse("CLASSES " + ",".join(ABBREVIATIONS))["CLASSES"] == ABBREVIATIONS


def test_quoted_strings():
    assert parse('OUTPUT_DIR ""  # beside the inputs')["OUTPUT_DIR"] == ""
    assert parse('OUTPUT_DIR "/data/with # hash"  # c')["OUTPUT_DIR"] == "/data/with # hash"
    assert parse("OUTPUT_DIR")["OUTPUT_DIR"] == ""
    assert "unbalanced" in error_of('OUTPUT_DIR "/data')


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("MM_ROOT", "/scratch/run1")
    monkeypatch.setenv("MM_SUF", "flags")
    values = parse("OUTPUT_DIR $MM_ROOT/masks\nOUTPUT_SUFFIX .${MM_SUF}.fits\n")
    assert values == {"OUTPUT_DIR": "/scratch/run1/masks", "OUTPUT_SUFFIX": ".flags.fits"}
    monkeypatch.setenv("MM_N", "3")
    assert parse("NTHREADS ${MM_N}")["NTHREADS"] == 3


def test_undefined_env_variable_is_named(monkeypatch):
    monkeypatch.delenv("MM_UNDEFINED_VAR", raising=False)
    message = error_of("\nOUTPUT_DIR ${MM_UNDEFINED_VAR}/x\n")
    assert "MM_UNDEFINED_VAR" in message and message.startswith("test.mask:2:")
    assert "OUTPUT_DIR" in message
    # a $ in a comment is not expanded
    assert parse("NTHREADS 2  # $MM_UNDEFINED_VAR")["NTHREADS"] == 2


def test_expand_env_with_explicit_environment():
    assert expand_env("$A-${B}", {"A": "1", "B": "2"}) == "1-2"
    assert expand_env("cost: $ 5", {}) == "cost: $ 5"  # not a variable name
    with pytest.raises(ConfigError, match="C"):
        expand_env("$C", {})


# ---------------------------------------------------------------- validation errors


@pytest.mark.parametrize("line, keyword, value, allowed", [
    ("BACK_SIZE 8", "BACK_SIZE", '"8"', ">= 16"),
    ("BACK_SIZE 20.5", "BACK_SIZE", '"20.5"', "integer"),
    ("BACK_SIZE big", "BACK_SIZE", '"big"', "integer"),
    ("NTHREADS -1", "NTHREADS", '"-1"', ">= 0"),
    ("BATCH_SIZE 0", "BATCH_SIZE", '"0"', ">= 1"),
    ("OUTPUT_TYPE FLAG", "OUTPUT_TYPE", '"FLAG"', "one of FLAGS, MASKS, PROBA, WEIGHT"),
    ("DEVICE GPU", "DEVICE", '"GPU"', "AUTO, CPU, CUDA"),
    ("OVERWRITE yes", "OVERWRITE", '"yes"', "Y or N"),
    ("OVERWRITE 1", "OVERWRITE", '"1"', "Y or N"),
    ("PRIOR_CORRECTION T", "PRIOR_CORRECTION", '"T"', "Y or N"),
    ("THRESHOLDS 0.1,0.2,0.3", "THRESHOLDS", '3 values "0.1,0.2,0.3"', "list of 14 numbers in [0,1]"),
    ("THRESHOLDS " + ",".join(["0.5"] * 13) + ",1.5", "THRESHOLDS", '"1.5"', "in [0,1]"),
    ("THRESHOLDS " + ",".join(["0.5"] * 13) + ",x", "THRESHOLDS", '"x"', "numbers"),
    ("THRESHOLDS " + ",".join(["0.5"] * 13) + ",nan", "THRESHOLDS", '"nan"', "numbers"),
    ("PRIORS " + ",".join(["0.5"] * 13) + ",0", "PRIORS", '"0"', "in (0,1)"),
    ("PRIORS " + ",".join(["0.5"] * 13) + ",1", "PRIORS", '"1"', "in (0,1)"),
    ("PRIORS " + ",".join(["0.5"] * 15), "PRIORS", "15 values", "list of 14 numbers"),
    ("PRIORS 0.1,,0.2", "PRIORS", '"0.1,,0.2"', "list of 14"),
    ("CLASSES CR,XX", "CLASSES", '"XX"', "CR,HCL,DCL"),
    ("CLASSES CR,cr", "CLASSES", "CR twice", "distinct"),
    ("CLASSES", "CLASSES", "0 values", "list of 1 to 14"),
    ("TILE_SIZE 32", "TILE_SIZE", '"32"', ">= 64"),
    ("BACK_SIZE", "BACK_SIZE", "no value", "integer >= 16"),
    ("BACK_SIZE 64 128", "BACK_SIZE", '"64 128"', "integer"),
])
def test_bad_values_name_keyword_value_and_allowed(line, keyword, value, allowed):
    message = error_of("# first line\n" + line)
    assert message.startswith("test.mask:2: " + keyword + ": ")
    assert value in message
    assert allowed in message


def test_exact_message_for_wrong_list_length():
    message = error_of("THRESHOLDS 0.1,0.2,0.3")
    assert message == ('test.mask:1: THRESHOLDS: list of 14 numbers in [0,1] expected, '
                       'got 3 values "0.1,0.2,0.3"')


def test_unknown_keyword_suggests_nearest():
    message = error_of("NTHREADS 2\nOUTPUT_TYP FLAGS\n")
    assert message == "test.mask:2: unknown keyword OUTPUT_TYP (did you mean OUTPUT_TYPE?)"
    assert "did you mean" not in error_of("ZZZZZZZZ 1")
    # a keyword of the other command is unknown here
    assert "unknown keyword CLASSES" in error_of("CLASSES CR", TRACK_KEYWORDS)


def test_track_ranges():
    assert "in (0,1)" in error_of("PRIOR 1", TRACK_KEYWORDS)
    assert "in (0,1]" in error_of("FRAC 0", TRACK_KEYWORDS)
    assert parse("FRAC 1\nPRIOR 1e-3", TRACK_KEYWORDS) == {"FRAC": 1.0, "PRIOR": 0.001}


def test_cross_keyword_tile_check():
    with pytest.raises(ConfigError) as info:
        load_config(MASK_KEYWORDS, overrides=[("TILE_MARGIN", "200")], search_default=False)
    message = str(info.value)
    assert "TILE_MARGIN" in message and "200" in message and "TILE_SIZE" in message
    c = load_config(MASK_KEYWORDS, overrides=[("TILE_SIZE", "64"), ("TILE_MARGIN", "31")],
                    search_default=False)
    assert (c.TILE_SIZE, c.TILE_MARGIN) == (64, 31)
    with pytest.raises(ConfigError, match="TILE_MARGIN"):
        load_config(MASK_KEYWORDS, overrides=[("TILE_SIZE", "64"), ("TILE_MARGIN", "32")],
                    search_default=False)


# ---------------------------------------------------------------- overrides and loading


def test_overrides_accept_python_values():
    values = parse_overrides(MASK_KEYWORDS, {
        "THRESHOLDS": np.full(NCLASSES, 0.25), "OVERWRITE": True, "back_size": 64,
        "CLASSES": ["sat", "CR"], "OUTPUT_DIR": "",
    })
    assert values == {"THRESHOLDS": (0.25,) * NCLASSES, "OVERWRITE": True, "BACK_SIZE": 64,
                      "CLASSES": ("SAT", "CR"), "OUTPUT_DIR": ""}
    for bad in ({"OVERWRITE": 1}, {"BACK_SIZE": 64.5}, {"THRESHOLDS": [0.5] * 3},
                {"PRIORS": [float("nan")] * NCLASSES}, {"OUTPUT_TYP": "FLAGS"}):
        with pytest.raises(ConfigError, match="command line"):
            parse_overrides(MASK_KEYWORDS, bad)


def test_precedence_defaults_file_command_line(tmp_path):
    path = tmp_path / "my.mask"
    path.write_text("BACK_SIZE 64\nNTHREADS 3\nOUTPUT_TYPE MASKS\n")
    c = load_config(MASK_KEYWORDS, str(path),
                    overrides=[("NTHREADS", "5"), ("OUTPUT_TYPE", "proba"), ("NTHREADS", "6")])
    assert c.source == str(path) and c.from_file
    assert c.BACK_SIZE == 64  # file over default
    assert c.NTHREADS == 6  # command line over file, last occurrence wins
    assert c.OUTPUT_TYPE == "PROBA"
    assert c.BATCH_SIZE == 8  # untouched default
    assert (c.origin("BACK_SIZE"), c.origin("nthreads"), c.origin("BATCH_SIZE")) == (
        str(path), "command line", "default")


def test_errors_from_file_carry_file_and_line(tmp_path):
    path = tmp_path / "bad.mask"
    path.write_text("# header\n\nNTHREADS 2\nDEVICE TPU\n")
    with pytest.raises(ConfigError) as info:
        load_config(MASK_KEYWORDS, path)
    assert str(info.value).startswith(f"{path}:4: DEVICE: ")
    assert '"TPU"' in str(info.value)


def test_command_line_error_is_located():
    with pytest.raises(ConfigError) as info:
        load_config(MASK_KEYWORDS, overrides=[("BATCH_SIZE", "0")], search_default=False)
    assert str(info.value).startswith("command line: BATCH_SIZE: ")


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(MASK_KEYWORDS, str(tmp_path / "nope.mask"))
    with pytest.raises(ConfigError, match="directory"):
        load_config(MASK_KEYWORDS, str(tmp_path))


def test_default_file_in_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = load_config(MASK_KEYWORDS)
    assert c.source == INTERNAL_DEFAULTS and not c.from_file and c.BACK_SIZE == 200
    (tmp_path / "default.mask").write_text("BACK_SIZE 96\n")
    c = load_config(MASK_KEYWORDS)
    assert c.source == "default.mask" and c.from_file and c.BACK_SIZE == 96
    assert load_config(MASK_KEYWORDS, search_default=False).BACK_SIZE == 200
    # maxitrack looks for its own file
    assert load_config(TRACK_KEYWORDS).source == INTERNAL_DEFAULTS
    (tmp_path / "default.track").write_text("FRAC 0.5\n")
    assert load_config(TRACK_KEYWORDS).FRAC == 0.5
    # an explicit -c wins over default.mask
    (tmp_path / "other.mask").write_text("NTHREADS 4\n")
    c = load_config(MASK_KEYWORDS, "other.mask")
    assert c.source == "other.mask" and c.NTHREADS == 4 and c.BACK_SIZE == 200


def test_dumped_file_loads_back_as_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.mask").write_text(dump(MASK_KEYWORDS, expert=True))
    c = load_config(MASK_KEYWORDS)
    assert c.from_file and dict(c) == dict(MASK_KEYWORDS.defaults())


def test_config_replace():
    c = MASK_KEYWORDS.defaults()
    d = c.replace(OUTPUT_TYPE="weight", NTHREADS=2)
    assert (d.OUTPUT_TYPE, d.NTHREADS, c.OUTPUT_TYPE) == ("WEIGHT", 2, "FLAGS")
    with pytest.raises(ConfigError, match="TILE_MARGIN"):
        c.replace(TILE_MARGIN=300)


# ---------------------------------------------------------------- argv


def test_split_argv_interleaved():
    cl = split_argv(["a.fits", "-OUTPUT_TYPE", "MASKS", "b.fits", "-c", "x.mask",
                     "-nthreads", "2", "c.fits.fz", "-NTHREADS", "3"])
    assert cl.images == ["a.fits", "b.fits", "c.fits.fz"]
    assert cl.config_path == "x.mask"
    assert cl.overrides == [("OUTPUT_TYPE", "MASKS"), ("NTHREADS", "2"), ("NTHREADS", "3")]
    assert cl.switches == []
    c = load_config(MASK_KEYWORDS, overrides=cl.overrides, search_default=False)
    assert c.NTHREADS == 3


def test_split_argv_switches_dashdash_and_values_starting_with_dash():
    cl = split_argv(["-dd", "-SEED", "-1", "--", "-odd.fits", "-NTHREADS"])
    assert cl.switches == ["-dd"]
    assert cl.overrides == [("SEED", "-1")]
    assert cl.images == ["-odd.fits", "-NTHREADS"]
    assert split_argv(["-"]).images == ["-"]


@pytest.mark.parametrize("argv", [["a.fits", "-NTHREADS"], ["-c"], ["a.fits", "-c"]])
def test_split_argv_missing_value(argv):
    with pytest.raises(ConfigError) as info:
        split_argv(argv)
    assert "needs" in str(info.value) and argv[-1] in str(info.value)


def test_split_argv_with_spec_checks_keywords():
    with pytest.raises(ConfigError, match=r"did you mean OUTPUT_TYPE\?"):
        split_argv(["a.fits", "-OUTPUT_TYP", "FLAGS"], MASK_KEYWORDS)
    # a value that is the next option means the value is missing
    with pytest.raises(ConfigError, match="-OUTPUT_TYPE needs a value"):
        split_argv(["-OUTPUT_TYPE", "-NTHREADS", "2"], MASK_KEYWORDS)
    with pytest.raises(ConfigError, match="-c needs"):
        split_argv(["-c", "-d"], MASK_KEYWORDS)
    assert split_argv(["-output_type", "masks"], MASK_KEYWORDS).overrides == [("OUTPUT_TYPE", "masks")]


# ---------------------------------------------------------------- the mechanism is reusable


def test_new_spec_with_other_kinds():
    spec = ConfigSpec("demo", "default.demo", [
        number("GAIN", 1.5, "gain", "A", minimum=0.0, min_open=True),
        string("NAME", "x y", "name", "A"),
        string_list("TAGS", ("a", "b c"), "tags", "B", min_length=2, unique=True),
        enumeration_list("PAIR", ("X", "Y"), ("X", "Y", "Z"), "pair", "B", length=2),
        dataclasses.replace(MASK_KEYWORDS.keyword("NTHREADS"), default=4, section="B"),
    ])
    assert parse_text(spec, dump(spec), "d") == dict(spec.defaults())
    assert spec.sections == ("A", "B")
    assert parse_text(spec, "TAGS p, q ,r\nPAIR z,x\nGAIN 2", "d") == {
        "TAGS": ("p", "q", "r"), "PAIR": ("Z", "X"), "GAIN": 2.0}
    with pytest.raises(ConfigError, match='got 1 value "p"'):
        parse_text(spec, "TAGS p", "d")
    with pytest.raises(ConfigError, match="list of 2 values among X,Y,Z"):
        parse_text(spec, "PAIR x,y,z", "d")
    with pytest.raises(ConfigError, match="> 0"):
        parse_text(spec, "GAIN 0", "d")
    assert isinstance(spec.defaults(), Config)
