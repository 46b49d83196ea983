#!/usr/bin/env python3
"""Would half precision (fp16) keep MaxiMask's masks? An emulation on the CPU.

A CUDA fp16 model stores weights and activations in fp16 and accumulates convolutions in
fp32. ONNX Runtime's CPU provider has no fp16 convolution on x86, so this study emulates
that arithmetic in fp32: the weights are rounded to fp16, and the network input and every
convolution, sum and sigmoid output is rounded to fp16 (a Cast to float16 and back). It
runs the masker (default tiling, all 14 classes, default priors and thresholds) with the
fp32 and the emulated fp16 network on generated fields and prints, per class, the MCC of
the thresholded masks against fp32 (1.0 when both are empty) and the max |dp|.

    python benchmarks/fp16_study.py [--size 1024] [--fields 3]

Needs the ``onnx`` package (a test dependency).
"""
import argparse
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from agreement import mask_mcc
from maximask.classes import ABBREVIATIONS
from maximask.engine import Network, model_path
from maximask.masker import Masker
from maximask.simulation.synthetic import make_field

ROUNDED_OPS = ("Conv", "Add", "Sigmoid")  # Add: the skip sums (the others are window arithmetic)


def fp16_emulation(model):
    """A copy of the MaxiMask graph with fp16 weights and fp16-rounded activations."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    for k, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            half = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            graph.initializer[k].CopyFrom(numpy_helper.from_array(half, init.name))
    nodes = []

    def rounding(name, source):
        return [helper.make_node("Cast", [source], [f"{name}.fp16"], to=TensorProto.FLOAT16),
                helper.make_node("Cast", [f"{name}.fp16"], [name], to=TensorProto.FLOAT)]

    nodes += rounding("input.rounded", "input")
    for node in graph.node:
        node = onnx.NodeProto.FromString(node.SerializeToString())
        for i, name in enumerate(node.input):
            if name == "input":
                node.input[i] = "input.rounded"
        if node.op_type in ROUNDED_OPS and (node.op_type != "Add" or node.name.startswith("skip")):
            out = node.output[0]
            node.output[0] = f"{out}.fp32"
            nodes += [node] + rounding(out, f"{out}.fp32")
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024, help="field side (the fields are size x 1.1 size)")
    parser.add_argument("--fields", type=int, default=3)
    args = parser.parse_args()
    shape = (args.size, int(args.size * 1.1))
    fields = [make_field(shape, seed=100 + k, tracking_error=(k == 2), elongation=1.5 if k == 2 else None)
              for k in range(args.fields)]
    masker = Masker(output_type="PROBA", classes=",".join(ABBREVIATIONS), verbose_type="QUIET")
    fp32 = [masker.run(f) for f in fields]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "maximask_fp16_emulated.onnx")
        onnx.save(fp16_emulation(onnx.load(model_path("maximask"))), path)
        masker._network = Network(path, device="CPU")
        fp16 = [masker.run(f) for f in fields]
    thr = masker.thresholds[:, None, None]
    print(f"# {args.fields} fields of {shape[0]}x{shape[1]}; emulated fp16 against fp32, default thresholds")
    print(f"{'class':>5} {'MCC':>7} {'max|dp|':>9} {'flagged fp32':>13} {'flagged fp16':>13}")
    for k, abbr in enumerate(ABBREVIATIONS):
        a = np.concatenate([(p[k] > thr[k]).ravel() for p in fp16])
        b = np.concatenate([(p[k] > thr[k]).ravel() for p in fp32])
        dp = max(float(np.abs(p[k] - q[k]).max()) for p, q in zip(fp16, fp32))
        print(f"{abbr:>5} {mask_mcc(a, b):>7.4f} {dp:>9.2e} {int(b.sum()):>13} {int(a.sum()):>13}")


if __name__ == "__main__":
    main()
