#!/usr/bin/env python3
"""The host side of a maximask run, with the network replaced by a stand-in that returns at once.

What is left is what limits a fast GPU: reading, background, compression, tiling,
stitching, flags and writing, all through the real ``Masker.run_files`` (what the
``maximask`` command calls). The stand-in returns a preallocated all-zero (N, 14, h, w)
array per batch shape, so it costs nothing.

Workloads (float32 FITS written into a temporary folder, maximask.simulation.synthetic fields):
FILES files of 2048x2048, one 8192x8192 file (a 4x4 mosaic of 2048x2048 fields) and a
62-HDU MEF of 512x1024; each for every OUTPUT_TYPE of --types. Each is run in a fresh
child process per variant, interleaved, best of --repeat after a warm-up run:

* ``baseline``: the code of a git ref (--baseline, e.g. the commit before a change),
  built into a temporary folder (``git worktree`` + ``pip install --target``);
* ``depth 0``: this checkout with ``Masker.depth = 0`` (the sequential loop, kernels and
  reading as they are now);
* ``pipelined``: this checkout as it runs by default (maximask._host_pipeline).

Printed per row: Mpix/s of wall time, Mpix per CPU-second of the child (less sensitive to
other load on a shared machine), and whether the outputs are byte-identical to the
baseline's (data and every header card but MM_DATE). The load average is printed too.

    python benchmarks/bench_host.py --baseline e5a2f52
    python benchmarks/bench_host.py --baseline e5a2f52 --files 2 --sizes 2048 --mef-hdus 8 --repeat 1
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import digest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


# ----------------------------------------------------------------------------- child


def child(args):
    """Run one workload `--repeat` times (after a warm-up) in this process; print JSON."""
    if args.site:
        sys.path.insert(0, args.site)
    from maximask.masker import Masker

    class StandIn:
        """The MaxiMask network's stand-in: an all-zero (N, 14, h, w) batch, preallocated."""

        provider = "stand-in"
        workers = 1

        def __init__(self):
            self.zeros = {}

        def __call__(self, tiles, window=None):
            y0, x0, y1, x1 = window if window is not None else (0, 0) + tiles.shape[2:]
            key = (len(tiles), y1 - y0, x1 - x0)
            if key not in self.zeros:
                self.zeros[key] = np.zeros((key[0], 14, key[1], key[2]), np.float32)
            return self.zeros[key]

    stand_in = StandIn()

    class StandInMasker(Masker):
        @property
        def network(self):
            return stand_in

    masker = StandInMasker(output_type=args.type, output_dir=args.out, overwrite=True, verbose_type="QUIET")
    if args.depth is not None:
        masker.depth = args.depth

    def run():
        if hasattr(masker, "run_files"):
            outcomes = list(masker.run_files(args.inputs))
            bad = [o for _, o in outcomes if isinstance(o, BaseException)]
            if bad:
                raise bad[0]
        else:
            for path in args.inputs:
                masker.run_file(path)

    run()  # warm-up: imports, first allocations, page cache
    best = (float("inf"), float("inf"))
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    digests = [digest(os.path.join(args.out, os.path.basename(p).replace(".fits", ".mask.fits")))
               for p in args.inputs]
    print(json.dumps({"wall": best[0], "cpu": best[1], "digest": digests}))


# ----------------------------------------------------------------------------- parent


