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

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, name, n_out=1, **attrs):
        outs = [name] if n_out == 1 else [f"{name}:{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, weights, layer, pad):
        """Conv + bias from TF (kh, kw, cin, cout) weights, 'SAME' padding for odd kernels."""
        kernel = weights[f"{layer}/kernel:0"].transpose(3, 2, 0, 1)
        bias = weights[f"{layer}/bias:0"]
        w = self.const(f"{layer}.weight", kernel.astype(np.float32))
        b = self.const(f"{layer}.bias", bias.astype(np.float32))
        return self.op("Conv", [x, w, b], layer, pads=[pad] * 4, kernel_shape=list(kernel.shape[2:]))

    def conv_relu(self, x, weights, layer):
        return self.op("Relu", [self.conv(x, weights, layer, pad=1)], f"{layer}.relu")


# The most convolutions in a row at each decoder level on any path to the output: the halo
# (in that level's pixels) its extent keeps around the part the level above needs.
DECODER_CONVS = {0: 2, 1: 1, 2: 2, 3: 2, 4: 2}


def build_maximask(weights, unpooling="MaxUnpool"):
    """The MaxiMask encoder/decoder with unpool-conv paths (UCPs).

    unpooling: "MaxUnpool" (the CPU graph) or "ScatterElements" (the CUDA graph: ONNX
    Runtime's CUDA provider has no MaxUnpool kernel, and a node it lacks runs on the CPU
    with its activations copied across at every call; on the CPU, MaxUnpool is about 10%
    faster end to end). Both give the same numbers.

    Inputs: ``input`` (N, 1, H, W) and ``window`` int64 (y0, x0, y1, x1), the part of the
    tile whose probabilities are wanted ((0, 0, H, W) for all of it). The encoder always runs
    on the whole tile (its deepest level sees all of it); the decoder levels run only on the
    window, halved at each level down, plus the halo of their convolutions, so their zero
    padding at the cropped edges never reaches the window. Output (N, 14, y1-y0, x1-x0)
    (clamped to the tile), equal to the same window of the whole-tile output.
    """
    g = GraphBuilder()
    x = "input"

    # Encoder: each level keeps its activation (for the skip sums), argmax and shape.
    enc_layers = [["conv2d"], ["conv2d_1"], ["conv2d_2", "conv2d_3"], ["conv2d_4", "conv2d_5"],
                  ["conv2d_6", "conv2d_7"]]
    acts, argmax, shapes = [], [], []
    for level, layers in enumerate(enc_layers):
        for layer in layers:
            x = g.conv_relu(x, weights, layer)
        acts.append(x)
        shapes.append(g.op("Shape", [x], f"shape{level}"))
        x, idx = g.op("MaxPool", [x], f"pool{level}", n_out=2, kernel_shape=[2, 2],
                      strides=[2, 2], auto_pad="SAME_UPPER")
        argmax.append(idx)
    x = g.conv_relu(x, weights, "conv2d_8")

    # Extents (starts, ends) of the decoder at levels 0..4: the window plus the halo of the
    # level's convolutions, then halved (floor/ceil) for the level below. Starts are
    # clamped at 0; Slice clamps the ends to the tensor.
    axes = g.const("axes_hw", np.array([2, 3], np.int64))
    zero, one, two = (g.const(f"int{v}", np.array(v, np.int64)) for v in (0, 1, 2))
    window_starts, window_ends = g.op("Split", ["window", g.const("split22", np.array([2, 2], np.int64))],
                                      "window.split", n_out=2, axis=0)
    starts, ends = window_starts, window_ends
    extent = {}
    for level in range(5):
        halo = g.const(f"halo{level}", np.array(DECODER_CONVS[level], np.int64))
        starts = g.op("Max", [g.op("Sub", [starts, halo], f"start{level}.halo"), zero], f"start{level}")
        ends = g.op("Add", [ends, halo], f"end{level}")
        extent[level] = (starts, ends)
        starts = g.op("Div", [starts, two], f"start{level}.half")
        ends = g.op("Div", [g.op("Add", [ends, one], f"end{level}.up"), two], f"end{level}.half")

    def crop(v, level, name):
        return g.op("Slice", [v, extent[level][0], extent[level][1], axes], name)

    cropped_argmax = {level: crop(argmax[level], level + 1, f"argmax{level}.crop") for level in range(4)}
    cropped_argmax[4] = argmax[4]  # the bottleneck (level 5) is never cropped
    counter = iter(range(1000))

    if unpooling == "ScatterElements":  # the flat argmax indexes a zeroed, flattened level
        flat = g.const("flat", np.array([-1], np.int64))
        zeros = {level: g.op("Reshape", [g.op("ConstantOfShape", [shapes[level]], f"zeros{level}.full",
                                                  value=numpy_helper.from_array(np.zeros(1, np.float32))), flat],
                             f"zeros{level}") for level in range(5)}
        flat_argmax = {level: g.op("Reshape", [cropped_argmax[level], flat], f"argmax{level}.flat")
                       for level in range(5)}
    elif unpooling != "MaxUnpool":
        raise ValueError(f"unknown unpooling {unpooling}")

    def unpool(v, level):
        """Scatter v (level + 1, cropped) to the argmax positions of encoder pool `level`
        (TF unpool), then crop to the level's extent. The argmax holds flat indices into
        the whole activation of the level, so the cropped values land where they should.

        MaxUnpool's end pads make onnxruntime accept odd output sizes (2n - 1) as well as
        even ones; the size itself comes from the encoder activation's shape.
        """
        k = next(counter)
        if unpooling == "MaxUnpool":
            v = g.op("MaxUnpool", [v, cropped_argmax[level], shapes[level]], f"unpool{k}",
                     kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])
        else:
            v = g.op("ScatterElements", [zeros[level], flat_argmax[level],
                                         g.op("Reshape", [v, flat], f"unpool{k}.flat")],
                     f"unpool{k}.scatter", axis=0)
            v = g.op("Reshape", [v, shapes[level]], f"unpool{k}")
        return crop(v, level, f"unpool{k}.crop")

    # Decoder: unpool, add the encoder activation of the level, convolve.
    dec_layers = {4: ["conv2d_9", "conv2d_10"], 3: ["conv2d_11", "conv2d_12"],
                  2: ["conv2d_13", "conv2d_14"], 1: ["conv2d_15"]}
    dec_out = {}
    for level in (4, 3, 2, 1):
        x = g.op("Add", [unpool(x, level), crop(acts[level], level, f"act{level}.crop")], f"skip{level}")
        for layer in dec_layers[level]:
            x = g.conv_relu(x, weights, layer)
        dec_out[level] = x
    x = g.op("Add", [unpool(x, 0), crop(acts[0], 0, "act0.crop")], "skip0")
    heads = [g.conv_relu(x, weights, "conv2d_16")]

    # UCPs: bring decoder levels 4..1 back to full resolution by unpool + conv steps.
    ucp_layers = {4: ["conv2d_17", "conv2d_18", "conv2d_19", "conv2d_20"],
                  3: ["conv2d_21", "conv2d_22", "conv2d_23"],
                  2: ["conv2d_24", "conv2d_25"], 1: ["conv2d_26"]}
    for level in (4, 3, 2, 1):
        y = dec_out[level]
        for step, layer in enumerate(ucp_layers[level]):
            y = g.conv_relu(unpool(y, level - 1 - step), weights, layer)
        heads.append(y)

    x = g.op("Concat", heads, "concat", axis=1)
    x = g.conv(x, weights, "conv2d_27", pad=1)
    # The window, relative to the level-0 extent.
    w_starts = g.op("Sub", [window_starts, extent[0][0]], "window.rel_starts")
    w_ends = g.op("Sub", [window_ends, extent[0][0]], "window.rel_ends")
    x = g.op("Slice", [x, w_starts, w_ends, axes], "window.crop")
    x = g.op("Sigmoid", [x], "probabilities")

    graph = helper.make_graph(
        g.nodes, "maximask",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"]),
         helper.make_tensor_value_info("window", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 14, "h", "w"])],
        g.inits)
    return graph


