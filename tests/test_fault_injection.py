"""Fault injection with real processes: collisions, re-runs, bad lists, duplicates, signals.

Every test runs the installed commands as separate processes (``python -m maximask.cli``
or a small launcher that slows one step down so that a signal lands inside it), then
checks what a user would: exit codes, one line per problem, the checksums of every input,
and that no partial or stale file is left anywhere.
"""
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from astropy.io import fits

from maximask.simulation.synthetic import make_field

#: Runs a command with one step slowed down: MAXIMASK_TEST_PAUSE is "write" (the output is
#: left half written, then the process waits) or "inference" (every network call is
#: repeated a few times); the file MAXIMASK_TEST_MARK is created when that step is reached.
LAUNCHER = r"""
import os, sys, time
step, mark = os.environ["MAXIMASK_TEST_PAUSE"], os.environ["MAXIMASK_TEST_MARK"]
if step == "write":
    from astropy.io import fits
    original = fits.HDUList.writeto
    def writeto(self, name, *args, **kwargs):
        original(self, name, *args, **kwargs)
        os.truncate(name, os.path.getsize(name) // 2)   # a write in progress
        open(mark, "w").close()
        time.sleep(120)
    fits.HDUList.writeto = writeto
else:
    from maximask import engine
    original = engine.Network.__call__
    def call(self, *args, **kwargs):
        open(mark, "w").close()
        for _ in range(3):
            out = original(self, *args, **kwargs)
        return out
    engine.Network.__call__ = call
from maximask.cli import main_mask, main_track
main = main_track if sys.argv[1] == "maxitrack" else main_mask
sys.exit(main(sys.argv[2:]))
"""


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def digests(folder):
    return {name: digest(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))}


def write_image(path, seed=1, shape=(230, 250)):
    fits.PrimaryHDU(make_field(shape, seed=seed, saturated=1)).writeto(path)
    return str(path)


#: The installed package, never the source folder (which has no compiled kernels).
ENV = dict(os.environ, PYTHONSAFEPATH="1")


def run(*argv, cwd=None, command="maximask"):
    code = (f"import sys; from maximask.cli import main_mask, main_track; "
            f"sys.exit({'main_track' if command == 'maxitrack' else 'main_mask'}(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=600)


def lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


# ------------------------------------------------------------------ outputs and inputs

def test_output_named_like_another_input_is_refused_whatever_overwrite(tmp_path):
    a = write_image(tmp_path / "a.fits", 1)
    b = write_image(tmp_path / "a_b.fits", 2)
    before = digests(tmp_path)
    result = run(a, b, "-OUTPUT_SUFFIX", "_b.fits", "-OVERWRITE", "Y")
    assert result.returncode == 1
    assert lines(result.stderr)[0].startswith(f"maximask: {a}: its output {b} is an input of this run")
    after = digests(tmp_path)
    assert {k: after[k] for k in before} == before          # a_b.fits untouched
    assert sorted(after) == ["a.fits", "a_b.fits", "a_b_b.fits"]  # only a_b.fits was masked


def test_maxitrack_output_name_may_not_be_an_input(tmp_path):
    image = write_image(tmp_path / "x.fits", shape=(400, 400))
    before = digest(image)
    result = run(image, "-OUTPUT_NAME", image, command="maxitrack")
    assert result.returncode == 2
    assert result.stderr == f"maxitrack: OUTPUT_NAME {image}: is one of the inputs; it is never written over\n"
    assert digest(image) == before and os.listdir(tmp_path) == ["x.fits"]


def test_two_inputs_with_one_output_name(tmp_path):
    a = write_image(tmp_path / "x.fits", 1)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(make_field((230, 250), seed=2))]).writeto(
        tmp_path / "x.fits.fz")
    result = run(a, tmp_path / "x.fits.fz", "-VERBOSE_TYPE", "QUIET")
    assert result.returncode == 1
    assert result.stderr == (f"maximask: {tmp_path / 'x.fits.fz'}: its output {tmp_path / 'x.mask.fits'} "
                             f"is also the output of {a}; not processed\n")
    with fits.open(tmp_path / "x.mask.fits") as hdul:  # the first input's mask, complete
        assert hdul[0].data.shape == (230, 250)


