#!/usr/bin/env python3
"""Tiles per second of the ONNX MaxiMask network on the CPU, beside the reference.

For batch sizes 1, 4 and 8, runs our ONNX model (onnxruntime, CPU provider) on whole
400x400 tiles and on their central 200x200 window (what the masker asks for an interior
tile: the decoder then runs on the window only) and, when TensorFlow and the MaxiMask
1.4.1 package are importable in the same interpreter, the reference SavedModel on the
same tiles (it always computes the whole tile), and prints the rates and ratios.

    python benchmarks/bench_network.py [--tiles 16] [--threads 0]
"""
import argparse
import os
import platform
import time

import numpy as np

from maximask.engine import open_network


def rate(run, batch, total):
    """Tiles per second of run(batch) over about `total` tiles, after one warm-up call."""
    run(batch)
    calls = max(1, total // len(batch))
    start = time.perf_counter()
    for _ in range(calls):
        run(batch)
    return calls * len(batch) / (time.perf_counter() - start)


def reference_runner():
    """The reference TensorFlow MaxiMask as a function of (N, 1, T, T) compressed tiles, or None."""
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        import maximask_and_maxitrack as ref
    except ImportError:
        return None, None
    model = tf.saved_model.load(os.path.join(os.path.dirname(ref.__file__), "maximask", "model"))
    classes = np.arange(14, dtype=np.int32)
    off = np.zeros(14, dtype=np.float32)

    def run(batch):
        # the reference graph applies asinh itself: give it the uncompressed pixels
        nhwc = np.sinh(batch[:, 0, :, :, None])
        return model([nhwc, classes, off, off, off], False).numpy()

    return run, tf.__version__


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiles", type=int, default=16, help="tiles timed per batch size")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = all cores)")
    parser.add_argument("--batches", default="1,4,8")
    args = parser.parse_args()

    net = open_network("maximask", device="CPU", nthreads=args.threads)
    ref, tf_version = reference_runner()
    rng = np.random.default_rng(0)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"onnxruntime provider {net.provider}; reference: "
          f"{'TensorFlow ' + tf_version if ref else 'not importable'}")
    print(f"{'batch':>5} {'onnx tiles/s':>13} {'window tiles/s':>15} {'reference tiles/s':>18} "
          f"{'ratio':>7} {'window ratio':>13}")
    for b in (int(v) for v in args.batches.split(",")):
        batch = np.arcsinh(rng.normal(0, 1, (b, 1, 400, 400))).astype(np.float32)
        ours = rate(net, batch, args.tiles)
        window = rate(lambda x: net(x, (100, 100, 300, 300)), batch, args.tiles)
        theirs = rate(ref, batch, args.tiles) if ref else float("nan")
        print(f"{b:>5} {ours:>13.3f} {window:>15.3f} {theirs:>18.3f} {ours / theirs:>7.2f} "
              f"{window / theirs:>13.2f}")


if __name__ == "__main__":
    main()
