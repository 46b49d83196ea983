"""The optimisation loop: seeded Adam, checkpoints every N steps, resumable after a kill.

A resumed run ends with the weights of the uninterrupted one, provided the batches are a
function of the step number only (``batches(step)``, e.g. seeded by it) and the run uses
the same device and thread count: the checkpoint holds the weights, Adam's moments, the
step, the losses so far and the RNG state, and is replaced atomically.
"""
import os
import time
import warnings

import torch

from maximask.outputs import write_atomically


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from (the message names it)."""


class CheckpointMismatch(CheckpointError):
    """A checkpoint written by a run of another configuration (its `tag` differs)."""


def load_checkpoint(path):
    """The checkpoint dict at `path` (keys step, network, optimiser, rng, cuda_rng, history);
    CheckpointError if the file is not a checkpoint (garbage, truncated, unreadable)."""
    try:
        with warnings.catch_warnings():  # torch warns about a garbage file's pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... on a bad file
        reason = getattr(exc, "strerror", None) or "not a maxitrain checkpoint (damaged or truncated?)"
        raise CheckpointError(f"checkpoint {path}: cannot be read: {reason}") from None
    if not isinstance(state, dict) or not {"step", "network", "optimiser", "rng", "history"} <= set(state):
        raise CheckpointError(f"checkpoint {path}: cannot be read: not a maxitrain checkpoint")
    return state


def train(network, loss, batches, steps, lr=1e-4, seed=0, checkpoint=None, every=100, log=None,
          validate=None, tag=None):
    """Minimise loss(network, x, labels)["total"] by Adam over steps 0..steps-1.

    batches: step -> (x, labels) tensors on the network's device; lr: Adam's step size;
    seed: torch's RNG seed at step 0; checkpoint: a file path, read to resume when it exists
    and written every `every` steps and at the end; log: called with each step's record
    ({"step", "seconds", and each loss part}) once that step is done; validate: called with
    the step number after each step, returns None or a dict added to that step's record
    (e.g. a validation loss), in eval mode. tag: any JSON-like value stored in the
    checkpoint; resuming from one of another tag raises CheckpointMismatch. Only parameters that
    require gradients are optimised (see ``set_trainable``). The loss's reference weights
    (regularisation towards the published weights) are the caller's: build the loss from
    the starting weights, not from a checkpoint. Returns the records of all steps, those
    of earlier runs included.
    """
    parameters = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(parameters, lr=lr)
    torch.manual_seed(seed)
    start, history = 0, []
    if checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint)
        if state.get("tag") != tag:
            raise CheckpointMismatch(f"checkpoint {checkpoint} was written by a run of another configuration")
        network.load_state_dict(state["network"])
        optimiser.load_state_dict(state["optimiser"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start, history = state["step"], list(state["history"])

    network.train()
    for step in range(start, steps):
        t0 = time.perf_counter()
        x, labels = batches(step)
        optimiser.zero_grad()
        parts = loss(network, x, labels)
        parts["total"].backward()
        optimiser.step()
        record = {"step": step + 1, "seconds": time.perf_counter() - t0, **{k: v.item() for k, v in parts.items()}}
        if validate is not None:
            network.eval()
            record.update(validate(step + 1) or {})
            network.train()
        history.append(record)
        if log is not None:
            log(record)
        if checkpoint is not None and ((step + 1) % every == 0 or step + 1 == steps):
            state = {"step": step + 1, "network": network.state_dict(), "optimiser": optimiser.state_dict(),
                     "rng": torch.get_rng_state(), "history": history, "tag": tag,
                     "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
            write_atomically(os.fspath(checkpoint), lambda tmp: torch.save(state, tmp))
    network.eval()
    return history
