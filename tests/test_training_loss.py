"""The training loss (paper §3.1.2) against a direct NumPy computation, and a few Adam steps."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from maximask.classes import ABBREVIATIONS, NCLASSES
from maximask.training import load_network
from maximask.training.loss import (AUX_THREE_SMALLEST, AUX_TWO_SMALLEST, MaskLoss, TrackLoss, class_fractions,
                                    class_weights, kernel_norms, pixel_weights)

# The 3x3 Gaussian of unit sigma written out: centre 1, edges e^-1/2, corners e^-1.
E1, E2 = np.exp(-0.5), np.exp(-1.0)
GAUSSIAN = np.array([[E2, E1, E2], [E1, 1.0, E1], [E2, E1, E2]]) / (1 + 4 * E1 + 4 * E2)


def random_labels(rng, shape):
    """0/1 labels, every pixel at least background, some with several classes."""
    labels = (rng.random(shape) < 0.1).astype(np.float32)
    labels[:, ABBREVIATIONS.index("BG")] = 1 - labels[:, :ABBREVIATIONS.index("BG")].max(axis=1)
    return labels


def numpy_bce(logits, labels):
    """-(y log s + (1 - y) log(1 - s)), s = sigmoid(logits), in float64."""
    s = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return -(labels * np.log(s) + (1 - labels) * np.log(1 - s))


def numpy_loss(final, pre, labels, w_c, aux):
    """Eq. 12-16 and the auxiliary losses, computed directly."""
    raw = (labels * w_c[None, :, None, None]).sum(axis=1)
    smooth = np.stack([ndimage.convolve(r, GAUSSIAN, mode="constant", cval=0.0) for r in raw])

    def cross_entropy(logits):
        return (smooth * numpy_bce(logits, labels).sum(axis=1)).sum() / len(labels)

    return cross_entropy(final) + sum(w * cross_entropy(pre[level]) for level, w in aux.items())


def test_class_weights_follow_eq_15_and_16():
    fractions = np.array([0.01, 0.2, 0.5, 0.001] + [0.05] * (NCLASSES - 4))
    w = class_weights(fractions)
    np.testing.assert_allclose(w, 1 / (fractions * (1 / fractions).sum()), rtol=1e-12)
    assert w.sum() == pytest.approx(1, abs=1e-12)
    assert w[3] / w[2] == pytest.approx(0.5 / 0.001, rel=1e-12)  # w_i / w_j = P_j / P_i


def test_absent_classes_get_no_weight_and_the_others_still_sum_to_one():
    fractions = np.zeros(NCLASSES)
    fractions[[0, 13]] = [0.02, 0.98]
    w = class_weights(fractions)
    np.testing.assert_allclose(w[[0, 13]], [0.98, 0.02], rtol=1e-12)
    assert (np.delete(w, [0, 13]) == 0).all()
    with pytest.raises(ValueError, match="at least one > 0"):
        class_weights(np.zeros(NCLASSES))


def test_class_fractions_count_pixels_per_class():
    labels = np.zeros((2, NCLASSES, 4, 5), np.uint8)
    labels[0, 3, 1, 1] = 1
    labels[1, 3, 2, 2:4] = 1
    labels[:, 13] = 1
    fractions = class_fractions(labels)
    assert fractions[3] == pytest.approx(3 / 40) and fractions[13] == 1 and fractions[0] == 0


def test_pixel_weights_are_the_class_weight_sums_smoothed_by_a_unit_gaussian():
    rng = np.random.default_rng(3)
    labels = random_labels(rng, (2, NCLASSES, 9, 7))
    w_c = class_weights(class_fractions(labels))
    ours = pixel_weights(torch.from_numpy(labels).double(), w_c).numpy()
    raw = (labels * w_c[None, :, None, None]).sum(axis=1)
    expected = np.stack([ndimage.convolve(r, GAUSSIAN, mode="constant") for r in raw])
    assert ours.shape == (2, 1, 9, 7)
    np.testing.assert_allclose(ours[:, 0], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("aux", [AUX_THREE_SMALLEST, AUX_TWO_SMALLEST, {}])
def test_loss_matches_numpy_on_a_small_case(aux):
    rng = np.random.default_rng(4)
    shape = (2, NCLASSES, 9, 7)
    labels = random_labels(rng, shape)
    final = rng.normal(0, 3, shape).astype(np.float32)
    pre = {level: rng.normal(0, 3, shape).astype(np.float32) for level in (0, 1, 2, 3, 4)}
    w_c = class_weights(class_fractions(labels))

    class Outputs(torch.nn.Module):  # stands for a network returning these logits
        def logits(self, x):
            return torch.from_numpy(final), {k: torch.from_numpy(v) for k, v in pre.items()}

    loss = MaskLoss(w_c, aux=aux, regularisation="NONE")(Outputs(), None, torch.from_numpy(labels))
    expected = numpy_loss(final, pre, labels, w_c, aux)
    assert loss["total"].item() == pytest.approx(expected, rel=1e-5)
    assert loss["main"].item() == pytest.approx(numpy_loss(final, pre, labels, w_c, {}), rel=1e-5)
    assert loss["regularisation"].item() == 0


def test_regularisation_is_the_sum_of_kernel_norms():
    network = load_network("maximask")
    kernels = {k: v.detach().numpy().astype(np.float64) for k, v in network.state_dict().items() if v.dim() == 4}
    assert len(kernels) == 28  # every convolution, no bias
    expected = sum(np.sqrt((k ** 2).sum()) for k in kernels.values())
    assert kernel_norms(network).item() == pytest.approx(expected, rel=1e-5)

    reference = {k: v.clone() for k, v in network.state_dict().items()}
    assert kernel_norms(network, reference).item() == 0
    with torch.no_grad():
        network.conv2d_3.weight += 0.01
        network.conv2d_3.bias += 1.0  # biases are not regularised
    assert kernel_norms(network, reference).item() == pytest.approx(0.01 * np.sqrt(128 * 128 * 9), rel=1e-4)


def test_track_loss_is_the_softmax_cross_entropy(network_tiles):
    network = load_network("maxitrack")
    x = torch.from_numpy(np.arcsinh(network_tiles["inputs"])[:, None].astype(np.float32))
    labels = (np.array(network_tiles["names"]) == "tracking").astype(np.int64)
    with torch.no_grad():
        logits = network.logits(x).numpy().astype(np.float64)
        plain = TrackLoss(regularisation="NONE")(network, x, torch.from_numpy(labels))
        weighted = TrackLoss([1.0, 3.0], regularisation="ZERO", strength=0.5)(network, x, torch.from_numpy(labels))
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    nll = -log_p[np.arange(3), labels]
    assert plain["total"].item() == pytest.approx(nll.mean(), rel=1e-5)
    w = np.array([1.0, 3.0])[labels]
    assert weighted["main"].item() == pytest.approx((w * nll).sum() / w.sum(), rel=1e-5)
    assert weighted["regularisation"].item() == pytest.approx(0.5 * kernel_norms(network).item(), rel=1e-6)


def test_published_regularisation_needs_a_reference():
    with pytest.raises(ValueError, match="needs the reference"):
        MaskLoss(np.ones(NCLASSES) / NCLASSES)
    with pytest.raises(ValueError, match="regularisation L1 unknown"):
        MaskLoss(np.ones(NCLASSES) / NCLASSES, regularisation="L1")


def test_a_few_adam_steps_lower_the_loss_on_a_fixed_batch(network_tiles):
    """From the published weights, fit a faint trail the network does not flag yet."""
    torch.manual_seed(0)
    names = list(network_tiles["names"])
    sky = network_tiles["inputs"][names.index("sky"), :64, :64].astype(np.float32)
    rows = np.arange(64)
    trail = np.zeros((64, 64), bool)
    trail[rows, (rows * 0.7 + 5).astype(int)] = True
    labels = np.zeros((1, NCLASSES, 64, 64), np.float32)
    labels[0, ABBREVIATIONS.index("TRL")] = trail
    labels[0, ABBREVIATIONS.index("BG")] = ~trail
    x = torch.from_numpy(np.arcsinh(sky + 3.0 * trail)[None, None].astype(np.float32))
    y = torch.from_numpy(labels)

    network = load_network("maximask")
    loss = MaskLoss(class_weights(class_fractions(labels)), reference=network, strength=1.0)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-4)
    history = []
    for _ in range(6):
        optimiser.zero_grad()
        parts = loss(network, x, y)
        parts["total"].backward()
        optimiser.step()
        history.append(parts["total"].item())
    with torch.no_grad():
        after = loss(network, x, y)
    history.append(after["total"].item())
    assert all(b < a for a, b in zip(history, history[1:])), history
    assert history[-1] < 0.95 * history[0], history
    assert after["main"].item() < history[0]
    assert after["regularisation"].item() > 0  # the weights moved away from the published ones


def test_distillation_scores_the_focus_classes_and_holds_the_others_to_the_teacher():
    rng = np.random.default_rng(5)
    shape = (2, NCLASSES, 9, 7)
    labels = random_labels(rng, shape)
    student = rng.normal(0, 3, shape).astype(np.float32)
    teacher = rng.normal(0, 3, shape).astype(np.float32)
    w_c = class_weights(class_fractions(labels))
    trl = ABBREVIATIONS.index("TRL")

    class Outputs(torch.nn.Module):
        def __init__(self, final):
            super().__init__()
            self.final = final

        def logits(self, x):
            return torch.from_numpy(self.final), {}

    loss = MaskLoss(w_c, aux={}, regularisation="NONE", teacher=Outputs(teacher), focus=[trl], distill=2.5)
    parts = loss(Outputs(student), torch.zeros(2, 1, 9, 7), torch.from_numpy(labels))
    raw = (labels * w_c[None, :, None, None]).sum(axis=1)
    smooth = np.stack([ndimage.convolve(r, GAUSSIAN, mode="constant", cval=0.0) for r in raw])
    main = (smooth * numpy_bce(student[:, trl], labels[:, trl])).sum() / 2  # the focus class only
    others = [k for k in range(NCLASSES) if k != trl]
    distill = 2.5 * ((student[:, others].astype(np.float64) - teacher[:, others]) ** 2).mean(axis=1).sum() / 2
    assert parts["main"].item() == pytest.approx(main, rel=1e-5)
    assert parts["distillation"].item() == pytest.approx(distill, rel=1e-5)
    assert parts["total"].item() == pytest.approx(main + distill, rel=1e-5)
    # labels of the held classes do not matter; the teacher's logits of the focus class neither
    labels[:, others] = 1 - labels[:, others]
    teacher[:, trl] += 10
    again = MaskLoss(w_c, aux={}, regularisation="NONE", teacher=Outputs(teacher), focus=[trl], distill=2.5)(
        Outputs(student), torch.zeros(2, 1, 9, 7), torch.from_numpy(labels))
    assert again["distillation"].item() == pytest.approx(distill, rel=1e-5)
    with pytest.raises(ValueError, match="focus classes"):
        MaskLoss(w_c, teacher=Outputs(teacher), regularisation="NONE")


def test_without_a_teacher_focus_classes_do_not_narrow_the_cross_entropy():
    rng = np.random.default_rng(6)
    shape = (2, NCLASSES, 9, 7)
    labels = random_labels(rng, shape)
    final = rng.normal(0, 3, shape).astype(np.float32)
    w_c = class_weights(class_fractions(labels))

    class Outputs(torch.nn.Module):
        def logits(self, x):
            return torch.from_numpy(final), {}

    every = MaskLoss(w_c, aux={}, regularisation="NONE")(Outputs(), None, torch.from_numpy(labels))
    focused = MaskLoss(w_c, aux={}, regularisation="NONE", focus=[ABBREVIATIONS.index("TRL")])(
        Outputs(), None, torch.from_numpy(labels))
    assert focused["main"].item() == every["main"].item()  # maxitrain passes FOCUS_CLASSES either way
    assert "distillation" not in focused
