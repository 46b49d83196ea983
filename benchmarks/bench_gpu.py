#!/usr/bin/env python3
"""MaxiMask on a GPU: every setting that matters, in one call with a time limit, one table.

For an 8192x8192 image and a 2046x4094 HDU (float32 FITS, maximask.simulation.synthetic fields), each
configuration is timed end to end (``Masker.run_file``: reading, background, tiling, the
network, stitching, writing; FLAGS) and network-only (batches of interior tiles, Mpix/s
of image pixels produced), and its FLAGS on the 2046x4094 HDU are compared with the CPU's
(ONNX Runtime's CPU provider, fp32: per-class MCC, pixels that differ), its probabilities
on a few tiles with the CPU's (max |dp|).

Configurations (those this machine can run):

* ``ort``: ONNX Runtime, the CUDA provider (``maximask_cuda.onnx``, IO binding) with TF32
  on/off and cuDNN's convolution algorithm search (EXHAUSTIVE, HEURISTIC, DEFAULT); the
  CPU provider where there is no CUDA;
* ``torch``: the PyTorch twin (maximask.training.networks), on CUDA where available
  (channels-last, cudnn.benchmark, TF32 on/off, fp32 / bf16 / fp16 autocast, optionally
  ``torch.compile``), else on the CPU (fp32, bf16);
* per engine: BATCH_SIZE, windowed (the ONNX graph computes only the window each tile
  keeps) or whole tiles (the twin always computes whole tiles, then crops), and the host
  overlap (maximask._host_pipeline, ``Masker.depth``) on or off.

The last column says which configurations keep every class's MCC >= 0.999 against the
CPU; the fastest of them is marked as the default to choose.

    python benchmarks/bench_gpu.py --time-limit 480            # on the GPU machine
    python benchmarks/bench_gpu.py --quick --time-limit 300    # small sizes, CPU standing in
    python benchmarks/bench_gpu.py --configs torch,tf32=off    # some configurations only
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from agreement import mask_mcc  # noqa: E402
from maximask import kernels  # noqa: E402
from maximask.classes import ABBREVIATIONS  # noqa: E402
from maximask.engine import Network, model_path  # noqa: E402
from maximask.masker import Masker  # noqa: E402
from maximask.simulation.synthetic import make_field  # noqa: E402

FLAG_CLASSES = [k for k, a in enumerate(ABBREVIATIONS) if a not in ("BBG", "BG")]


# ----------------------------------------------------------------------------- engines


class TorchNetwork:
    """The PyTorch twin as a masker network: (N, 1, T, T) float32 -> (N, 14, h, w) of the window."""

    workers = 1

    def __init__(self, device, dtype="fp32", tf32=True, channels_last=True, compile_=False):
        import torch

        from maximask.training.networks import load_network

        self.torch, self.device = torch, torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
        self.module = load_network("maximask").to(self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = self.module.to(memory_format=self.memory_format)
        self.dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        self.forward = torch.compile(self.module) if compile_ else self.module
        self.provider = f"torch {device} {dtype}"

    def __call__(self, tiles, window=None):
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(tiles, np.float32)).to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                                                    enabled=self.dtype is not None):
            p = self.forward(x)
        if window is not None:
            y0, x0, y1, x1 = (int(v) for v in window)
            p = p[:, :, y0:y1, x0:x1]
        return p.float().contiguous().cpu().numpy()


class WholeTiles:
    """An ONNX network asked for whole tiles, cropped to the window here."""

    def __init__(self, network):
        self.network, self.workers, self.provider = network, network.workers, network.provider + " whole"

    def __call__(self, tiles, window=None):
        p = self.network(tiles, None)
        if window is not None:
            y0, x0, y1, x1 = (int(v) for v in window)
            p = np.ascontiguousarray(p[:, :, y0:y1, x0:x1])
        return p


def ort_network(device, tf32=None, algo=None):
    """maximask.engine.Network, its session rebuilt with the CUDA provider options asked."""
    import onnxruntime as ort

    network = Network(model_path("maximask", device), device=device, workers=0)
    if device == "CUDA" and (tf32 is not None or algo is not None):
        options = {}
        if tf32 is not None:
            options["use_tf32"] = "1" if tf32 else "0"
        if algo is not None:
            options["cudnn_conv_algo_search"] = algo
        so = ort.SessionOptions()
        so.log_severity_level = 3
        network.session = ort.InferenceSession(model_path("maximask", device), sess_options=so,
                                               providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"])
    return network


class FixedNetworkMasker(Masker):
    the_network = None

    @property
    def network(self):
        return self.the_network


# ----------------------------------------------------------------------------- measurements


def environment():
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
             f"{len(os.sched_getaffinity(0))} cores"]
    try:
        import onnxruntime as ort

        lines.append(f"onnxruntime {ort.__version__}, providers {', '.join(ort.get_available_providers())}")
    except ImportError:
        lines.append("onnxruntime: not importable")
    try:
        import torch

        cuda = torch.cuda.is_available()
        lines.append(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                     f"{torch.backends.cudnn.version() if cuda else '-'}, cuda available {cuda}; defaults: "
                     f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, "
                     f"matmul.allow_tf32 {torch.backends.cuda.matmul.allow_tf32}")
        if cuda:
            lines.append(f"device {torch.cuda.get_device_name(0)}")
    except ImportError:
        lines.append("torch: not importable")
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        lines.append(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")
    except (OSError, subprocess.TimeoutExpired):
        lines.append("nvidia-smi: not found (no NVIDIA driver)")
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    lines.append(f"CPU {model}")
    return lines


def write_inputs(folder, big, hdu_shape):
    """The two inputs: a big x big mosaic of 2048x2048 fields and one HDU of hdu_shape."""
    from astropy.io import fits

    side = min(big, 2048)
    fields = [make_field((side, side), seed=k) for k in range(4)]
    n = -(-big // side)
    blocks = [[fields[(i * n + j) % 4][:: 1 - 2 * ((i + j) % 2), :: 1 - 2 * (i % 2)] for j in range(n)]
              for i in range(n)]
    image = np.ascontiguousarray(np.block(blocks)[:big, :big])
    paths = {"image": os.path.join(folder, "image.fits"), "hdu": os.path.join(folder, "hdu.fits")}
    fits.PrimaryHDU(image).writeto(paths["image"])
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(make_field(hdu_shape, seed=7), name="CCD")]).writeto(paths["hdu"])
    return paths


def flags_of(network, path, batch, depth, out):
    """(seconds, FLAGS array) of one FLAGS run over `path` (all classes flagged)."""
    from astropy.io import fits

    masker = FixedNetworkMasker(output_type="FLAGS", output_dir=out, overwrite=True, verbose_type="QUIET",
                                batch_size=batch)
    masker.the_network = network
    masker.depth = depth
    started = time.perf_counter()
    written = masker.run_file(path)
    seconds = time.perf_counter() - started
    with fits.open(written) as hdul:
        data = next(h.data for h in hdul if h.data is not None)
    return seconds, np.asarray(data)


def network_rate(network, plane, batch, seconds=3.0):
    """Mpix/s of image pixels (interior windows) of the network alone, after a warm-up."""
    tile, margin = 400, 100
    origins = kernels.tile_origins(plane.shape[0], plane.shape[1], tile, margin)
    tiles = kernels.extract_tiles(plane, np.resize(origins, (batch, 2)), tile)
    window = (margin, margin, tile - margin, tile - margin)
    network(tiles, window)
    calls, started = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - started < seconds:
        network(tiles, window)
        calls += 1
    return calls * batch * (tile - 2 * margin) ** 2 / (time.perf_counter() - started) / 1e6


def tile_dp(network, reference, plane, ntiles=4):
    """max |dp| over a few whole tiles, against the reference network."""
    origins = kernels.tile_origins(plane.shape[0], plane.shape[1], 400, 100)
    pick = origins[np.linspace(0, len(origins) - 1, ntiles).astype(int)]
    tiles = kernels.extract_tiles(plane, pick, 400)
    return float(np.abs(network(tiles, None) - reference(tiles, None)).max())


def compare(flags, ref):
    """(min MCC over the classes, 'CLS=mcc ...' of those under 1, pixels that differ)."""
    mccs = {}
    for k in FLAG_CLASSES:
        a, b = (flags >> k) & 1 != 0, (ref >> k) & 1 != 0
        mccs[ABBREVIATIONS[k]] = 1.0 if not a.any() and not b.any() else mask_mcc(a, b)
    low = " ".join(f"{c}={v:.4f}" for c, v in mccs.items() if v < 1.0)
    return min(mccs.values()), low or "all 1", int(np.count_nonzero(flags != ref))


def configurations(quick, cuda_ort, cuda_torch, compile_):
    """(name, engine factory, batch sizes, depths)."""
    configs = []
    if cuda_ort:
        for tf32 in (False, True):
            for algo in ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"):
                configs.append((f"ort cuda tf32={'on' if tf32 else 'off'} algo={algo}",
                                lambda tf32=tf32, algo=algo: ort_network("CUDA", tf32, algo)))
        configs.append(("ort cuda whole tiles", lambda: WholeTiles(ort_network("CUDA", False, "EXHAUSTIVE"))))
    else:
        configs.append(("ort cpu windowed", lambda: ort_network("CPU")))
        configs.append(("ort cpu whole tiles", lambda: WholeTiles(ort_network("CPU"))))
    if cuda_torch:
        for dtype in ("fp32", "bf16", "fp16"):
            for tf32 in ((False, True) if dtype == "fp32" else (False,)):
                configs.append((f"torch cuda {dtype} tf32={'on' if tf32 else 'off'} channels-last",
                                lambda d=dtype, t=tf32: TorchNetwork("cuda", d, t)))
        configs.append(("torch cuda fp32 NCHW", lambda: TorchNetwork("cuda", "fp32", False, channels_last=False)))
        if compile_:
            configs.append(("torch cuda fp32 compiled", lambda: TorchNetwork("cuda", "fp32", False, compile_=True)))
    else:
        configs.append(("torch cpu fp32", lambda: TorchNetwork("cpu", "fp32")))
        if not quick:
            configs.append(("torch cpu bf16", lambda: TorchNetwork("cpu", "bf16")))
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", type=float, default=480, help="seconds; configurations left are skipped")
    parser.add_argument("--quick", action="store_true", help="small images (512x512, 256x510) for a CPU run")
    parser.add_argument("--configs", default="", help="run only the configurations whose name holds one of "
                                                      "these comma-separated words, e.g. torch,tf32=off")
    parser.add_argument("--batches", default=None, help="BATCH_SIZE values (default 8,32 on CUDA, 8 on the CPU)")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the twin (slow to start)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import onnxruntime as ort

    try:
        import torch

        cuda_torch = torch.cuda.is_available()
    except ImportError:
        torch, cuda_torch = None, False
    cuda_ort = "CUDAExecutionProvider" in ort.get_available_providers()
    big, hdu_shape = (512, (256, 510)) if args.quick else (8192, (2046, 4094))
    batches = [int(b) for b in (args.batches or ("8,32" if cuda_ort or cuda_torch else "8")).split(",")]
    for line in environment():
        print(f"# {line}", flush=True)
    now = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    print(f"# {now}; image {big}x{big}, HDU {hdu_shape[0]}x{hdu_shape[1]}; "
          f"time limit {args.time_limit:.0f} s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_gpu-") as tmp:
        paths = write_inputs(tmp, big, hdu_shape)
        out = os.path.join(tmp, "out")
        os.makedirs(out)
        from astropy.io import fits

        with fits.open(paths["hdu"]) as hdul:
            plane = kernels.compress_image(hdul[1].data.astype(np.float32))
        cpu = ort_network("CPU")
        seconds, ref_flags = flags_of(cpu, paths["hdu"], 8, 4, out)
        mpix_hdu, mpix_big = hdu_shape[0] * hdu_shape[1] / 1e6, big * big / 1e6
        print(f"# CPU reference FLAGS of the HDU: {seconds:.1f} s ({mpix_hdu / seconds:.2f} Mpix/s, "
              f"{cpu.provider}, {cpu.workers} workers)", flush=True)
        words = [w for w in args.configs.split(",") if w]
        for name, factory in configurations(args.quick, cuda_ort, cuda_torch, args.compile):
            if words and not any(w in name for w in words):
                continue
            try:
                network = factory()
                dp = tile_dp(network, cpu, plane)
            except Exception as exc:  # noqa: BLE001 - an engine this machine cannot run: said in the table
                rows.append((name, "-", "-", "-", "-", "-", "-", "-", "-", f"failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:80]}"))
                print(rows[-1], flush=True)
                continue
            for batch in batches:
                for depth in (0, 4):
                    if time.perf_counter() - t0 > args.time_limit:
                        rows.append((name, batch, depth, "-", "-", "-", "-", "-", "-", "skipped: time limit"))
                        continue
                    try:
                        net_rate = network_rate(network, plane, batch, 1.0 if args.quick else 3.0)
                        s_hdu, flags = flags_of(network, paths["hdu"], batch, depth, out)
                        s_big, _ = flags_of(network, paths["image"], batch, depth, out)
                    except Exception as exc:  # noqa: BLE001
                        rows.append((name, batch, depth, "-", "-", "-", "-", "-", "-",
                                     f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"))
                        print(rows[-1], flush=True)
                        continue
                    low, detail, ndiff = compare(flags, ref_flags)
                    rows.append((name, batch, depth, mpix_big / s_big, mpix_hdu / s_hdu, net_rate, low, ndiff,
                                 f"{dp:.2e}", detail))
                    print(rows[-1], flush=True)
            del network
            if cuda_torch:
                torch.cuda.empty_cache()
    ok = [r for r in rows if isinstance(r[3], float) and r[6] >= 0.999]
    best = max(ok, key=lambda r: r[3]) if ok else None
    print()
    print(f"| configuration | BATCH_SIZE | depth | e2e Mpix/s {big}² | e2e Mpix/s HDU | network Mpix/s "
          f"| min MCC vs CPU | pixels differing | max abs dp | classes MCC < 1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in r[:6]]
        cells += [f"{r[6]:.4f}" if isinstance(r[6], float) else str(r[6]), str(r[7]), r[8], r[9]]
        mark = " **default**" if r is best else ""
        print("| " + " | ".join(cells) + mark + " |")
    print(f"# total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
