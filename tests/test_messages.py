"""One correct line for each problem a user can cause (issue 18), from real processes.

Each test runs an installed command as a separate process (``python -c`` calling its
entry point, the installed package rather than the source folder) and checks the exit
code, the exact line on stderr, and that nothing was written or changed.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from maximask.simulation.synthetic import make_field

ENV = dict(os.environ, PYTHONSAFEPATH="1")
MAINS = {"maximask": "main_mask", "maxitrack": "main_track", "maxieval": "main_eval"}


def run(command, *argv, cwd):
    code = f"import sys; from maximask.cli import {MAINS[command]} as main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=600)


def digests(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def write_image(path, seed=1, shape=(230, 250)):
    fits.PrimaryHDU(make_field(shape, seed=seed, saturated=1)).writeto(path)
    return str(path)


# ------------------------------------------------------------------ maxitrack OUTPUT_NAME

def test_maxitrack_refuses_an_existing_output_name_without_overwrite(tmp_path):
    write_image(tmp_path / "t.fits", shape=(400, 400))
    (tmp_path / "maxitrack.out").write_text("my own notes\n")
    before = digests(tmp_path)
    result = run("maxitrack", "t.fits", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("maxitrack: OUTPUT_NAME maxitrack.out: output file already exists; "
                             "set -OVERWRITE Y to replace it\n")
    assert digests(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["maxitrack.out", "t.fits"]
    result = run("maxitrack", "t.fits", "-OVERWRITE", "Y", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    text = (tmp_path / "maxitrack.out").read_text()
    assert text.startswith("# maxitrack ") and text.splitlines()[-1].startswith("t.fits 0.")


# ------------------------------------------------------------------ inputs that are not files

@pytest.mark.parametrize("kind", ["loop", "fifo", "device", "broken link"])
def test_an_input_that_is_not_a_regular_file_is_said_for_what_it_is(tmp_path, kind):
    if kind == "loop":
        os.symlink("b.fits", tmp_path / "a.fits")
        os.symlink("a.fits", tmp_path / "b.fits")
        arg, said = "a.fits", "a symbolic link loop, not a file"
    elif kind == "fifo":
        os.mkfifo(tmp_path / "a.fits")
        arg, said = "a.fits", "not a regular file: a FIFO (named pipe)"
    elif kind == "device":
        arg, said = os.devnull, "not a regular file: a character device"
    else:
        os.symlink("gone.fits", tmp_path / "a.fits")
        arg, said = "a.fits", "a broken symbolic link (to gone.fits, which does not exist)"
    for form in (arg, f"{arg}[0]", f"@{arg}"):  # a file, an HDU of it, a list (a FIFO never blocks)
        result = run("maximask", form, "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
        assert (result.returncode, result.stderr) == (1, f"maximask: {arg}: {said}\n")
    assert not [n for n in os.listdir(tmp_path) if "mask" in n or n.startswith(".")]


# ------------------------------------------------------------------ outputs

def test_output_dir_that_is_a_file_is_said_to_be_no_directory(tmp_path):
    image = write_image(tmp_path / "g.fits")
    (tmp_path / "out").write_text("a file")
    before = digests(tmp_path)
    result = run("maximask", image, "-OUTPUT_DIR", "out", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("maximask: OUTPUT_DIR out: output directory is a regular file, "
                                              "not a directory")
    result = run("maxitrack", image, "-OUTPUT_NAME", "out/scores.txt", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, "maxitrack: OUTPUT_NAME out/scores.txt: output directory "
                                                     "is a regular file, not a directory\n")
    result = run("maximask", image, "-OUTPUT_DIR", "missing", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.stderr == "maximask: OUTPUT_DIR missing: output directory does not exist\n"
    assert digests(tmp_path) == before


def test_checkimage_name_that_is_the_input_names_checkimage_name(tmp_path):
    image = write_image(tmp_path / "g.fits")
    before = digests(tmp_path)
    result = run("maximask", "g.fits", "-CHECKIMAGE_TYPE", "CLEANED", "-CHECKIMAGE_NAME", "g.fits",
                 "-OVERWRITE", "Y", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("maximask: g.fits: CHECKIMAGE_NAME g.fits (the CLEANED check-image) is an input "
                             "of this run: an output never replaces an input, whatever OVERWRITE says "
                             "(change CHECKIMAGE_NAME)\n")
    assert "OUTPUT_SUFFIX" not in result.stderr
    assert digests(tmp_path) == before and os.listdir(tmp_path) == ["g.fits"]
    assert image


def test_truncated_weights_are_one_plain_line(tmp_path):
    from maximask.engine import MODELS_DIR, PACKAGED_WEIGHTS_SHA256

    model = tmp_path / "cut.model"
    model.mkdir()
    with open(os.path.join(MODELS_DIR, "maximask.onnx"), "rb") as f:
        (model / "maximask.onnx").write_bytes(f.read())
    with open(os.path.join(MODELS_DIR, "maximask.weights"), "rb") as f:
        (model / "maximask.weights").write_bytes(f.read()[:100000])  # a copy cut short
    (model / "model.json").write_text(
        f'{{"network": "maximask", "weights_sha256": "{PACKAGED_WEIGHTS_SHA256["maximask"]}"}}')
    write_image(tmp_path / "g.fits")
    result = run("maximask", "g.fits", "-NETWORK", "cut.model", "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "\x1b" not in result.stderr and "onnxruntime::" not in result.stderr
    assert result.stderr.startswith("maximask: cannot load cut.model/maximask.onnx: its weights file is "
                                    "truncated or damaged (")
    assert result.stderr.endswith("): reinstall maximask, or export the model directory again\n")
    assert sorted(os.listdir(tmp_path)) == ["cut.model", "g.fits"]


# ------------------------------------------------------------------ maxieval

EVAL = ["-NSAMPLES", "1", "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "1000"]


def test_maxieval_on_a_1x1_image_is_one_clear_line(tmp_path):
    fits.PrimaryHDU(np.full((1, 1), 100.0, np.float32)).writeto(tmp_path / "dot.fits")
    result = run("maxieval", "dot.fits", *EVAL, "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("maxieval: dot.fits[0]: 1x1 pixels: too small to evaluate (samples need at least "
                             "32 pixels a side)\n")
    assert os.listdir(tmp_path) == ["dot.fits"]


def test_maxieval_skips_a_tiny_hdu_beside_a_usable_one(tmp_path):
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((20, 300), 100.0, np.float32)),
                  fits.ImageHDU(make_field((120, 140), seed=4))]).writeto(tmp_path / "m.fits")
    result = run("maxieval", "m.fits", *EVAL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    said = result.stderr.splitlines()
    assert "maxieval: m.fits[1]: 300x20 pixels: too small to evaluate (samples need at least 32 pixels a side): " \
           "skipped" in said
    assert "maxieval: m.fits[2]: 140x120 pixels, smaller than SAMPLE_SIZE 400: its samples are 140x120" in said
    assert "maxieval: m.fits: 1 samples from 1 image(s)" in said


def test_maxieval_sample_size_larger_than_the_image_is_said(tmp_path):
    write_image(tmp_path / "g.fits", shape=(230, 250))
    result = run("maxieval", "g.fits", *EVAL, "-SAMPLE_SIZE", "240", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "SAMPLE_SIZE" in line]
    assert notes == ["maxieval: g.fits[0]: 250x230 pixels, smaller than SAMPLE_SIZE 240: its samples are 240x230"]
    with open(tmp_path / "maxieval.json") as f:
        assert f.read().count('"shape": [\n') <= 1  # the report is there
    result = run("maxieval", "g.fits", *EVAL, "-SAMPLE_SIZE", "10", "-OUTPUT_NAME", "other", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == ("maxieval: SAMPLE_SIZE: 0 (the whole image) or an integer >= 32 "
                                              "expected, got 10")


@pytest.mark.parametrize("command", ["maxieval", "maximask", "maxitrack"])
def test_an_all_zero_input_is_said_once(tmp_path, command):
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(tmp_path / "zero.fits")
    result = run(command, "zero.fits", *(EVAL if command == "maxieval" else ()), cwd=tmp_path)
    assert result.returncode == 1
    about = [line for line in result.stderr.splitlines() if "zero.fits" in line]
    assert len(about) == 1 and "all pixels are zero" in about[0], result.stderr


# ------------------------------------------------------------------ configuration source

@pytest.mark.parametrize("command", ["maximask", "maxitrack", "maxieval"])
def test_the_configuration_source_is_said_with_full(tmp_path, command):
    """FULL names the configuration's source first; NORMAL does not (an error run stays one
    line), as the manual says."""
    write_image(tmp_path / "g.fits", shape=(300, 300))
    argv = ["g.fits"] + (EVAL if command == "maxieval" else [])
    result = run(command, *argv, "-VERBOSE_TYPE", "FULL", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"{command}: configuration from internal defaults"
    default = {"maximask": "default.mask", "maxitrack": "default.track", "maxieval": "default.eval"}[command]
    (tmp_path / default).write_text("VERBOSE_TYPE FULL\nOVERWRITE Y\n")
    result = run(command, *argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"{command}: configuration from {default}"
    result = run(command, *argv, "-VERBOSE_TYPE", "NORMAL", cwd=tmp_path)
    assert result.returncode == 0 and "configuration from" not in result.stderr, result.stderr
    result = run(command, *argv, "-VERBOSE_TYPE", "QUIET", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
