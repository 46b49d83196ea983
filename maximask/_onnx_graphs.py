"""Write the MaxiMask and MaxiTrack ONNX graphs from weight arrays, and read them back.

The one writer of the networks' graphs: ``tools/convert_models.py`` fills them with the
published weights (the packaged ``maximask/models``), ``maximask.training.export`` with
fine-tuned ones. Weights are a dict ``{"<layer>.weight" | ".bias" | ".alpha": float32
array}`` named and laid out as in ``maximask._architecture``.

The graphs take asinh-compressed pixels (the C++ compression kernel applies the asinh) and
stop at the probabilities: prior correction, thresholds and bit packing are done outside.
Needs the ``onnx`` package (extras ``train`` and ``test``); the inference path never
imports this module.
"""
import hashlib
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maximask import _architecture as arch

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.14
#: Graph files of each network, as found in a model directory (the first is the CPU graph).
MAXIMASK_FILES = ("maximask.onnx", "maximask_cuda.onnx")
MAXIMASK_WEIGHTS_FILE = "maximask.weights"
MAXITRACK_FILE = "maxitrack.onnx"

#: Provenance of the published weights, which every graph derived from them carries.
PUBLISHED_CREDIT = ("Weights: MaxiMask 1.4.1, Copyright 2018 Maxime Paillassa, MIT licence. "
                    "Paillassa, Bertin & Bouy 2020, A&A 634, A48.")
MAXIMASK_DOC = ("MaxiMask: inputs (N,1,H,W) asinh-compressed normalised pixels and window (y0,x0,y1,x1), "
                "output (N,14,y1-y0,x1-x0) sigmoid probabilities; unpooling by {}. ")
MAXITRACK_DOC = ("MaxiTrack: input (N,1,400,400) asinh-compressed normalised pixels, "
                 "output (N,2) softmax, column 1 = tracking error. ")

# The most convolutions in a row at each decoder level on any path to the output: the halo
# (in that level's pixels) its extent keeps around the part the level above needs.
DECODER_CONVS = {0: 2, 1: 1, 2: 2, 3: 2, 4: 2}


class GraphBuilder:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self, weights):
        self.weights = weights
        self.nodes, self.inits = [], []

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def param(self, name):
        """The weight array `name` as a float32 initializer of the same name."""
        return self.const(name, np.asarray(self.weights[name], dtype=np.float32))

    def op(self, op_type, inputs, name, n_out=1, **attrs):
        outs = [name] if n_out == 1 else [f"{name}:{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, layer, pad):
        """Conv + bias of `layer`, zero-padded by `pad` on every side ('SAME' for odd kernels)."""
        w, b = self.param(f"{layer}.weight"), self.param(f"{layer}.bias")
        kernel_shape = list(self.weights[w].shape[2:])
        return self.op("Conv", [x, w, b], layer, pads=[pad] * 4, kernel_shape=kernel_shape)

    def conv_relu(self, x, layer):
        return self.op("Relu", [self.conv(x, layer, pad=1)], f"{layer}.relu")


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
    g = GraphBuilder(weights)
    x = "input"

    # Encoder: each level keeps its activation (for the skip sums), argmax and shape.
    acts, argmax, shapes = [], [], []
    for level, layers in enumerate(arch.MAXIMASK_ENCODER):
        for layer in layers:
            x = g.conv_relu(x, layer)
        acts.append(x)
        shapes.append(g.op("Shape", [x], f"shape{level}"))
        x, idx = g.op("MaxPool", [x], f"pool{level}", n_out=2, kernel_shape=[2, 2],
                      strides=[2, 2], auto_pad="SAME_UPPER")
        argmax.append(idx)
    x = g.conv_relu(x, arch.MAXIMASK_BOTTLENECK)

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
    dec_out = {}
    for level in (4, 3, 2, 1):
        x = g.op("Add", [unpool(x, level), crop(acts[level], level, f"act{level}.crop")], f"skip{level}")
        for layer in arch.MAXIMASK_DECODER[level]:
            x = g.conv_relu(x, layer)
        dec_out[level] = x
    x = g.op("Add", [unpool(x, 0), crop(acts[0], 0, "act0.crop")], "skip0")
    heads = [g.conv_relu(x, arch.MAXIMASK_HEAD)]

    # UCPs: bring decoder levels 4..1 back to full resolution by unpool + conv steps.
    for level in arch.MAXIMASK_PREDICTION_LEVELS[1:]:
        y = dec_out[level]
        for step, layer in enumerate(arch.MAXIMASK_UCP[level]):
            y = g.conv_relu(unpool(y, level - 1 - step), layer)
        heads.append(y)

    x = g.op("Concat", heads, "concat", axis=1)
    x = g.conv(x, arch.MAXIMASK_FINAL, pad=1)
    # The window, relative to the level-0 extent.
    w_starts = g.op("Sub", [window_starts, extent[0][0]], "window.rel_starts")
    w_ends = g.op("Sub", [window_ends, extent[0][0]], "window.rel_ends")
    x = g.op("Slice", [x, w_starts, w_ends, axes], "window.crop")
    x = g.op("Sigmoid", [x], "probabilities")

    return helper.make_graph(
        g.nodes, "maximask",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, "H", "W"]),
         helper.make_tensor_value_info("window", TensorProto.INT64, [4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 14, "h", "w"])],
        g.inits)


