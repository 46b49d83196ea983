"""Issue 18, the promises a run makes: one line for a damaged checkpoint, signals that stop
inference at once and leave what they say, one exit-status rule for the four commands,
fine-tuned thresholds that move only the classes trained, values to paste with what they
rest on.

Real processes and real signals: a small launcher (as in test_fault_injection) records every
ONNX Runtime session run in a log file ("start", then "end" when it returned its output or
"stopped" when it failed inside ONNX Runtime), so that a test can tell whether the process
exited inside the batch or the run it was computing, by counting runs rather than by
timing them.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits

from conftest import write_clean_fields
from maximask.simulation.synthetic import clean_field, make_field

#: Runs one command's main(argv) with every session run logged to H18_RUNS; H18_PIXELS, if
#: set, replaces engine.CPU_MAX_PIXELS (the most pixels given to one session run).
LAUNCHER = r"""
import os, sys
from maximask import cli, engine
runs = os.environ["H18_RUNS"]
if os.environ.get("H18_PIXELS"):
    engine.CPU_MAX_PIXELS = int(os.environ["H18_PIXELS"])
def write(word):
    with open(runs, "a") as f:
        f.write(word + "\n")
def logged(original):
    def run(self, *args):
        write("start")
        try:
            out = original(self, *args)
        except Exception:  # the session run itself failed: ended inside ONNX Runtime
            write("stopped")
            raise
        write("end")  # (a signal's exception raised once the run returned writes nothing)
        return out
    return run
