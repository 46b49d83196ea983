"""Print a digest of every command's outputs on the shipped example, date cards aside.

Run before and after a change that must not change behaviour (a refactor) and compare:

    python tools/output_digests.py > before.txt   # on the old commit, installed
    python tools/output_digests.py > after.txt    # on the new one
    diff before.txt after.txt

Covers maximask FLAGS/MASKS/PROBA/WEIGHT (and a check-image), maxitrack, maxieval's JSON and
text report and a 3-step maxitrain model directory. Needs the package installed with the
`train` extra (PyTorch).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from astropy.io import fits

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "field.fits.fz")
RAW = os.path.join(HERE, "..", "examples", "ccdproc_a8280271.fits.fz")
#: Cards and keys whose values are dates, durations or paths of the run.
VOLATILE = {"DATE", "MM_DATE", "CHECKSUM", "DATASUM", "created", "date", "seconds", "step_seconds",
            "elapsed_s", "wall_seconds", "duration"}


def fits_digest(path):
    h = hashlib.sha256()
    with fits.open(path) as hdul:
        for hdu in hdul:
            for card in hdu.header.cards:
                if card.keyword not in VOLATILE:
                    h.update(str(card).encode())
            if hdu.data is not None and hasattr(hdu.data, "tobytes"):
                h.update(hdu.data.tobytes())
    return h.hexdigest()[:16]


def json_digest(path):
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if k not in VOLATILE}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    with open(path) as f:
        text = json.dumps(clean(json.load(f)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def text_digest(path):
    with open(path) as f:
        lines = [line for line in f if " UTC" not in line and "created" not in line]
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]


def digest(path):
    if path.endswith((".fits", ".fz")):
        return fits_digest(path)
    if path.endswith(".json"):
        return json_digest(path)
    if path.endswith((".txt", ".out", ".mask", ".1")):
        return text_digest(path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def run(*argv, cwd):
    proc = subprocess.run([*argv, "-VERBOSE_TYPE", "QUIET"], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")


def main():
    work = tempfile.mkdtemp(prefix="maximask-digests-")
    try:
        for src in (EXAMPLE, RAW):
            shutil.copy(src, work)
        field, raw = "field.fits.fz", "ccdproc_a8280271.fits.fz"
        for kind in ("FLAGS", "MASKS", "PROBA", "WEIGHT"):
            run("maximask", field, raw, "-OUTPUT_TYPE", kind, "-OUTPUT_SUFFIX", f".{kind.lower()}.fits",
                "-NTHREADS", "1", cwd=work)
        run("maximask", field, "-OUTPUT_SUFFIX", ".chk.fits", "-CHECKIMAGE_TYPE", "CLEANED,BACKGROUND",
            "-CHECKIMAGE_NAME", "cleaned.fits,back.fits", "-NTHREADS", "1", cwd=work)
        run("maxitrack", field, raw, "-NTHREADS", "1", cwd=work)
        run("maxieval", field, "-NSAMPLES", "2", "-SAMPLE_SIZE", "200", "-CHECKPLOT_TYPE", "NONE",
            "-NTHREADS", "1", cwd=work)
        run("maxitrain", field, raw, "-STEPS", "3", "-SAMPLE_SIZE", "64", "-NSAMPLES", "8", "-NVALID", "4",
            "-BATCH_SIZE", "2", "-VALID_STEP", "2", "-INJECT_CLASSES", "CR,HCL,TRL,SAT", "-VALID_FRAC", "0.5",
            "-DEVICE", "CPU", "-NTHREADS", "1", "-OUTPUT_NETWORK", "tiny.model", cwd=work)
        for root, _, files in sorted(os.walk(work)):
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, work)
                if rel in (field, raw) or name.endswith(".ckpt"):
                    continue
                print(f"{rel:40s} {digest(path)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
