"""The maxieval command: outputs, their round trip through the samples, determinism, errors."""
import hashlib
import io
import json
import os
import sys
from contextlib import redirect_stderr

import numpy as np
import pytest
from astropy.io import fits

from maximask import Masker
from maximask.classes import ABBREVIATIONS, DEFAULT_PRIORS, DEFAULT_THRESHOLDS, NCLASSES
from maximask.cli import main_eval
from maximask.config import dump, parse_text
from maximask.keywords import EVAL_KEYWORDS, MASK_KEYWORDS
from maximask.evaluation.metrics import ScoreHistograms, evaluate
from maximask.evaluation.pipeline import flagged, input_key, sample_classes, sample_windows
from maximask.simulation import inject

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A real DECam z-band cutout (HDU 1 of a MEF, 251x245; see tests/data/PROVENANCE.md).
DECAM = os.path.join(ROOT, "tests", "data", "decam_ooi_z_N2.fits")
FAST = ["-NSAMPLES", "2", "-SAMPLE_SIZE", "160", "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "20000"]


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(capsys, *argv):
    code = main_eval([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_default_eval_file_is_what_dash_d_prints(capsys):
    code, out, _ = run(capsys, "-d")
    assert code == 0
    with open(os.path.join(ROOT, "config", "default.eval")) as f:
        assert f.read() == out
    assert out == dump(EVAL_KEYWORDS) and "LOGIT_BINS" not in out
    code, out, _ = run(capsys, "-dd")
    assert code == 0 and "LOGIT_BINS" in out and "TILE_MARGIN" in out


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One run with every output: figures, samples, FULL verbosity."""
    folder = tmp_path_factory.mktemp("full")
    samples = folder / "samples"
    samples.mkdir()
    before = digest(DECAM)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main_eval([DECAM, "-NSAMPLES", "3", "-SAMPLE_SIZE", "160", "-SEED", "8",
                          "-SAMPLES_DIR", str(samples), "-OUTPUT_NAME", str(folder / "ev"),
                          "-SATUR_LEVEL", "40000", "-SEEING_FWHM", "3.5",
                          "-LOGIT_BINS", "20000", "-VERBOSE_TYPE", "FULL"])
    return dict(code=code, err=err.getvalue(), folder=folder, samples=samples, before=before)


def test_full_run_writes_every_output_and_leaves_the_input_alone(full_run):
    assert full_run["code"] == 0, full_run["err"]
    folder = full_run["folder"]
    for name in ("ev.txt", "ev.json", "ev_roc.png", "ev_mcc.png", "ev_sample.png"):
        assert (folder / name).stat().st_size > 0, name
    for name in ("ev_roc.png", "ev_mcc.png", "ev_sample.png"):
        assert open(folder / name, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert digest(DECAM) == full_run["before"]
    assert sorted(os.listdir(full_run["samples"])) == [f"decam_ooi_z_N2_1_s000{i}.fits" for i in range(3)]
    assert not [n for n in os.listdir(folder) if n.startswith(".")]  # no temporary file left


def test_full_verbosity_says_where_the_time_went(full_run):
    err = full_run["err"]
    for step in ("MaxiMask on the clean inputs", "injection", "MaxiMask on the samples",
                 "histograms", "metrics and EM priors", "figures", "total"):
        assert f"time: {step}" in err, step
    assert "peak RSS" in err


def test_text_report_table_and_lines_to_paste(full_run):
    text = (full_run["folder"] / "ev.txt").read_text()
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("CLASS"))
    rows = [line.split() for line in lines[header + 1:header + 1 + NCLASSES]]
    assert [r[0] for r in rows] == list(ABBREVIATIONS)
    assert "3 samples (160 px, SEED 8) from 1 clean image" in text
    # the two last lines are valid maximask configuration, with 14 values each
    pasted = parse_text(MASK_KEYWORDS, "\n".join(lines[-2:]))
    assert set(pasted) == {"PRIORS", "THRESHOLDS"}
    assert len(pasted["PRIORS"]) == len(pasted["THRESHOLDS"]) == NCLASSES
    assert "PRIORS" in full_run["err"] and "THRESHOLDS" in full_run["err"]


def test_report_agrees_with_a_recomputation_from_the_written_samples(full_run):
    """Read the samples back, re-run MaxiMask and the metrics: the JSON report must agree."""
    report = json.loads((full_run["folder"] / "ev.json").read_text())
    assert report["samples"] == 3 and report["images"][0]["name"].endswith("[1]")
    clean = fits.getdata(DECAM, 1).astype(np.float32)
    masker = Masker(OUTPUT_TYPE="PROBA", PRIOR_CORRECTION=False, CLASSES=ABBREVIATIONS, VERBOSE_TYPE="QUIET")
    ignore = flagged(masker.run(clean), DEFAULT_PRIORS, DEFAULT_THRESHOLDS)
    windows = sample_windows(clean.shape, 160, 3, 8, input_key(report["images"][0]["name"]))
    hist = ScoreHistograms(bins=20000)
    for s, (y0, x0, y1, x1) in enumerate(windows):
        with fits.open(full_run["samples"] / f"decam_ooi_z_N2_1_s000{s}.fits") as hdul:
            image, truth = hdul[0].data, hdul["TRUTH"].data.astype(bool)
            assert (hdul[0].header["MV_Y0"], hdul[0].header["MV_X0"]) == (y0, x0)
            # the sample is exactly the simulator's output for its seed and window
            header = hdul[0].header
            assert header["MV_CLASS"] == ",".join(sample_classes(ABBREVIATIONS[:12], 0.5, header["MV_SEED"]))
            again, again_truth = inject(clean[y0:y1, x0:x1], classes=header["MV_CLASS"], seed=header["MV_SEED"],
                                        saturation=40000.0, fwhm=3.5, trail_style="real")
            np.testing.assert_array_equal(image, again)
            np.testing.assert_array_equal(truth, again_truth)
        hist.add(masker.run(image), truth, ignore[y0:y1, x0:x1])
    assert report["excluded_pixels"] == hist.excluded > 0  # the real exposure has flagged pixels
    assert report["scored_pixels"] + report["excluded_pixels"] == 3 * 160 * 160
    for row, mine in zip(report["classes"], evaluate(hist, DEFAULT_PRIORS, DEFAULT_THRESHOLDS)):
        assert row["positives"] == mine.positives
        for key in ("auc", "tpr", "fpr", "mcc", "best_mcc"):
            want, got = getattr(mine, key), row[key]
            assert (got is None and np.isnan(want)) or got == pytest.approx(want, abs=1e-6), (row["abbr"], key)


def test_same_seed_same_report_other_seed_another(tmp_path, capsys):
    reports = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        code, _, err = run(capsys, DECAM, *FAST, "-SEED", seed, "-OUTPUT_NAME", tmp_path / name,
                           "-VERBOSE_TYPE", "QUIET")
        assert code == 0 and err == ""
        reports.append(json.loads((tmp_path / f"{name}.json").read_text()))
    assert reports[0]["classes"] == reports[1]["classes"]
    assert reports[0]["classes"] != reports[2]["classes"]
    assert not (tmp_path / "a_roc.png").exists()


def test_without_matplotlib_tables_are_written_and_figures_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, _, err = run(capsys, DECAM, "-NSAMPLES", "1", "-SAMPLE_SIZE", "128", "-LOGIT_BINS", "1000",
                       "-OUTPUT_NAME", tmp_path / "ev")
    assert code == 0
    assert sorted(os.listdir(tmp_path)) == ["ev.json", "ev.txt"]
    assert [line for line in err.splitlines() if "figures skipped" in line] == [
        "maxieval: figures skipped: matplotlib is not installed (pip install 'maximask[plot]')"]


def test_existing_output_is_kept_without_overwrite(tmp_path, capsys):
    (tmp_path / "ev.txt").write_text("keep me")
    code, _, err = run(capsys, DECAM, *FAST, "-OUTPUT_NAME", tmp_path / "ev")
    assert code == 2  # found before any work: nothing done (issue 18's one exit rule)
    assert err.strip().splitlines()[-1] == (f"maxieval: {tmp_path / 'ev.txt'}: output file already exists; "
                                            "set -OVERWRITE Y to replace it")
    assert (tmp_path / "ev.txt").read_text() == "keep me" and not (tmp_path / "ev.json").exists()


@pytest.mark.parametrize("argv,code,message", [
    (["-NSAMPLES", "0"], 2, "maxieval: command line: NSAMPLES: integer >= 1 expected, got \"0\""),
    (["-CHECKPLOT_TYPE", "NONE,ROC"], 2,
     "maxieval: CHECKPLOT_TYPE: NONE cannot be combined with other plots, got NONE,ROC"),
    (["-INJECT_CLASSES", "CR,BG"], 2, "maxieval: command line: INJECT_CLASSES: list of 1 to 12 distinct "
     "values among CR,HCL,DCL,HP,DP,P,TRL,FR,NEB,SAT,SP,OV expected, got \"BG\" (item 2) in \"CR,BG\""),
    (["-SAMPLES_DIR", "/nonexistent/dir"], 2, "maxieval: /nonexistent/dir: SAMPLES_DIR is not a directory"),
])
def test_bad_configuration_gives_one_line(tmp_path, capsys, argv, code, message):
    got, out, err = run(capsys, DECAM, "-OUTPUT_NAME", tmp_path / "ev", *argv)
    assert got == code
    assert err.strip().splitlines()[-1] == message
    assert os.listdir(tmp_path) == []


def test_bad_inputs_fail_alone(tmp_path, capsys):
    notfits = tmp_path / "notes.fits"
    notfits.write_text("not a FITS file")
    code, _, err = run(capsys, tmp_path / "missing.fits", notfits, DECAM, *FAST,
                       "-OUTPUT_NAME", tmp_path / "ev", "-VERBOSE_TYPE", "QUIET")
    assert code == 1
    said = [line for line in err.splitlines() if "missing.fits" in line or "notes.fits" in line]
    assert said == [f"maxieval: {tmp_path / 'missing.fits'}: no such file or directory",
                    f"maxieval: {notfits}: not a readable FITS file: no SIMPLE card found"]
    assert json.loads((tmp_path / "ev.json").read_text())["samples"] == 2  # the good input ran


def test_nothing_to_evaluate_writes_nothing(tmp_path, capsys):
    zeros = tmp_path / "zeros.fits"
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(zeros)
    code, _, err = run(capsys, zeros, *FAST, "-OUTPUT_NAME", tmp_path / "ev")
    assert code == 1 and "all pixels are zero" in err
    assert sorted(os.listdir(tmp_path)) == ["zeros.fits"]


def test_cosmic_rays_cut_from_the_users_dark_frames(tmp_path, capsys):
    rng = np.random.default_rng(5)
    dark = rng.normal(100.0, 3.0, (300, 280)).astype(np.float32)
    dark[rng.integers(0, 300, 40), rng.integers(0, 280, 40)] += 500.0  # hits
    fits.PrimaryHDU(dark).writeto(tmp_path / "dark.fits")
    (tmp_path / "s").mkdir()
    code, _, err = run(capsys, DECAM, *FAST, "-NSAMPLES", "1", "-INJECT_CLASSES", "CR",
                       "-DARK_FRAMES", tmp_path / "dark.fits", "-SAMPLES_DIR", tmp_path / "s",
                       "-OUTPUT_NAME", tmp_path / "ev", "-VERBOSE_TYPE", "QUIET")
    assert code == 0, err
    with fits.open(tmp_path / "s" / "decam_ooi_z_N2_1_s0000.fits") as hdul:
        (y0, x0), seed = (hdul[0].header["MV_Y0"], hdul[0].header["MV_X0"]), hdul[0].header["MV_SEED"]
        clean = fits.getdata(DECAM, 1)[y0:y0 + 160, x0:x0 + 160]
        image, truth = inject(clean, classes="CR", seed=seed, darks=[dark], trail_style="real")
        np.testing.assert_array_equal(hdul[0].data, image)
        np.testing.assert_array_equal(hdul["TRUTH"].data.astype(bool), truth)
        assert truth[0].any()
    # a dark smaller than the samples of one input: one line naming it; that input counts
    # for nothing in the report, the other input (small enough) is evaluated
    small, crop = tmp_path / "small.fits", tmp_path / "crop.fits"
    fits.PrimaryHDU(dark[:100, :100]).writeto(small)
    fits.PrimaryHDU(fits.getdata(DECAM, 1)[:90, :90]).writeto(crop)
    code, _, err = run(capsys, DECAM, crop, *FAST, "-INJECT_CLASSES", "CR", "-DARK_FRAMES", small,
                       "-OUTPUT_NAME", tmp_path / "ev2", "-VERBOSE_TYPE", "QUIET")
    assert code == 1
    assert err.strip() == (f"maxieval: {DECAM}[1]: cannot simulate samples: dark frames must be "
                           "2-D and at least 160x160, got (100, 100)")
    report = json.loads((tmp_path / "ev2.json").read_text())
    assert [i["name"] for i in report["images"]] == [f"{crop}[0]"]
    assert report["scored_pixels"] + report["excluded_pixels"] == 2 * 90 * 90