def test_rerun_over_a_folder_skips_last_runs_outputs(tmp_path):
    for seed in (1, 2):
        write_image(tmp_path / f"f{seed}.fits", seed)
    inputs = digests(tmp_path)
    first = run(*sorted(str(p) for p in tmp_path.glob("*.fits")), "-OVERWRITE", "Y")
    assert first.returncode == 0, first.stderr
    masks = {k: v for k, v in digests(tmp_path).items() if k not in inputs}
    assert sorted(masks) == ["f1.mask.fits", "f2.mask.fits"]
    # the shell's *.fits now also names the masks: they are skipped, the images re-masked
    second = run(*sorted(str(p) for p in tmp_path.glob("*.fits")), "-OVERWRITE", "Y")
    assert second.returncode == 0, second.stderr
    notes = [line for line in lines(second.stderr) if "skipped" in line]
    assert notes == [f"maximask: {tmp_path / n}: skipped: a maximask output, not an image to process"
                     for n in ("f1.mask.fits", "f2.mask.fits")]
    assert sorted(os.listdir(tmp_path)) == ["f1.fits", "f1.mask.fits", "f2.fits", "f2.mask.fits"]
    for name in masks:  # the masks were written again, with the same data
        with fits.open(tmp_path / name) as hdul:
            assert hdul[0].header["MM_OTYPE"] == "FLAGS"
    assert {k: digest(tmp_path / k) for k in inputs} == inputs
    # a directory argument never took outputs; given alone, an output is a note, exit 0
    alone = run(tmp_path / "f1.mask.fits")
    assert alone.returncode == 0 and "skipped: a maximask output" in alone.stderr


def test_list_with_a_missing_entry_processes_the_others(tmp_path):
    a = write_image(tmp_path / "a.fits", 1)
    b = write_image(tmp_path / "b.fits", 2)
    listing = tmp_path / "night.list"
    listing.write_text(f"{a}\n{tmp_path / 'gone.fits'}\n{b}\n")
    result = run(listing, "-VERBOSE_TYPE", "QUIET")
    assert result.returncode == 1
    assert result.stderr == (f"maximask: {tmp_path / 'gone.fits'} (listed in {listing} line 2): "
                             "no such file or directory\n")
    assert (tmp_path / "a.mask.fits").exists() and (tmp_path / "b.mask.fits").exists()
    at = run(f"@{listing}", "-VERBOSE_TYPE", "QUIET", "-OVERWRITE", "Y")
    assert at.returncode == 1 and at.stderr.count("\n") == 1


def test_the_same_file_twice_is_processed_once(tmp_path):
    write_image(tmp_path / "x.fits")
    result = run("x.fits", "./x.fits", str(tmp_path / "x.fits"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lines(result.stderr) == ["maximask: x.fits -> x.mask.fits"]
    assert sorted(os.listdir(tmp_path)) == ["x.fits", "x.mask.fits"]


# ------------------------------------------------------------------ signals

def start(tmp_path, step, *argv, command="maximask"):
    mark = tmp_path / "reached"
    env = dict(ENV, MAXIMASK_TEST_PAUSE=step, MAXIMASK_TEST_MARK=str(mark))
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, command, *map(str, argv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not mark.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never reached {step}: {proc.communicate()[1]}")
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("step", ["inference", "write"])
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGKILL, -9, None)])
def test_signal_leaves_inputs_intact_and_nothing_partial(tmp_path, step, sig, code, said):
    data = tmp_path / "data"
    data.mkdir()
    write_image(data / "a.fits", 1)
    write_image(data / "b.fits", 2)
    before = digests(data)
    proc = start(tmp_path, step, data / "a.fits", data / "b.fits")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    if said:
        assert lines(err)[-1] == f"maximask: {said}: no partial output left"
    left = sorted(set(os.listdir(data)) - set(before))
    if sig == signal.SIGKILL and step == "write":  # a half-written temporary, under a hidden name
        assert len(left) == 1 and left[0].startswith(".a.mask.fits.maximask-tmp-")
    else:
        assert left == []
    assert {k: digest(data / k) for k in before} == before
    # the next run in that directory completes and leaves no stale temporary behind
    again = run(data / "a.fits", data / "b.fits", "-VERBOSE_TYPE", "QUIET")
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(data)) == ["a.fits", "a.mask.fits", "b.fits", "b.mask.fits"]
    with fits.open(data / "a.mask.fits", checksum=True) as hdul:
        assert hdul[0].data.shape == (230, 250)