engine.Network._run = logged(engine.Network._run)
engine.Network._run_bound = logged(engine.Network._run_bound)
sys.exit(getattr(cli, sys.argv[1])(sys.argv[2:]))
"""

ENV = dict(os.environ, PYTHONSAFEPATH="1")  # the installed package, not the source folder


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def start(tmp_path, main, *argv, pixels=None, cwd=None):
    """The command `main` (a function name of maximask.cli) running under the launcher."""
    runs = tmp_path / "runs.log"
    env = dict(ENV, H18_RUNS=str(runs), H18_PIXELS=str(pixels or ""))
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, main, *map(str, argv)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd or tmp_path)
    return proc, runs


def wait_for(proc, condition, what):
    deadline = time.monotonic() + 300
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never reached {what}: {proc.communicate()[1]}")
        time.sleep(0.01)


def count(runs, word):
    return runs.read_text().split().count(word) if runs.exists() else 0


# ------------------------------------------------------------------ a traceback

@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    return write_clean_fields(tmp_path_factory.mktemp("fields"))


TINY = ["-SAMPLE_SIZE", "64", "-NSAMPLES", "8", "-NVALID", "4", "-BATCH_SIZE", "2", "-VALID_STEP", "2",
        "-INJECT_CLASSES", "CR,HCL,TRL,SAT", "-VERBOSE_TYPE", "QUIET"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_checkpoint_is_one_line_and_exit_2(fields, tmp_path, damage):
    import torch

    ckpt = tmp_path / "m.ckpt"
    if damage == "garbage":
        ckpt.write_bytes(b"\x80\x04not a pickle at all" * 10)
    else:  # a real torch file cut in the middle, as a full disk or a kill while copying leaves it
        torch.save({"step": 1, "network": {"w": torch.zeros(1000)}}, ckpt)
        os.truncate(ckpt, ckpt.stat().st_size // 2)
    before = ckpt.read_bytes()
    result = subprocess.run(["maxitrain", *fields, *TINY, "-STEPS", "1", "-OUTPUT_NETWORK", tmp_path / "m"],
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr == (f"maxitrain: checkpoint {ckpt}: cannot be read: not a maxitrain checkpoint "
                             "(damaged or truncated?): remove it or set another CHECKPOINT_NAME\n")
    assert ckpt.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["m.ckpt"]


# ------------------------------------------------------------------ signals

def big_image(path, shape=(1024, 1024)):
    fits.PrimaryHDU(make_field(shape, seed=3, saturated=1)).writeto(path)
    return path


@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_a_signal_does_not_wait_for_the_batches_under_way(tmp_path, sig, code, said):
    """Two batches of 32 tiles, one session run per tile (as a loaded machine's small
    max_pixels would have it): the signal lands after the first run; the process exits
    without computing the rest of the batches it was in (before: all 64 runs)."""
    image = big_image(tmp_path / "big.fits")
    proc, runs = start(tmp_path, "main_mask", image, "-TILE_SIZE", "128", "-TILE_MARGIN", "0",
                       "-BATCH_SIZE", "32", "-NTHREADS", "2", pixels=128 * 128)
    wait_for(proc, lambda: count(runs, "end") >= 1, "the first run")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code
    assert lines(err)[-1] == f"maximask: {said}: no partial output left"
    assert count(runs, "end") < 32  # neither batch was finished
    assert sorted(os.listdir(tmp_path)) == ["big.fits", "runs.log"]


@pytest.mark.parametrize("main, argv", [
    ("main_mask", ["-TILE_SIZE", "128", "-TILE_MARGIN", "0", "-BATCH_SIZE", "24"]),
    ("main_track", ["-BATCH_SIZE", "9", "-OUTPUT_NAME", "scores.txt"]),
])
def test_a_signal_ends_the_session_run_under_way(tmp_path, main, argv):
    """One session run per batch, one thread (maxitrack runs it from the main thread):
    SIGTERM lands inside the run, which ONNX Runtime ends there ("stopped"); before, the
    run went to its end ("end" in a worker thread; in the main thread the signal's
    exception came once the run had returned, and no run was "stopped")."""
    image = big_image(tmp_path / "big.fits", (1200, 1200))
    proc, runs = start(tmp_path, main, image, *argv, "-NTHREADS", "1", pixels=1 << 30)
    wait_for(proc, lambda: count(runs, "start") >= 1, "a session run")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143
    assert lines(err)[-1].endswith(": terminated: no partial output left")
    assert count(runs, "start") == 1 and count(runs, "stopped") == 1 and count(runs, "end") == 0
    assert sorted(os.listdir(tmp_path)) == ["big.fits", "runs.log"]


def test_a_terminated_maxieval_leaves_no_sample(tmp_path):
    """SIGTERM once samples are written: this run's sample files go, a user's file in
    SAMPLES_DIR stays, and the next run completes (before: 'output file already exists')."""
    data = tmp_path / "data"
    data.mkdir()
    fits.PrimaryHDU(clean_field((400, 400), seed=2)).writeto(data / "clean.fits")
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "notes.txt").write_text("mine")
    argv = [data / "clean.fits", "-NSAMPLES", "40", "-SAMPLE_SIZE", "128", "-SAMPLES_DIR", samples,
            "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "20000", "-OUTPUT_NAME", tmp_path / "ev"]
    proc, runs = start(tmp_path, "main_eval", *argv)
    wait_for(proc, lambda: len(os.listdir(samples)) >= 3, "two samples written")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143
    assert lines(err)[-1] == "maxieval: terminated: no partial output left"
    assert os.listdir(samples) == ["notes.txt"] and (samples / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["data", "runs.log", "samples"]
    again = subprocess.run(["maxieval", *map(str, argv), "-NSAMPLES", "2", "-VERBOSE_TYPE", "QUIET"], env=ENV,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(samples)) == ["clean_0_s0000.fits", "clean_0_s0001.fits", "notes.txt"]


def test_an_interrupted_maxitrain_says_its_checkpoint_is_kept(fields, tmp_path):
    ckpt, model = tmp_path / "m.ckpt", tmp_path / "m"
    proc = subprocess.Popen(["maxitrain", *fields, *TINY, "-STEPS", "400", "-CHECKPOINT_STEP", "1",
                             "-OUTPUT_NETWORK", model], env=ENV, stderr=subprocess.PIPE, text=True)
    wait_for(proc, ckpt.exists, "the first checkpoint")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert lines(err)[-1] == (f"maxitrain: interrupted: checkpoint {ckpt} kept: run the same command again "
                              "to resume from it")
    assert ckpt.exists() and not model.exists()


# ------------------------------------------------------------------ exit status

def maxieval(*argv):
    return subprocess.run(["maxieval", *map(str, argv), "-NSAMPLES", "1", "-SAMPLE_SIZE", "64",
                           "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "20000", "-VERBOSE_TYPE", "QUIET"],
                          env=ENV, capture_output=True, text=True, timeout=600)


def test_maxieval_preflight_problems_exit_2_with_nothing_done(tmp_path):
    image = tmp_path / "clean.fits"
    fits.PrimaryHDU(clean_field((200, 200), seed=1)).writeto(image)
    (tmp_path / "afile").write_text("x")
    for argv, message in [
        (["-DARK_FRAMES", tmp_path / "nodark.fits"], f"{tmp_path / 'nodark.fits'}: no such file"),
        (["-SAMPLES_DIR", tmp_path / "afile"], f"{tmp_path / 'afile'}: SAMPLES_DIR is not a directory"),
    ]:
        result = maxieval(image, "-OUTPUT_NAME", tmp_path / "ev", *argv)
        assert result.returncode == 2 and lines(result.stderr) == [f"maxieval: {message}"]
        assert sorted(os.listdir(tmp_path)) == ["afile", "clean.fits"]
    (tmp_path / "ev.json").write_text("{}")
    result = maxieval(image, "-OUTPUT_NAME", tmp_path / "ev")
    assert result.returncode == 2
    assert result.stderr == f"maxieval: {tmp_path / 'ev.json'}: output file already exists; set -OVERWRITE Y to replace it\n"


def test_maxieval_never_replaces_a_sample_of_the_same_run(tmp_path):
    """Two inputs of one name in two folders: the second's samples would replace the
    first's (OVERWRITE Y) — it is not processed, exit 1, the first's samples stay."""
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / folder).mkdir()
        fits.PrimaryHDU(clean_field((200, 200), seed=seed)).writeto(tmp_path / folder / "x.fits")
    (tmp_path / "s").mkdir()
    result = maxieval(tmp_path / "a" / "x.fits", tmp_path / "b" / "x.fits", "-SAMPLES_DIR", tmp_path / "s",
                      "-OVERWRITE", "Y", "-OUTPUT_NAME", tmp_path / "ev")
    assert result.returncode == 1
    assert lines(result.stderr) == [f"maxieval: {tmp_path / 'b' / 'x.fits'}[0]: its sample "
                                    f"{tmp_path / 's' / 'x_0_s0000.fits'} is also a sample of an earlier input "
                                    "(inputs of one name in two folders?); not processed"]
    assert fits.getheader(tmp_path / "s" / "x_0_s0000.fits")["MV_INPUT"].endswith("/a/x.fits[0]")
    assert [i["name"] for i in json.loads((tmp_path / "ev.json").read_text())["images"]] == \
        [f"{tmp_path / 'a' / 'x.fits'}[0]"]


def test_maximask_existing_output_and_collisions_exit_1_others_done(tmp_path):
    """Per-input problems found before the work (an output that exists without OVERWRITE,
    two inputs with one output) exit 1, the other inputs masked: 0 only when every input
    got its output."""
    for name, seed in (("a", 1), ("b", 2)):
        fits.PrimaryHDU(make_field((230, 250), seed=seed)).writeto(tmp_path / f"{name}.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(make_field((230, 250), seed=4))]).writeto(
        tmp_path / "b.fits.fz")
    (tmp_path / "a.mask.fits").write_bytes(b"precious")
    result = subprocess.run(["maximask", "a.fits", "b.fits", "b.fits.fz", "-VERBOSE_TYPE", "QUIET"], cwd=tmp_path,
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert lines(result.stderr) == [
        "maximask: b.fits.fz: its output b.mask.fits is also the output of b.fits; not processed",
        "maximask: a.mask.fits: output file already exists; set -OVERWRITE Y to replace it"]
    assert (tmp_path / "a.mask.fits").read_bytes() == b"precious"
    assert fits.getdata(tmp_path / "b.mask.fits").shape == (230, 250)


def test_one_function_decides_every_exit_status():
    from maximask.cli import Preflight, Terminated, exit_status
    from maximask.config import ConfigError
    from maximask.engine import EngineError
    from maximask.errors import InputError

    assert exit_status(0) == 0 and exit_status(3) == 1
    assert exit_status(exc=ConfigError("x")) == exit_status(exc=EngineError("x")) == 2
    assert exit_status(exc=Preflight("x")) == 2
    assert exit_status(exc=InputError("f", "x")) == exit_status(exc=OSError("x")) == 1
    assert exit_status(exc=KeyboardInterrupt()) == 130 and exit_status(exc=Terminated()) == 143
    assert np.all([exit_status(exc=e) != 0 for e in (ConfigError("x"), InputError("f", "x"))])


# ------------------------------------------------------------------ fine-tuned thresholds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_focused_fine_tune_keeps_the_other_classes_published_thresholds_and_priors(fields, tmp_path):
    """FOCUS_CLASSES TRL: model.json's priors and thresholds of every other class are the
    published ones (before: all 14 re-estimated on 4 validation samples), and maximask
    -NETWORK says on stderr which thresholds it took from the model."""
    from maximask.classes import ABBREVIATIONS, DEFAULT_THRESHOLDS, TRAINING_PRIORS

    model = tmp_path / "trl.model"
    result = subprocess.run(["maxitrain", *fields, *TINY, "-FOCUS_CLASSES", "TRL", "-STEPS", "2",
                             "-OUTPUT_NETWORK", model, "-VERBOSE_TYPE", "NORMAL"], env=ENV, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    said = lines(result.stderr)
    # the plan, and that validation (2 passes over 4 samples, tables) outweighs 2 steps of 2 samples
    assert "maxitrain: 2 training step(s) of 2 sample(s); validation every 2 step(s) and at the end on 4 sample(s)" \
        in said
    assert "maxitrain: most of this run is validation (2 validation(s) of 4 samples for 4 training samples): " \
        "raise STEPS or VALID_STEP, or lower NVALID" in said
    assert "maxitrain: priors and thresholds re-estimated for TRL (FOCUS_CLASSES); the other classes keep the " \
        "starting network's" in said
    info = json.loads((model / "model.json").read_text())
    trl = ABBREVIATIONS.index("TRL")
    for k, abbr in enumerate(ABBREVIATIONS):
        if k != trl:
            assert info["thresholds"][k] == DEFAULT_THRESHOLDS[k], abbr
            assert info["training_priors"][k] == TRAINING_PRIORS[k], abbr
    assert info["training_priors"][trl] != TRAINING_PRIORS[trl]  # re-estimated
    moved = [a for a, t, d in zip(ABBREVIATIONS, info["thresholds"], DEFAULT_THRESHOLDS) if t != d]
    assert moved in ([], ["TRL"])
    example = os.path.join(ROOT, "examples", "field.fits.fz")
    masked = subprocess.run(["maximask", example, "-NETWORK", model, "-OUTPUT_DIR", tmp_path, "-CLASSES", "CR"],
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert masked.returncode == 0, masked.stderr
    said = [line for line in lines(masked.stderr) if "thresholds" in line]
    assert said == [f"maximask: thresholds from {model / 'model.json'}: "
                    + ("TRL differ from the published ones, the other classes keep theirs" if moved
                       else "the published ones for every class")]


# ------------------------------------------------------------------ how much the pasted values rest on

def test_maxitrain_with_one_field_says_two_are_needed(fields, tmp_path):
    result = subprocess.run(["maxitrain", fields[0], *TINY, "-OUTPUT_NETWORK", tmp_path / "m"], env=ENV,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 2
    assert result.stderr == ("maxitrain: 1 clean image given (each image HDU or cube plane counts as one): at least "
                             "2 are needed, one kept apart for validation (VALID_FRAC of them, at least one): add "
                             "another clean field\n")


def test_maxieval_says_what_the_values_to_paste_rest_on(tmp_path):
    """Two samples: the lines to paste come after one saying the samples, clean pixels and
    positive pixels behind them, and a caution; they stay the report's last two lines."""
    from maximask.config import parse_text
    from maximask.keywords import MASK_KEYWORDS

    image = tmp_path / "clean.fits"
    fits.PrimaryHDU(clean_field((200, 200), seed=1)).writeto(image)
    result = subprocess.run(["maxieval", image, "-NSAMPLES", "2", "-SAMPLE_SIZE", "128", "-INJECT_CLASSES", "CR,TRL",
                             "-CHECKPLOT_TYPE", "NONE", "-LOGIT_BINS", "20000", "-OUTPUT_NAME", tmp_path / "ev"],
                            env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "ev.json").read_text())
    positives = report["paste"]["positives"]
    assert set(positives) - {"BBG", "BG"} <= {"CR", "TRL"} and positives and report["paste"]["clean_pixels"] == 200 * 200
    basis = ("# from 2 sample(s) of 1 clean image(s) (40000 clean pixels for PRIORS); positive pixels behind each "
             f"threshold: {', '.join(f'{a} {n}' for a, n in positives.items())} (the other classes keep the "
             "threshold in use)")
    said = lines(result.stderr)
    assert f"maxieval: {basis}" in said
    caution = [line for line in said if "caution" in line]
    assert len(caution) == 1 and caution[0].startswith("maxieval: # caution: only 2 sample(s)")
    text = (tmp_path / "ev.txt").read_text().splitlines()
    assert text[-4] == basis and text[-3] == caution[0][len("maxieval: "):]
    assert set(parse_text(MASK_KEYWORDS, "\n".join(text[-2:]))) == {"PRIORS", "THRESHOLDS"}


