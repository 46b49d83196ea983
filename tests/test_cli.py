"""The maximask command: AstrOmatic conventions, outputs, and bad input."""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from maximask.cli import main_mask
from maximask.config import dump
from maximask.keywords import MASK_KEYWORDS
from maximask.simulation.synthetic import make_field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_field(seed=1, shape=(220, 260)):
    return make_field(shape, seed=seed, saturated=1)


def write(path, data, **kw):
    fits.PrimaryHDU(data, **kw).writeto(path)
    return str(path)


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(capsys, *argv):
    code = main_mask([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_default_mask_file_is_what_dash_d_prints(capsys):
    code, out, _ = run(capsys, "-d")
    assert code == 0
    with open(os.path.join(ROOT, "config", "default.mask")) as f:
        assert f.read() == out
    assert out == dump(MASK_KEYWORDS)
    assert "TILE_SIZE" not in out
    code, out, _ = run(capsys, "-dd")
    assert code == 0 and "TILE_SIZE" in out and "TILE_MARGIN" in out


def test_version_and_usage(capsys):
    code, out, _ = run(capsys, "-v")
    assert code == 0 and out.startswith("maximask version ")
    code, out, _ = run(capsys, "-h")
    assert code == 0 and "SYNTAX: maximask" in out
    code, _, err = run(capsys)
    assert code == 2 and "SYNTAX" in err


def test_flags_output_and_metadata(tmp_path, capsys):
    image = write(tmp_path / "a.fits", small_field())
    before = digest(image)
    code, _, err = run(capsys, image)
    assert code == 0, err
    assert "configuration from" not in err  # said with FULL only: an error run stays one line
    assert digest(image) == before  # the input is never modified
    with fits.open(tmp_path / "a.mask.fits") as hdul:
        h = hdul[0].header
        assert h["BITPIX"] == 16 and "BZERO" not in h and hdul[0].data.shape == (220, 260)
        assert h["MM_OTYPE"] == "FLAGS" and h["MP_CR"] == 0 and h["MP_SAT"] == 9
        assert h["SAT_TH"] == pytest.approx(0.81) and h["CR_PR"] == pytest.approx(0.0005)
        assert "MP_BG" not in h and "MP_BBG" not in h
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary left


@pytest.mark.parametrize("otype, dtype, planes", [("MASKS", np.uint8, 3), ("PROBA", np.float32, 3),
                                                   ("WEIGHT", np.uint8, None)])
def test_output_types(tmp_path, capsys, otype, dtype, planes):
    image = write(tmp_path / "b.fits", small_field(2))
    code, _, err = run(capsys, image, "-OUTPUT_TYPE", otype.lower(), "-CLASSES", "SAT,CR,HP",
                       "-VERBOSE_TYPE", "QUIET")
    assert code == 0 and err == ""
    with fits.open(tmp_path / "b.mask.fits") as hdul:
        data, h = hdul[0].data, hdul[0].header
    assert data.dtype == np.dtype(dtype).newbyteorder(">") or data.dtype == dtype
    assert data.shape == ((planes,) if planes else ()) + (220, 260)
    if planes:  # planes in class-table order, whatever order CLASSES gave
        assert (h["CR_DIM"], h["HP_DIM"], h["SAT_DIM"]) == (0, 1, 2)
    if otype == "WEIGHT":
        assert set(np.unique(data)) <= {0, 1} and data.mean() > 0.9


def test_config_file_and_command_line_precedence(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.mask").write_text("OUTPUT_TYPE MASKS\nCLASSES CR\nOUTPUT_SUFFIX .m.fits\n")
    image = write(tmp_path / "c.fits", small_field(3))
    code, _, err = run(capsys, image, "-CLASSES", "SAT,CR", "-VERBOSE_TYPE", "FULL")
    assert code == 0 and "configuration from default.mask" in err
    with fits.open(tmp_path / "c.m.fits") as hdul:
        assert hdul[0].data.shape == (2, 220, 260)  # MASKS from the file, classes from the line


def test_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    image = write(tmp_path / "d.fits", small_field(4))
    output = tmp_path / "d.mask.fits"
    output.write_bytes(b"precious")
    code, _, err = run(capsys, image)
    assert code == 1 and "OVERWRITE" in err and output.read_bytes() == b"precious"
    code, _, err = run(capsys, image, "-OVERWRITE", "Y")
    assert code == 0
    with fits.open(output) as hdul:
        assert hdul[0].data.shape == (220, 260)


def test_bad_keyword_is_one_line_with_a_suggestion(tmp_path, capsys):
    image = write(tmp_path / "e.fits", small_field())
    code, _, err = run(capsys, image, "-OUTPUT_TYP", "FLAGS")
    assert code == 2 and err.count("\n") == 1 and "OUTPUT_TYPE" in err and "OUTPUT_TYP " in err
    code, _, err = run(capsys, image, "-OUTPUT_TYPE", "JPEG")
    assert code == 2 and err.count("\n") == 1 and "JPEG" in err and "FLAGS" in err
    code, _, err = run(capsys, image, "-THRESHOLDS", "0.5,0.5")
    assert code == 2 and "THRESHOLDS" in err
    assert not (tmp_path / "e.mask.fits").exists()


@pytest.mark.parametrize("make, message", [
    (lambda p: str(p / "missing.fits"), "no such file"),
    (lambda p: (p / "text.fits").write_text("not a FITS file " * 400) and str(p / "text.fits"), "FITS"),
    (lambda p: write(p / "zero.fits", np.zeros((100, 120), np.float32)), "zero"),
    (lambda p: write(p / "nan.fits", np.full((100, 120), np.nan, np.float32)), "NaN"),
    (lambda p: fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("a", "E", array=np.ones(3))])]).writeto(p / "table.fits") or str(p / "table.fits"),
     "no image HDU"),
    (lambda p: (p / "emptydir").mkdir() or str(p / "emptydir"), "emptydir"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys, make, message):
    arg = make(tmp_path)
    code, _, err = run(capsys, arg, "-VERBOSE_TYPE", "QUIET")
    assert code == 1
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not [f for f in os.listdir(tmp_path) if "mask" in f]


def test_truncated_file_fails_cleanly(tmp_path, capsys):
    image = write(tmp_path / "t.fits", small_field())
    data = open(image, "rb").read()
    open(image, "wb").write(data[: len(data) // 2])
    code, _, err = run(capsys, image, "-VERBOSE_TYPE", "QUIET")
    assert code == 1 and "t.fits" in err and err.count("\n") == 1
    assert not (tmp_path / "t.mask.fits").exists()


def test_one_bad_input_does_not_stop_the_others(tmp_path, capsys):
    good = write(tmp_path / "g.fits", small_field(5))
    code, _, err = run(capsys, tmp_path / "nope.fits", good, "-VERBOSE_TYPE", "QUIET")
    assert code == 1 and "nope.fits" in err
    assert (tmp_path / "g.mask.fits").exists()


def test_unwritable_output_dir(tmp_path, capsys):
    image = write(tmp_path / "u.fits", small_field())
    code, _, err = run(capsys, image, "-OUTPUT_DIR", tmp_path / "no" / "such" / "dir")
    assert code == 2 and "OUTPUT_DIR" in err and err.count("\n") == 1


def test_output_dir_mef_cube_and_nan_pixels(tmp_path, capsys):
    field = small_field(6)
    holed = field.copy()
    holed[10:20, 30:40] = np.nan
    path = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(holed, name="SCI"),
                  fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(2))]),
                  fits.ImageHDU(np.stack([field, field[::-1]]), name="CUBE")]).writeto(path)
    (tmp_path / "out").mkdir()
    code, _, err = run(capsys, path, "-OUTPUT_DIR", tmp_path / "out", "-OUTPUT_TYPE", "WEIGHT")
    assert code == 0, err
    assert "100 NaN" in err
    with fits.open(tmp_path / "out" / "mef.mask.fits") as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "", "CUBE"]
        assert hdul[0].data is None
        assert (hdul[1].data[10:20, 30:40] == 0).all()  # no data, no weight
        assert hdul[2].data is None and hdul[2].header["MM_EMPTY"] == "BINTABLE"  # the table's place
        assert hdul[3].data.shape == (2, 220, 260)


