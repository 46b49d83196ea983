#!/usr/bin/env python3
"""Scale-out on Dask: in-process beside a LocalCluster of 1 and 2 workers x 1 thread.

Two workloads, each written once as float32 FITS (maximask.simulation.synthetic fields): FILES files of
SIZE x SIZE pixels, and one MEF of MEF_HDUS image HDUs of MEF_SHAPE. For each workload:

* in-process: the ``maximask`` command (CLUSTER NONE, NTHREADS 0 = every core), timed with
  its peak RSS (measured on that child alone, see common.Launcher);
* on a LocalCluster of W worker processes x 1 Dask thread (W from --workers), through
  ``maximask.distributed.mask_files`` on a client of this process, each task running
  cores/W ONNX Runtime threads (what CLUSTER LOCAL picks): wall time of the run (the
  cluster already started; the first task of each worker opens its network), Mpix/s, the
  peak RSS of each worker process (VmHWM, which exec resets), and every output compared
  with the in-process one (data bytes and every header card but MM_DATE);
* the same runs with a no-op network stand-in (all probabilities 0: reading, background,
  compression, stitching, transfer and writing remain), in-process and on each cluster:
  (cluster wall x W - in-process wall) / tasks is the scheduling and transfer overhead
  per task.

    python benchmarks/bench_scale.py                         # 16 x 2048^2 and a 62 x 512x1024 MEF
    python benchmarks/bench_scale.py --files 4 --size 1024 --mef-hdus 8
"""
import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np
from astropy.io import fits

from common import Launcher, digest
from maximask.masker import Masker
from maximask.simulation.synthetic import make_field


class NoNetwork:
    """Stands in for the MaxiMask network: every probability 0, at no cost."""

    provider = "no-op stand-in"
    workers = 1

    def __call__(self, tiles, window):
        y0, x0, y1, x1 = window
        return np.zeros((len(tiles), 14, y1 - y0, x1 - x0), np.float32)


class NoNetworkMasker(Masker):
    """Masker whose network is the no-op stand-in (pickled by value to the workers)."""

    @property
    def network(self):
        return NoNetwork()


def peak_rss_mb():
    """This process's peak resident set (VmHWM, MB): reset by exec, unlike ru_maxrss."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make_inputs(folder, files, size, mef_hdus, mef_shape):
    """Write the two workloads; returns {name: [paths]}."""
    os.makedirs(folder)
    single = []
    for k in range(files):
        single.append(os.path.join(folder, f"field{k:02d}.fits"))
        fits.PrimaryHDU(make_field((size, size), seed=k)).writeto(single[-1])
    mef = os.path.join(folder, "exposure.fits")
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(make_field(mef_shape, seed=100 + k), name=f"CCD{k + 1}")
                                  for k in range(mef_hdus)]
    fits.HDUList(hdus).writeto(mef)
    return {f"{files} files {size}x{size}": single,
            f"MEF {mef_hdus} HDUs {mef_shape[0]}x{mef_shape[1]}": [mef]}


def mask_in_process(masker, paths):
    started = time.perf_counter()
    for path in paths:
        masker.run_file(path)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--mef-hdus", type=int, default=62)
    parser.add_argument("--mef-shape", default="512x1024", help="h x w of each MEF HDU")
    parser.add_argument("--workers", default="1,2", help="LocalCluster sizes (1 thread each)")
    parser.add_argument("--output-type", default="FLAGS")
    args = parser.parse_args()
    import distributed

    from maximask.distributed import mask_files, process_files
    from maximask.inputs import find_inputs

    command = shutil.which("maximask") or sys.exit("the maximask command is not installed")
    mef_shape = tuple(int(v) for v in args.mef_shape.lower().split("x"))
    cores = len(os.sched_getaffinity(0))
    run_command = Launcher()
    print(f"# {platform.machine()}, {cores} cores, {os.cpu_count()} CPUs; OUTPUT_TYPE {args.output_type}; "
          f"dask {distributed.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workloads = make_inputs(os.path.join(tmp, "in"), args.files, args.size, args.mef_hdus, mef_shape)
        rows = []
        for name, paths in workloads.items():
            units = [u for p in paths for u in Masker().plan_file(p).units]
            tasks, mpix = len(units), sum(u.pixels for u in units) / 1e6
            out = os.path.join(tmp, "ref")
            os.makedirs(out, exist_ok=True)
            seconds, rss = run_command([command, *paths, "-OUTPUT_DIR", out, "-OUTPUT_TYPE", args.output_type,
                                        "-VERBOSE_TYPE", "QUIET", "-OVERWRITE", "Y"], tmp)
            reference = [digest(os.path.join(out, os.path.basename(p).replace(".fits", ".mask.fits")))
                         for p in paths]
            noop_dir = os.path.join(tmp, "noop")
            os.makedirs(noop_dir, exist_ok=True)
            noop = NoNetworkMasker(output_type=args.output_type, output_dir=noop_dir, overwrite=True,
                                   verbose_type="QUIET")
            noop_in_process = min(mask_in_process(noop, paths) for _ in range(2))  # the second one warm
            rows.append((name, "in-process", "1 x all cores", seconds, mpix / seconds, f"{rss:.0f}",
                         noop_in_process, "-", "reference"))
            print(rows[-1], flush=True)
            for nworkers in (int(w) for w in args.workers.split(",")):
                cluster = distributed.LocalCluster(n_workers=nworkers, threads_per_worker=1, processes=True,
                                                   dashboard_address=":0", silence_logs=40)
                client = distributed.Client(cluster)
                try:
                    out = os.path.join(tmp, f"w{nworkers}")
                    os.makedirs(out, exist_ok=True)
                    keywords = dict(output_type=args.output_type, output_dir=out, overwrite=True,
                                    verbose_type="QUIET", nthreads=max(1, cores // nworkers))
                    started = time.perf_counter()
                    written = dict(mask_files(client, paths, **keywords))
                    seconds = time.perf_counter() - started
                    rss = sorted(client.run(peak_rss_mb).values())
                    same = [digest(written[p]) for p in paths] == reference
                    started = time.perf_counter()
                    noop = NoNetworkMasker(output_type=args.output_type, output_dir=noop_dir, overwrite=True,
                                           verbose_type="QUIET", nthreads=max(1, cores // nworkers))
                    list(process_files(client, noop, find_inputs(paths)))
                    noop_seconds = time.perf_counter() - started
                    overhead = (noop_seconds * nworkers - noop_in_process) / tasks
                    rows.append((name, "LocalCluster", f"{nworkers} x 1", seconds, mpix / seconds,
                                 "/".join(f"{r:.0f}" for r in rss), noop_seconds, f"{overhead * 1e3:.0f}",
                                 "identical" if same else "DIFFERENT"))
                    print(rows[-1], flush=True)
                finally:
                    client.close()
                    cluster.close()
            print(f"# {name}: {tasks} tasks, {mpix:.1f} Mpix", flush=True)
    print()
    print("| workload | run | workers x threads | seconds | Mpix/s | peak RSS MB (per worker) "
          "| no-op seconds | overhead ms/task | outputs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, run, shape, seconds, rate, rss, noop, overhead, same in rows:
        print(f"| {name} | {run} | {shape} | {seconds:.1f} | {rate:.3f} | {rss} | {noop:.1f} | {overhead} | {same} |")


if __name__ == "__main__":
    main()
