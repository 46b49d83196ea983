"""The layer tables of MaxiMask and MaxiTrack: names, channels and how they connect.

One table read by both writers of the networks: the ONNX graph builder
(``maximask._onnx_graphs``) and the PyTorch modules (``maximask.training.networks``). Layer
names are those of the published TensorFlow variables, and the weight arrays of a layer
``L`` are called ``L.weight``, ``L.bias`` (and ``L.alpha`` for a PReLU), in ONNX/PyTorch
layout: convolution kernels (out, in, kh, kw); dense matrices (in, out).
"""

# --- MaxiMask: 3x3 convolutions with ReLU; encoder levels 0..4 each end in a 2x2 max-pool.
#: Convolutions of each encoder level (level k works at 1/2^k of the tile size).
MAXIMASK_ENCODER = (("conv2d",), ("conv2d_1",), ("conv2d_2", "conv2d_3"), ("conv2d_4", "conv2d_5"),
                    ("conv2d_6", "conv2d_7"))
#: The convolution below the last pool (level 5).
MAXIMASK_BOTTLENECK = "conv2d_8"
#: Decoder level -> its convolutions, after unpooling to that level and adding the encoder skip.
MAXIMASK_DECODER = {4: ("conv2d_9", "conv2d_10"), 3: ("conv2d_11", "conv2d_12"),
                    2: ("conv2d_13", "conv2d_14"), 1: ("conv2d_15",)}
#: The full-resolution pre-prediction, after unpooling to level 0 and adding its skip.
MAXIMASK_HEAD = "conv2d_16"
#: Unpool-conv paths: decoder level -> its convolutions, one per unpooling towards level 0.
MAXIMASK_UCP = {4: ("conv2d_17", "conv2d_18", "conv2d_19", "conv2d_20"),
                3: ("conv2d_21", "conv2d_22", "conv2d_23"),
                2: ("conv2d_24", "conv2d_25"), 1: ("conv2d_26",)}
#: Levels of the 5 pre-predictions, in their order in the concatenation.
MAXIMASK_PREDICTION_LEVELS = (0, 4, 3, 2, 1)
#: The last convolution (no ReLU; a sigmoid follows), over the concatenated pre-predictions.
MAXIMASK_FINAL = "conv2d_27"
MAXIMASK_KERNEL = 3
#: Named groups of layers, for training only some of them.
MAXIMASK_GROUPS = {
    "ENCODER": tuple(layer for level in MAXIMASK_ENCODER for layer in level) + (MAXIMASK_BOTTLENECK,),
    "DECODER": tuple(layer for level in (4, 3, 2, 1) for layer in MAXIMASK_DECODER[level]) + (MAXIMASK_HEAD,),
    "UCP": tuple(layer for level in (4, 3, 2, 1) for layer in MAXIMASK_UCP[level]),
    "FINAL": (MAXIMASK_FINAL,),
}
#: Layer -> (input channels, output channels).
MAXIMASK_CHANNELS = {
    "conv2d": (1, 32), "conv2d_1": (32, 64), "conv2d_2": (64, 128), "conv2d_3": (128, 128),
    "conv2d_4": (128, 256), "conv2d_5": (256, 256), "conv2d_6": (256, 256), "conv2d_7": (256, 256),
    "conv2d_8": (256, 256), "conv2d_9": (256, 256), "conv2d_10": (256, 256), "conv2d_11": (256, 256),
    "conv2d_12": (256, 128), "conv2d_13": (128, 128), "conv2d_14": (128, 64), "conv2d_15": (64, 32),
    "conv2d_16": (32, 14), "conv2d_17": (256, 128), "conv2d_18": (128, 64), "conv2d_19": (64, 32),
    "conv2d_20": (32, 14), "conv2d_21": (128, 64), "conv2d_22": (64, 32), "conv2d_23": (32, 14),
    "conv2d_24": (64, 32), "conv2d_25": (32, 14), "conv2d_26": (32, 14), "conv2d_27": (70, 14),
}


# --- MaxiTrack: 5 x (9x9 convolution + PReLU + 2x2 max-pool), 3 dense layers, softmax.
MAXITRACK_SIZE = 400
MAXITRACK_KERNEL = 9
#: (layer, input channels, output channels); the PReLU alphas are per position, (C, H, W).
MAXITRACK_CONVS = (("conv2d", 1, 16), ("conv2d_1", 16, 32), ("conv2d_2", 32, 64), ("conv2d_3", 64, 128),
                   ("conv2d_4", 128, 128))
#: (layer, inputs, outputs, followed by a PReLU); the first takes the NCHW flattening.
MAXITRACK_DENSE = (("dense", 128 * 12 * 12, 64, True), ("dense_1", 64, 64, True), ("dense_2", 64, 2, False))
MAXITRACK_GROUPS = {"CONV": tuple(c[0] for c in MAXITRACK_CONVS), "DENSE": tuple(d[0] for d in MAXITRACK_DENSE)}
