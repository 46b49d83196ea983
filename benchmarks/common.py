"""Helpers the benchmark scripts share: measured child commands and clean synthetic fields.

Imported as a module by the scripts of this folder (``from common import Launcher``): Python
puts a script's own folder first on ``sys.path``, so run them as ``python benchmarks/NAME.py``.
"""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
from astropy.io import fits

from maximask.simulation.synthetic import clean_field

__all__ = ["Launcher", "field_parameters", "write_fields"]


# Runs one command per input line (JSON [cmd, cwd]) and answers [seconds, peak RSS in kB,
# exit code, stderr tail]. Commands are started from this small process, not from the
# benchmark's: Linux carries a process's peak RSS across exec, and a child spawned from
# the benchmark (which holds the fields, and TensorFlow when the reference is checked)
# would start with the benchmark's RSS as its peak.
LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    cmd, cwd = json.loads(line)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps([time.perf_counter() - start, usage.ru_maxrss,
                      os.waitstatus_to_exitcode(status), err[-2000:]]), flush=True)
"""


class Launcher:
    """Wall time (s) and peak RSS (MB) of commands, each measured on that child alone."""

    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen([sys.executable, "-c", LAUNCHER], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, cmd, cwd):
        self.proc.stdin.write(json.dumps([cmd, cwd]) + "\n")
        self.proc.stdin.flush()
        seconds, rss_kb, code, err = json.loads(self.proc.stdout.readline())
        if code:
            raise RuntimeError(f"{' '.join(cmd)} failed ({code}): {err}")
        return seconds, rss_kb / 1024


def field_parameters(rng):
    """The drawn conditions of one clean field."""
    return dict(fwhm=float(rng.uniform(1.5, 6.0)), star_density=float(10 ** rng.uniform(2.5, 3.5)),
                galaxy_density=float(10 ** rng.uniform(2.0, 3.0)), sky=float(10 ** rng.uniform(2.0, 3.7)),
                read_noise=float(rng.uniform(3.0, 10.0)), gain=float(rng.uniform(1.0, 4.0)),
                gradient=float(rng.uniform(0.0, 0.3)))


def write_fields(folder, count, size, seed):
    """Write ``count`` clean ``size`` x ``size`` fields, conditions drawn from ``seed``, as FOLDER/fieldNNNN.fits."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        p = field_parameters(rng)
        data = clean_field((size, size), seed=seed * 100_000 + i, **p)
        header = fits.Header([(f"SIM_{k[:4].upper()}", round(v, 4), k) for k, v in p.items()])
        fits.PrimaryHDU(data, header).writeto(os.path.join(folder, f"field{i:04d}.fits"), overwrite=True)


def digest(path):
    """Hash of every HDU's data bytes and header cards but MM_DATE."""
    h = hashlib.sha256()
    with fits.open(path) as hdul:
        for hdu in hdul:
            h.update("".join(c.image for c in hdu.header.cards if c.keyword != "MM_DATE").encode())
            if hdu.data is not None:
                h.update(str(hdu.data.dtype).encode() + np.ascontiguousarray(hdu.data).tobytes())
    return h.hexdigest()