def test_hdu_selection_names_the_output(tmp_path, capsys):
    path = tmp_path / "sel.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(small_field(7)), fits.ImageHDU(small_field(8))]).writeto(path)
    code, _, err = run(capsys, f"{path}[2]", "-VERBOSE_TYPE", "QUIET")
    assert code == 0, err
    with fits.open(tmp_path / "sel.mask2.fits") as hdul:
        assert len(hdul) == 1 and hdul[0].data.shape == (220, 260)


def test_installed_command_runs_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "maximask.cli"]
    result = subprocess.run(cmd + [str(tmp_path / "missing.fits")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("maximask: ")
    assert "Traceback" not in result.stderr


def test_all_nan_or_zero_input_is_one_line_saying_no_output(tmp_path, capsys):
    zero = write(tmp_path / "zero.fits", np.zeros((100, 120), np.float32))
    code, _, err = run(capsys, zero)
    assert code == 1
    assert err == f"maximask: {zero}[0]: all pixels are zero: nothing to mask, no output written\n"
    mef = tmp_path / "mef.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.full((50, 60), np.nan, np.float32)),
                  fits.ImageHDU(small_field())]).writeto(mef)
    code, _, err = run(capsys, mef)
    assert code == 0
    assert f"{mef}[1]: all pixels are NaN or infinite: its output HDU is left at 0" in err


