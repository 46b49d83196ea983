#!/usr/bin/env python3
"""Run the reference TensorFlow MaxiMask and MaxiTrack on a few 400x400 tiles; save the
inputs and outputs as tests/data/network_tiles.npz for the ONNX parity tests.

Tiles: a field with stars, saturation, cosmic rays, a trail and a hot column; a plain sky
tile; a field whose stars are smeared by a tracking error. Inputs are the reference
preprocessing (``utils.image_norm``: background-subtracted, sigma-normalised, before the
network's asinh). MaxiMask outputs are kept on every 4th row and column (the full planes
would weigh 9 MB a tile).

Developer tool: run with the reference environment of shared/REFERENCE.md, e.g.
    refenv/bin/python tools/make_network_fixtures.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from maximask.simulation.synthetic import make_field  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "network_tiles.npz")
STRIDE = 4


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import maximask_and_maxitrack as ref
    from maximask_and_maxitrack import utils

    ref_dir = os.path.dirname(ref.__file__)
    fields = [
        ("contaminants", make_field((600, 600), seed=11, saturated=2), (100, 120)),
        ("sky", make_field((600, 600), seed=12, nstars=0, ncosmics=0, trail=False,
                           hot_column=False, saturated=0), (100, 100)),
        ("tracking", make_field((600, 600), seed=13, tracking_error=True, saturated=1), (150, 90)),
    ]
    names, tiles = [], []
    for name, field, (y, x) in fields:
        normed, _ = utils.image_norm(field)
        tiles.append(normed[y:y + 400, x:x + 400])
        names.append(name)
    tiles = np.stack(tiles).astype(np.float32)[..., None]  # NHWC, as the reference takes

    maximask = tf.saved_model.load(os.path.join(ref_dir, "maximask", "model"))
    classes = np.arange(14, dtype=np.int32)
    off = np.zeros(14, dtype=np.float32)  # no prior, no threshold, no single mask
    proba = maximask([tiles, classes, off, off, off], False).numpy().transpose(0, 3, 1, 2)

    maxitrack = tf.saved_model.load(os.path.join(ref_dir, "maxitrack", "model"))
    scores = maxitrack.signatures["serving_default"](input_1=tf.constant(tiles))["output_1"].numpy()

    np.savez_compressed(
        OUT, names=np.array(names), inputs=tiles[..., 0], stride=STRIDE,
        maximask=proba[:, :, ::STRIDE, ::STRIDE].astype(np.float32), maxitrack=scores.astype(np.float32),
        tensorflow=tf.__version__)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB); maxitrack scores {scores[:, 1]}")
    for k, name in enumerate(names):
        print(name, "max proba per class", np.round(proba[k].max(axis=(1, 2)), 3))


if __name__ == "__main__":
    main()