def test_enough_samples_and_positives_give_no_caution():
    from maximask.evaluation.report import FEW_POSITIVES, FEW_SAMPLES, paste_lines

    report = {"samples": FEW_SAMPLES, "images": [{}] * 3,
              "paste": {"PRIORS": [0.01] * 14, "THRESHOLDS": [0.5] * 14, "clean_pixels": 10 ** 6,
                        "positives": {"CR": FEW_POSITIVES, "SAT": 5 * FEW_POSITIVES}}}
    got = paste_lines(report)
    assert len(got) == 3 and not any("caution" in line for line in got)
    assert got[0].startswith(f"# from {FEW_SAMPLES} sample(s) of 3 clean image(s) (1000000 clean pixels")
    report["paste"]["positives"]["CR"] = FEW_POSITIVES - 1
    assert paste_lines(report)[1] == (f"# caution: fewer than {FEW_POSITIVES} positive pixels for CR: these values "
                                      "are uncertain; evaluate more samples (NSAMPLES) or clean images before using "
                                      "them")


def test_a_maxieval_output_that_appears_during_the_run_is_kept_exit_1(tmp_path, monkeypatch, capsys):
    """OVERWRITE N: a report made by someone else while the run computed is not replaced; the
    run fails while writing (exit 1), where before it silently replaced it (exit 0)."""
    from maximask.evaluation import report as report_module
    from maximask.cli import main_eval

    image = tmp_path / "clean.fits"
    fits.PrimaryHDU(clean_field((200, 200), seed=1)).writeto(image)
    original = report_module.build_report

    def build_report(evaluation):
        (tmp_path / "ev.txt").write_text("someone else's")
        return original(evaluation)

    monkeypatch.setattr(report_module, "build_report", build_report)
    code = main_eval([str(image), "-NSAMPLES", "1", "-SAMPLE_SIZE", "64", "-CHECKPLOT_TYPE", "NONE",
                      "-LOGIT_BINS", "20000", "-VERBOSE_TYPE", "QUIET", "-OUTPUT_NAME", str(tmp_path / "ev")])
    assert code == 1
    assert capsys.readouterr().err == (f"maxieval: {tmp_path / 'ev.txt'}: output file already exists; "
                                       "set -OVERWRITE Y to replace it\n")
    assert (tmp_path / "ev.txt").read_text() == "someone else's"
    assert sorted(os.listdir(tmp_path)) == ["clean.fits", "ev.txt"]