def build_maxitrack(weights):
    """MaxiTrack: 5 x (conv 9x9 + PReLU + maxpool 2x2), 3 dense layers, softmax; (N, 1, 400, 400)."""
    g = GraphBuilder()
    x = "input"
    for k in range(5):
        layer = "conv2d" if k == 0 else f"conv2d_{k}"
        prelu = "p_re_lu" if k == 0 else f"p_re_lu_{k}"
        x = g.conv(x, weights, layer, pad=4)
        alpha = weights[f"{layer}/{prelu}/alpha:0"].transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        x = g.op("PRelu", [x, g.const(f"{layer}.alpha", alpha.astype(np.float32))], f"{layer}.prelu")
        x = g.op("MaxPool", [x], f"pool{k}", kernel_shape=[2, 2], strides=[2, 2])

    # TF flattens NHWC; permute the first dense matrix's rows to the NCHW flattening instead.
    dense = weights["dense/kernel:0"]
    c, h, w = 128, 12, 12
    dense = dense.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    x = g.op("Flatten", [x], "flatten", axis=1)
    for k, (name, prelu) in enumerate([("dense", "p_re_lu_5"), ("dense_1", "p_re_lu_6"), ("dense_2", None)]):
        kernel = dense if k == 0 else weights[f"{name}/kernel:0"]
        x = g.op("Gemm", [x, g.const(f"{name}.weight", kernel.astype(np.float32)),
                          g.const(f"{name}.bias", weights[f"{name}/bias:0"].astype(np.float32))], name)
        if prelu:
            alpha = weights[f"{name}/{prelu}/alpha:0"].astype(np.float32)
            x = g.op("PRelu", [x, g.const(f"{name}.alpha", alpha)], f"{name}.prelu")
    x = g.op("Softmax", [x], "scores", axis=1)

    graph = helper.make_graph(
        g.nodes, "maxitrack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 400, 400])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        g.inits)
    return graph


def load_weights(saved_model_dir):
    """Trained variables of a SavedModel, by TF variable name, as float32 arrays."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    model = tf.saved_model.load(saved_model_dir)
    return {v.name: v.numpy() for v in model.variables}


def make_model(graph, doc):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="maximask tools/convert_models.py")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model


def save(model, path):
    onnx.save(model, path)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def save_sharing_weights(models, weights_path):
    """Save graphs {path: model} that hold the same initializers, storing those once.

    The float initializers go to ``weights_path`` (raw little-endian, 64-byte aligned);
    each graph refers to them by offset (ONNX external data, next to the graphs).
    """
    first = next(iter(models.values()))
    location = os.path.basename(weights_path)
    entries = {}
    with open(weights_path, "wb") as out:
        for init in first.graph.initializer:
            if init.data_type != TensorProto.FLOAT:
                continue
            data = numpy_helper.to_array(init).astype("<f4").tobytes()
            out.write(b"\0" * (-out.tell() % 64))
            entries[init.name] = (out.tell(), len(data))
            out.write(data)
    print(f"wrote {weights_path} ({os.path.getsize(weights_path) / 1e6:.1f} MB)")
    for path, model in models.items():
        for init in model.graph.initializer:
            if init.name in entries:
                offset, length = entries[init.name]
                init.ClearField("raw_data")
                init.ClearField("float_data")
                init.data_location = TensorProto.EXTERNAL
                del init.external_data[:]
                for key, value in (("location", location), ("offset", offset), ("length", length)):
                    init.external_data.add(key=key, value=str(value))
        save(model, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-dir", required=True,
                        help="the maximask_and_maxitrack folder of the MaxiMask 1.4.1 wheel")
    parser.add_argument("--output-dir", default=os.path.join(os.path.dirname(__file__), "..", "maximask", "models"))
    args = parser.parse_args()

    credit = ("Weights: MaxiMask 1.4.1, Copyright 2018 Maxime Paillassa, MIT licence. "
              "Paillassa, Bertin & Bouy 2020, A&A 634, A48.")
    mm = load_weights(os.path.join(args.reference_dir, "maximask", "model"))
    doc = ("MaxiMask: inputs (N,1,H,W) asinh-compressed normalised pixels and window (y0,x0,y1,x1), "
           "output (N,14,y1-y0,x1-x0) sigmoid probabilities; unpooling by {}. " + credit)
    out = args.output_dir
    save_sharing_weights({
        os.path.join(out, "maximask.onnx"): make_model(build_maximask(mm, "MaxUnpool"), doc.format("MaxUnpool")),
        os.path.join(out, "maximask_cuda.onnx"): make_model(build_maximask(mm, "ScatterElements"),
                                                            doc.format("ScatterElements, for CUDA")),
    }, os.path.join(out, "maximask.weights"))
    mt = load_weights(os.path.join(args.reference_dir, "maxitrack", "model"))
    save(make_model(build_maxitrack(mt), "MaxiTrack: input (N,1,400,400) asinh-compressed normalised pixels, "
                    "output (N,2) softmax, column 1 = tracking error. " + credit),
         os.path.join(out, "maxitrack.onnx"))


if __name__ == "__main__":
    main()