def test_unavailable_device_is_said_once_before_any_file(tmp_path, capsys, monkeypatch):
    import maximask.fitsio

    monkeypatch.setattr(maximask.fitsio, "open_image", None)  # reading a file would crash
    a, b = write(tmp_path / "a.fits", small_field()), write(tmp_path / "b.fits", small_field(2))
    code, _, err = run(capsys, a, b, "-DEVICE", "CUDA")
    assert code == 2 and err.count("\n") == 1 and err.startswith("maximask: device CUDA unavailable")


@pytest.mark.parametrize("where", ["/proc", "/proc/sys"])
def test_unwritable_output_dir_is_found_before_any_file(tmp_path, capsys, monkeypatch, where):
    from maximask.masker import Masker

    monkeypatch.setattr(Masker, "run_file", None)  # masking a file would crash
    image = write(tmp_path / "p.fits", small_field())
    code, _, err = run(capsys, image, "-OUTPUT_DIR", where)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"maximask: OUTPUT_DIR {where}: cannot create files in this directory")


def test_log_has_plain_lines_and_no_bars(tmp_path):
    """stderr to a file: one plain line per file (and per HDU with FULL), no bar fragments."""
    a, b = write(tmp_path / "a.fits", small_field()), write(tmp_path / "b.fits", small_field(2))
    env = dict(os.environ, PYTHONSAFEPATH="1")
    with open(tmp_path / "log", "w") as log:
        code = subprocess.run([sys.executable, "-m", "maximask.cli", a, b, "-VERBOSE_TYPE", "FULL"],
                              stderr=log, env=env).returncode
    text = (tmp_path / "log").read_text()
    assert code == 0 and "\r" not in text and "\x1b" not in text and "\n\n" not in text
    got = text.splitlines()
    assert got[0] == "maximask: configuration from internal defaults"
    assert f"maximask: {a} -> {tmp_path / 'a.mask.fits'}" in got
    assert f"maximask: {b} -> {tmp_path / 'b.mask.fits'}" in got
    assert sum(line.startswith(f"maximask: {a}[0]: 0.06 Mpix in ") for line in got) == 1