def build_maxitrack(weights):
    """MaxiTrack: 5 x (conv 9x9 + PReLU + maxpool 2x2), 3 dense layers, softmax; (N, 1, 400, 400)."""
    g = GraphBuilder(weights)
    x = "input"
    for k, (layer, _, _) in enumerate(arch.MAXITRACK_CONVS):
        x = g.conv(x, layer, pad=arch.MAXITRACK_KERNEL // 2)
        x = g.op("PRelu", [x, g.param(f"{layer}.alpha")], f"{layer}.prelu")
        x = g.op("MaxPool", [x], f"pool{k}", kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Flatten", [x], "flatten", axis=1)
    for name, _, _, prelu in arch.MAXITRACK_DENSE:
        x = g.op("Gemm", [x, g.param(f"{name}.weight"), g.param(f"{name}.bias")], name)
        if prelu:
            x = g.op("PRelu", [x, g.param(f"{name}.alpha")], f"{name}.prelu")
    x = g.op("Softmax", [x], "scores", axis=1)

    return helper.make_graph(
        g.nodes, "maxitrack",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 400, 400])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        g.inits)


def make_model(graph, doc, producer):
    """A checked ONNX model of `graph`, documented by `doc`, produced by `producer`."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer)
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model)
    return model


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
        onnx.save(model, path)


def write_maximask(weights, folder, note, producer):
    """Write the MaxiMask CPU and CUDA graphs and their shared weights file into `folder`.

    note: provenance appended to each graph's doc string; producer: the model's
    producer_name. Returns the paths written.
    """
    models = {os.path.join(folder, name): make_model(build_maximask(weights, unpooling),
                                                     MAXIMASK_DOC.format(how) + note, producer)
              for name, unpooling, how in zip(MAXIMASK_FILES, ("MaxUnpool", "ScatterElements"),
                                              ("MaxUnpool", "ScatterElements, for CUDA"))}
    weights_path = os.path.join(folder, MAXIMASK_WEIGHTS_FILE)
    save_sharing_weights(models, weights_path)
    return [weights_path, *models]


def write_maxitrack(weights, folder, note, producer):
    """Write the MaxiTrack graph (weights inside) into `folder`; returns the paths written."""
    path = os.path.join(folder, MAXITRACK_FILE)
    onnx.save(make_model(build_maxitrack(weights), MAXITRACK_DOC + note, producer), path)
    return [path]


def read_weights(path):
    """The float initializers of the ONNX file `path` (external data included), by name."""
    model = onnx.load(path)
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer
            if init.data_type == TensorProto.FLOAT}


def weights_digest(weights):
    """SHA-256 (hex) of a weights dict: names in sorted order, each followed by its shape and
    little-endian float32 bytes. The same for a module's weights and their ONNX files."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        array = np.ascontiguousarray(weights[name], dtype="<f4")
        digest.update(f"{name}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
