#!/usr/bin/env python3
"""Training throughput of the PyTorch MaxiMask, beside ONNX Runtime inference.

Times, on the same batches in the same run: ONNX Runtime inference (the packaged graph),
PyTorch inference, and one PyTorch training step (forward with the pre-predictions, the
§3.1.2 loss, backward, Adam). Prints Mpix/s and samples/hour of each; the training step's
figure is what bounds a fine-tuning run on this machine.

    python benchmarks/bench_training.py [--size 400] [--batch 1] [--repeat 3] [--device cpu]
"""
import argparse
import os
import time

import numpy as np
import torch

from maximask.classes import ABBREVIATIONS, NCLASSES
from maximask.engine import open_network
from maximask.simulation.synthetic import make_field
from maximask.training import load_network
from maximask.training.loss import MaskLoss, class_fractions, class_weights


def best_of(repeat, step):
    """Shortest wall time of `repeat` calls of step() after one warm-up call, in seconds."""
    step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=400, help="tile side, pixels")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="torch device for the PyTorch rows (cpu, cuda)")
    args = parser.parse_args()
    threads = len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    n, s = args.batch, args.size

    field = make_field((s * n, s), seed=0)  # synthetic sky, normalised robustly below
    level = np.median(field)
    tiles = (field - level) / (1.4826 * np.median(np.abs(field - level)))
    x = np.arcsinh(tiles.reshape(n, 1, s, s)).astype(np.float32)
    labels = np.zeros((n, NCLASSES, s, s), np.float32)
    labels[:, ABBREVIATIONS.index("BG")] = 1
    labels[:, ABBREVIATIONS.index("TRL"), :, s // 2] = 1

    onnx_net = open_network("maximask", device="CPU")
    device = torch.device(args.device)
    network = load_network("maximask").to(device)
    xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(labels).to(device)
    loss = MaskLoss(class_weights(class_fractions(labels)), reference=network).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-5)

    def torch_inference():
        with torch.no_grad():
            network(xt).cpu()

    def train_step():
        optimiser.zero_grad()
        loss(network, xt, yt)["total"].backward()
        optimiser.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = [("ONNX Runtime inference (CPU)", best_of(args.repeat, lambda: onnx_net(x))),
            (f"PyTorch inference ({args.device})", best_of(args.repeat, torch_inference)),
            (f"PyTorch training step ({args.device})", best_of(args.repeat, train_step))]
    mpix = n * s * s / 1e6
    print(f"batch {n} x {s}x{s}, {threads} CPU threads, torch {torch.__version__}")
    print(f"{'':38s} {'s/batch':>8s} {'Mpix/s':>8s} {'samples/h':>10s}")
    for label, t in rows:
        print(f"{label:38s} {t:8.2f} {mpix / t:8.3f} {3600 * n / t:10.0f}")


if __name__ == "__main__":
    main()