def screen_of(output, width=100):
    """The lines a terminal shows after `output` (tqdm's \\r, \\n and cursor-up only)."""
    rows, row, col = [[]], 0, 0
    i = 0
    while i < len(output):
        if output.startswith("\x1b[A", i):
            row, i = max(row - 1, 0), i + 3
            continue
        ch = output[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            rows += [[] for _ in range(row + 1 - len(rows))]
        else:
            line = rows[row]
            line += [" "] * (col + 1 - len(line))
            line[col] = ch
            col += 1
    return ["".join(r).rstrip() for r in rows]


def on_terminal(args, cwd, width=100):
    """Run a command with its stderr on a pseudo-terminal `width` columns wide; return
    (exit code, what it wrote there)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    env = dict(os.environ, PYTHONSAFEPATH="1")
    proc = subprocess.Popen(args, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return proc.wait(), b"".join(chunks).decode()


def test_terminal_gets_bars_and_no_stray_blank_line(tmp_path):
    write(tmp_path / "a.fits", small_field())
    write(tmp_path / "b.fits", small_field(2, shape=(700, 650)))  # several batches: two bars
    code, output = on_terminal([sys.executable, "-m", "maximask.cli", "a.fits", "b.fits"], tmp_path)
    assert code == 0
    assert "b.fits[0]: " in output and "batch" in output  # the HDU's bar was drawn
    screen = screen_of(output)
    while screen and screen[-1] == "":
        screen.pop()
    assert screen[:2] == ["maximask: a.fits -> a.mask.fits", "maximask: b.fits -> b.mask.fits"]
    assert len(screen) == 3 and screen[2].startswith("files: 100%|")  # no blank line, no leftover


def test_help_lists_keywords_and_the_man_page(capsys):
    code, out, _ = run(capsys, "-h")
    assert code == 0 and "man maximask" in out and "-dd" in out
    for kw in MASK_KEYWORDS:
        assert any(line.split()[:2] == [kw.name, kw.format(kw.default) or '""']
                   for line in out.splitlines() if line.startswith("  ")), kw.name
    from maximask.cli import main_track

    assert main_track(["-h"]) == 0
    out = capsys.readouterr().out
    assert "-dd" not in out and "OUTPUT_NAME" in out and "man maxitrack" in out


def test_man_pages_are_installed_where_man_looks():
    from importlib import metadata

    files = {str(f).replace(os.sep, "/") for f in metadata.files("maximask")}
    for page in ("maximask.1", "maxitrack.1", "maxieval.1", "maxitrain.1"):
        installed = [f for f in files if f.endswith(f"share/man/man1/{page}")]
        assert installed, page
        path = metadata.distribution("maximask").locate_file(installed[0])
        assert open(path).read() == open(os.path.join(ROOT, "man", page)).read()


def test_docs_say_planes_are_0_based_in_bit_order_and_quote_hdu_selectors():
    readme = open(os.path.join(ROOT, "README.md")).read()
    man = open(os.path.join(ROOT, "man", "maximask.1")).read()
    assert "maximask 'mosaic.fits[3]'" in readme and "maximask mosaic.fits[3]" not in readme
    for text in (readme, man):
        assert "0-based" in text and "bit order" in text


@pytest.mark.parametrize("command, argv, keyword", [
    ("maximask", ["-OUTPUT_DIR", "missing"], "OUTPUT_DIR missing"),
    ("maxitrack", ["-OUTPUT_NAME", "missing/scores.txt"], "OUTPUT_NAME missing/scores.txt"),
    ("maxieval", ["-SAMPLES_DIR", "a_file"], "a_file"),
    ("maxitrain", ["-OUTPUT_NETWORK", "a_file"], "OUTPUT_NETWORK a_file"),
])
def test_every_command_says_a_preflight_output_problem_in_one_line_exit_2(tmp_path, monkeypatch, capsys,
                                                                        command, argv, keyword):
    """The one pre-flight rule (cli.preflight): a run-wide output that cannot be written is
    one line on stderr, exit 2, and nothing is written."""
    from maximask import cli

    monkeypatch.chdir(tmp_path)
    fits.PrimaryHDU(make_field((300, 300), seed=3)).writeto("a.fits")
    fits.PrimaryHDU(make_field((300, 300), seed=4)).writeto("b.fits")
    (tmp_path / "a_file").write_text("a user's file\n")
    before = sorted(os.listdir(tmp_path))
    main = {"maximask": cli.main_mask, "maxitrack": cli.main_track, "maxieval": cli.main_eval,
            "maxitrain": cli.main_train}[command]
    assert main(["a.fits", "b.fits", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{command}: ") and keyword in err, err
    assert sorted(os.listdir(tmp_path)) == before
    assert (tmp_path / "a_file").read_text() == "a user's file\n"