def make_inputs(folder, files, sizes, mef_hdus, mef_shape):
    """Write the workloads; returns [(name, [paths], Mpix)]."""
    from astropy.io import fits

    from maximask.simulation.synthetic import make_field

    fields = [make_field((2048, 2048), seed=k) for k in range(max(files, 4))]
    workloads = []
    for size in sizes:
        if size == 2048:
            paths = []
            for k in range(files):
                paths.append(os.path.join(folder, f"field{k:02d}.fits"))
                fits.PrimaryHDU(fields[k]).writeto(paths[-1])
            workloads.append((f"{files} files 2048x2048", paths, files * 2048 * 2048 / 1e6))
        else:
            n = -(-size // 2048)  # a mosaic of the fields, flipped so that no two blocks repeat
            blocks = [[fields[(i * n + j) % 4][:: 1 - 2 * ((i + j) % 2), :: 1 - 2 * (i % 2)] for j in range(n)]
                      for i in range(n)]
            image = np.ascontiguousarray(np.block(blocks)[:size, :size])
            path = os.path.join(folder, f"big{size}.fits")
            fits.PrimaryHDU(image).writeto(path)
            del image, blocks
            workloads.append((f"1 file {size}x{size}", [path], size * size / 1e6))
    if mef_hdus:
        path = os.path.join(folder, "exposure.fits")
        hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(make_field(mef_shape, seed=100 + k), name=f"CCD{k + 1}")
                                      for k in range(mef_hdus)]
        fits.HDUList(hdus).writeto(path)
        workloads.append((f"MEF {mef_hdus} x {mef_shape[0]}x{mef_shape[1]}", [path],
                          mef_hdus * mef_shape[0] * mef_shape[1] / 1e6))
    return workloads


def build_baseline(ref, folder):
    """Build the git ref's maximask into folder/site (a git worktree, pip install --target)."""
    tree, site = os.path.join(folder, "tree"), os.path.join(folder, "site")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", tree, ref], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q",
                        "--target", site, tree], check=True, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", tree], check=False)
    return site


def run_child(inputs, out, output_type, repeat, site=None, depth=None):
    os.makedirs(out, exist_ok=True)
    command = [sys.executable, os.path.abspath(__file__), "--child", "--type", output_type, "--out", out,
               "--repeat", str(repeat)]
    if site:
        command += ["--site", site]
    if depth is not None:
        command += ["--depth", str(depth)]
    env = dict(os.environ, PYTHONSAFEPATH="1")  # the installed package, not a source folder
    done = subprocess.run(command + ["--"] + inputs, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git ref of the code to compare with (built into a temporary folder)")
    parser.add_argument("--files", type=int, default=8, help="number of 2048x2048 files")
    parser.add_argument("--sizes", default="2048,8192", help="image sizes: 2048 = FILES files, others one file")
    parser.add_argument("--mef-hdus", type=int, default=62)
    parser.add_argument("--mef-shape", default="512x1024")
    parser.add_argument("--types", default="FLAGS,PROBA")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per variant (best kept), after a warm-up")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--site", help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--type", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import maximask

    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cores = len(os.sched_getaffinity(0))
    now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f"# {platform.node()} {platform.machine()}, {cores} cores; {now}; "
          f"maximask {maximask.__version__} at {commit}{' (modified)' if dirty else ''}; "
          f"baseline {args.baseline or 'none'}; load average {os.getloadavg()[0]:.1f}", flush=True)
    mef_shape = tuple(int(v) for v in args.mef_shape.lower().split("x"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_host-") as tmp:
        site = build_baseline(args.baseline, os.path.join(tmp, "baseline")) if args.baseline else None
        folder = os.path.join(tmp, "in")
        os.makedirs(folder)
        workloads = make_inputs(folder, args.files, sizes, args.mef_hdus, mef_shape)
        variants = ([("baseline " + args.baseline, dict(site=site))] if site else []) + \
            [("depth 0", dict(depth=0)), ("pipelined", dict())]
        for name, paths, mpix in workloads:
            for output_type in args.types.split(","):
                reference = None
                for label, options in variants:
                    out = os.path.join(tmp, "out", label.replace(" ", "_"))
                    got = run_child(paths, out, output_type, args.repeat, **options)
                    reference = reference or got["digest"]
                    same = "identical" if got["digest"] == reference else "DIFFERENT"
                    rows.append((name, output_type, label, got["wall"], mpix / got["wall"], mpix / got["cpu"], same))
                    print(rows[-1], flush=True)
                    for f in os.listdir(out):  # free the disk between variants
                        os.remove(os.path.join(out, f))
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    print()
    print("| workload | OUTPUT_TYPE | code | seconds | Mpix/s | Mpix per CPU-s | outputs |")
    print("|---|---|---|---|---|---|---|")
    for name, output_type, label, seconds, rate, per_cpu, same in rows:
        print(f"| {name} | {output_type} | {label} | {seconds:.2f} | {rate:.1f} | {per_cpu:.1f} | {same} |")


if __name__ == "__main__":
    main()