def test_sigterm_while_maxitrack_writes_its_scores(tmp_path):
    write_image(tmp_path / "t.fits", shape=(400, 400))
    before = digest(tmp_path / "t.fits")
    proc = start(tmp_path, "inference", "t.fits", "-OUTPUT_NAME", "scores.txt", command="maxitrack")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and lines(err)[-1] == "maxitrack: terminated: no partial output left"
    assert sorted(os.listdir(tmp_path)) == ["reached", "t.fits"]
    assert digest(tmp_path / "t.fits") == before


def _dead_pid():
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is free now
    return dead.pid


def test_cleanup_never_removes_a_users_files_whatever_their_names(tmp_path):
    """Issue 18: hidden files and folders named like temporaries of dead processes, but not
    provably ours (no mark, a wrong mark, or a user's file inside), are all left alone."""
    from maximask.outputs import TEMPORARY_MARK, _HOST

    data = tmp_path / "data"
    data.mkdir()
    write_image(data / "good.fits", 1)
    pid = _dead_pid()
    legacy_dir = data / f".mydata.tmp-{_HOST}-{pid}"       # the case, old naming
    legacy_dir.mkdir()
    (legacy_dir / "thesis.txt").write_text("precious")
    (data / f".notes.tmp-{_HOST}-{pid}").write_text("notes")
    forged_file = data / f".notes.maximask-tmp-{_HOST}-{pid}"  # our naming, a user's file
    forged_file.write_text("notes")
    unmarked = data / f".thesis.maximask-tmp-{_HOST}-{pid}"    # our naming, no mark
    unmarked.mkdir()
    (unmarked / "payload").write_text("precious")
    wrong_mark = data / f".book.maximask-tmp-{_HOST}-{pid}"    # a mark we did not write
    wrong_mark.mkdir()
    (wrong_mark / TEMPORARY_MARK).write_text("my own notes\n")
    (wrong_mark / "payload").write_text("precious")
    extra = data / f".x.maximask-tmp-{_HOST}-{pid}"            # our mark, and a user's file too
    extra.mkdir()
    (extra / TEMPORARY_MARK).write_text(f"maximask temporary output folder\nhost {_HOST}\npid {pid}\n")
    (extra / "chapter1.tex").write_text("precious")
    ours = data / f".y.mask.fits.maximask-tmp-{_HOST}-{pid}"   # what a killed run leaves
    ours.mkdir()
    (ours / TEMPORARY_MARK).write_text(f"maximask temporary output folder\nhost {_HOST}\npid {pid}\n")
    (ours / "payload").write_bytes(b"SIMPLE  =  half written")
    before = {p: (p.read_bytes() if p.is_file() else sorted(os.listdir(p)))
              for p in data.rglob("*") if p != ours and ours not in p.parents}

    result = run(data / "good.fits", "-VERBOSE_TYPE", "QUIET")
    assert result.returncode == 0, result.stderr
    assert not ours.exists()  # provably ours: removed
    after = {p: (p.read_bytes() if p.is_file() else sorted(os.listdir(p)))
             for p in data.rglob("*") if p.name != "good.mask.fits"}
    assert after == before
