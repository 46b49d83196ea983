#!/usr/bin/env python3
"""Build maximask/models/{maximask,maxitrack}.onnx from the published MaxiMask 1.4.1 weights.

The graphs are written by hand from the architecture (NCHW) and filled with the trained
variables read from the reference TensorFlow SavedModels; the ``asinh`` that opens the
reference graphs is left out (the C++ compression kernel applies it), and so are the prior
correction, thresholds and bit packing that close the MaxiMask graph.

Developer tool: needs TensorFlow and the MaxiMask 1.4.1 wheel (see shared/REFERENCE.md);
the package itself never imports TensorFlow.

    python tools/convert_models.py --reference-dir .../site-packages/maximask_and_maxitrack
"""
import argparse
import os

from maximask import _architecture as arch
from maximask._onnx_graphs import PUBLISHED_CREDIT, write_maximask, write_maxitrack

PRODUCER = "maximask tools/convert_models.py"


def maximask_weights(tf_vars):
    """TF variables of MaxiMask -> {"<layer>.weight"/".bias": array} in ONNX layout."""
    weights = {}
    for layer in arch.MAXIMASK_CHANNELS:
        weights[f"{layer}.weight"] = tf_vars[f"{layer}/kernel:0"].transpose(3, 2, 0, 1)  # (kh,kw,in,out)
        weights[f"{layer}.bias"] = tf_vars[f"{layer}/bias:0"]
    return weights


def maxitrack_weights(tf_vars):
    """TF variables of MaxiTrack -> {"<layer>.weight"/".bias"/".alpha": array} in ONNX layout."""
    weights = {}
    prelus = iter(["p_re_lu"] + [f"p_re_lu_{k}" for k in range(1, 7)])
    for layer, _, _ in arch.MAXITRACK_CONVS:
        weights[f"{layer}.weight"] = tf_vars[f"{layer}/kernel:0"].transpose(3, 2, 0, 1)
        weights[f"{layer}.bias"] = tf_vars[f"{layer}/bias:0"]
        # (H, W, C) -> (C, H, W)
        weights[f"{layer}.alpha"] = tf_vars[f"{layer}/{next(prelus)}/alpha:0"].transpose(2, 0, 1)
    for k, (layer, _, _, prelu) in enumerate(arch.MAXITRACK_DENSE):
        kernel = tf_vars[f"{layer}/kernel:0"]
        if k == 0:  # TF flattens NHWC; permute the rows to the NCHW flattening instead.
            c, h, w = 128, 12, 12
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
        weights[f"{layer}.weight"] = kernel
        weights[f"{layer}.bias"] = tf_vars[f"{layer}/bias:0"]
        if prelu:
            weights[f"{layer}.alpha"] = tf_vars[f"{layer}/{next(prelus)}/alpha:0"]
    return weights


def load_weights(saved_model_dir):
    """Trained variables of a SavedModel, by TF variable name, as float32 arrays."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    model = tf.saved_model.load(saved_model_dir)
    return {v.name: v.numpy() for v in model.variables}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", required=True,
                        help="the maximask_and_maxitrack folder of the MaxiMask 1.4.1 wheel")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "..", "maximask", "models"))
    args = parser.parse_args()

    out = args.output_dir
    written = write_maximask(maximask_weights(load_weights(os.path.join(args.reference_dir, "maximask", "model"))),
                             out, PUBLISHED_CREDIT, PRODUCER)
    written += write_maxitrack(maxitrack_weights(load_weights(os.path.join(args.reference_dir, "maxitrack", "model"))),
                               out, PUBLISHED_CREDIT, PRODUCER)
    for path in written:
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
