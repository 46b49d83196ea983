"""The training loop: which layers train, checkpoints, and resuming after a real kill."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from maximask import _architecture as arch
from maximask.training import load_network, network_weights, set_trainable
from maximask.training.trainer import load_checkpoint

STEPS = 16

# A fine-tuning run whose batches depend on the step only; argv: checkpoint, weights out.
RUN = f"""
import sys
import numpy as np
import torch
from maximask.classes import ABBREVIATIONS, NCLASSES
from maximask.training import load_network, set_trainable
from maximask.training.loss import MaskLoss
from maximask.training.trainer import train

torch.set_num_threads(1)
network = load_network("maximask")
set_trainable(network, ["DECODER", "UCP", "FINAL"])
loss = MaskLoss(np.full(NCLASSES, 1 / NCLASSES), reference=network)

def batches(step):
    rng = np.random.default_rng(step)
    x = np.arcsinh(rng.normal(0, 2, (1, 1, 40, 40))).astype(np.float32)
    y = np.zeros((1, NCLASSES, 40, 40), np.float32)
    y[0, ABBREVIATIONS.index("CR")] = rng.random((40, 40)) < 0.05
    y[0, ABBREVIATIONS.index("BG")] = 1 - y[0, ABBREVIATIONS.index("CR")]
    return torch.from_numpy(x), torch.from_numpy(y)

history = train(network, loss, batches, {STEPS}, lr=1e-4, seed=7, checkpoint=sys.argv[1], every=2,
                log=lambda r: print("step", r["step"], flush=True))
torch.save(network.state_dict(), sys.argv[2])
"""


def test_set_trainable_freezes_all_but_the_chosen_layers():
    network = load_network("maximask")
    trainable = set_trainable(network, ["UCP", "conv2d_27"])
    expected = {f"{layer}.{p}" for layer in arch.MAXIMASK_UCP[4] + arch.MAXIMASK_UCP[3] + arch.MAXIMASK_UCP[2]
                + arch.MAXIMASK_UCP[1] + ("conv2d_27",) for p in ("weight", "bias")}
    assert set(trainable) == expected
    assert {n for n, p in network.named_parameters() if p.requires_grad} == expected
    final, pre = network.logits(torch.zeros(1, 1, 32, 32))
    (final.sum() + sum(p.sum() for p in pre.values())).backward()
    assert network.conv2d.weight.grad is None and network.conv2d_26.weight.grad is not None
    with pytest.raises(ValueError, match="layer DENSE unknown"):
        set_trainable(network, ["DENSE"])
    assert set(set_trainable(load_network("maxitrack"), ["DENSE"])) == {
        f"{d}.{p}" for d in ("dense", "dense_1", "dense_2") for p in ("weight", "bias", "alpha")
        if not (d == "dense_2" and p == "alpha")}


def run_training(script, checkpoint, out):
    return [sys.executable, str(script), str(checkpoint), str(out)]


def test_a_run_killed_and_resumed_ends_with_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)

    whole = subprocess.run(run_training(script, tmp_path / "whole.ckpt", tmp_path / "whole.pt"),
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.split() == [w for k in range(1, STEPS + 1) for w in ("step", str(k))]

    checkpoint = tmp_path / "killed.ckpt"
    proc = subprocess.Popen(run_training(script, checkpoint, tmp_path / "killed.pt"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 0 < killed_at < STEPS and not (tmp_path / "killed.pt").exists()

    resumed = subprocess.run(run_training(script, checkpoint, tmp_path / "killed.pt"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split()[:2] == ["step", str(killed_at + 1)]  # it went on, not from 0
    assert not [f for f in os.listdir(tmp_path) if "maximask-tmp-" in f]  # a killed write's leftovers are swept
    a, b = torch.load(tmp_path / "whole.pt"), torch.load(tmp_path / "killed.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # frozen layers never moved; trained ones did
    published = network_weights(load_network("maximask"))
    assert np.array_equal(a["conv2d_3.weight"].numpy(), published["conv2d_3.weight"])
    assert not np.array_equal(a["conv2d_27.weight"].numpy(), published["conv2d_27.weight"])
    # the checkpoints hold the same loss history
    assert [r["total"] for r in load_checkpoint(checkpoint)["history"]] == \
        [r["total"] for r in load_checkpoint(tmp_path / "whole.ckpt")["history"]]
