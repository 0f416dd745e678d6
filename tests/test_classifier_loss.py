"""Tests of the MCIS training objective (mcis_core.classifier.loss) against docs/method.md §3.6:
hand-computed losses, and every term rebuilt here from the network's public methods."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcis_core.classifier.loss import (
    MCISObjective,
    complementary_targets,
    multilabel_loss,
    stacked_loss,
)
from mcis_core.classifier.network import CoAttentionNet, ModelConfig
from tests.tolerances import assert_close_to_scale

K = 20
# The loss terms are sums of positive BCE terms (means of up to 80, over up to 4 pairings), in
# float32: summed in another order they move by a few ulps relative, far below a wrong target
RTOL = 1e-5


def labels(*rows: Sequence[int]) -> torch.Tensor:
    """(len(rows), K) 0/1 float targets from lists of positive class indices."""
    out = torch.zeros(len(rows), K)
    for i, row in enumerate(rows):
        out[i, list(row)] = 1.0
    return out


def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Reference multilabel soft margin: -[y log s(x) + (1-y) log(1-s(x))], mean of all cells."""
    return -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits)).mean()


def tiny_net(seed: int = 0, batch_norm: bool = False) -> CoAttentionNet:
    """A narrow BN-free net re-initialised so that every head gives O(1) logits.

    With the default tiny initialisation all logits are ~0 and every BCE term is log 2
    whatever the targets, which would hide wrong targets.
    """
    torch.manual_seed(seed)
    net = CoAttentionNet(ModelConfig(width=0.0625, batch_norm=batch_norm, num_classes=K))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.normal_(std=0.1)
        for head in (net.classifier, net.co_classifier, net.gate):
            head.weight.normal_(std=4.0)
        net.affinity.weight.normal_(std=0.1)
    return net


def spatial_mean(maps: torch.Tensor) -> torch.Tensor:
    return maps.mean(dim=(2, 3))


def reference_terms(
    net: CoAttentionNet,
    anchor: torch.Tensor,
    partner: torch.Tensor,
    views: Sequence[torch.Tensor],
    y_a: torch.Tensor,
    y_b: torch.Tensor,
    coattention: bool,
    contrastive: bool,
    comp_active: tuple[bool, bool],
) -> dict[str, torch.Tensor]:
    """The spec's loss, term by term, from the net's public methods."""
    cls = co = comp = torch.zeros(())
    fa = net.features(anchor)
    s_a = spatial_mean(net.cam(fa))

    # the partner pairing
    fb = net.features(partner)
    cls = cls + bce(torch.cat([s_a, spatial_mean(net.cam(fb))]), torch.cat([y_a, y_b]))
    shared = (y_a.bool() & y_b.bool()).float()
    if coattention:
        fa_att, fb_att = net.coattend(fa, fb)
        co_a, co_b = (
            spatial_mean(net.co_classifier(fa_att)),
            spatial_mean(net.co_classifier(fb_att)),
        )
        co = co + bce(torch.cat([co_a, co_b]), torch.cat([shared, shared]))
        if contrastive:
            if comp_active[0]:
                comp = comp + bce(net.complementary_logits(fa, fa_att), y_a - shared)
            if comp_active[1]:
                comp = comp + bce(net.complementary_logits(fb, fb_att), y_b - shared)

    # the views of the anchor: targets y_a on both sides, no complementary term
    for view in views:
        fv = net.features(view)
        cls = cls + bce(torch.cat([s_a, spatial_mean(net.cam(fv))]), torch.cat([y_a, y_a]))
        if coattention:
            fa_att, fv_att = net.coattend(fa, fv)
            co_a, co_v = (
                spatial_mean(net.co_classifier(fa_att)),
                spatial_mean(net.co_classifier(fv_att)),
            )
            co = co + bce(torch.cat([co_a, co_v]), torch.cat([y_a, y_a]))
    return {"cls": cls, "co": co, "comp": comp, "loss": cls + co + comp}


@pytest.fixture(scope="module")
def batch() -> dict[str, object]:
    """Two anchors with partners and the three views (flip, 0.75x, 2x) of the spec."""
    torch.manual_seed(1)
    anchor = torch.randn(2, 3, 32, 32)
    views = [
        anchor.flip(-1),
        F.interpolate(anchor, size=24, mode="bilinear", align_corners=False),
        F.interpolate(anchor, size=64, mode="bilinear", align_corners=False),
    ]
    return {
        "anchor": anchor,
        "partner": torch.randn(2, 3, 32, 32),
        "views": views,
        # shared classes: {1} and {2}; complementary: a {0, 5} / {}, b {3} / {7}
        "y_a": labels([0, 1, 5], [2]),
        "y_b": labels([1, 3], [2, 7]),
    }


def assert_terms_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(got) == {"cls", "co", "comp", "loss"}
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=RTOL, atol=0, msg=key)


# --- the loss functions ------------------------------------------------------------------


def test_multilabel_loss_by_hand() -> None:
    logits = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])

    def softplus(x: float) -> float:
        return math.log(1 + math.exp(x))

    # y = 1: -log sigmoid(x) = log(1 + e^-x); y = 0: -log(1 - sigmoid(x)) = log(1 + e^x)
    row0 = (softplus(-1.0) + softplus(-2.0) + softplus(-0.5)) / 3
    row1 = (math.log(2.0) + softplus(-3.0) + softplus(-1.0)) / 3
    expected = (row0 + row1) / 2
    # float32 mean of 6 terms against float64 by hand
    assert multilabel_loss(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_stacked_loss_is_one_mean_over_all_rows() -> None:
    torch.manual_seed(2)
    first, second = torch.randn(2, K), torch.randn(1, K)
    y_first, y_second = labels([0], [1, 2]), labels([3])
    got = stacked_loss([first, second], [y_first, y_second])
    # 3 rows weigh equally: not the mean of the two images' means
    expected = (2 * bce(first, y_first) + bce(second, y_second)) / 3
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=0)


def test_complementary_targets_by_hand() -> None:
    y_a, y_b = labels([0, 1], [1]), labels([1, 2], [1])
    comp_a, comp_b = complementary_targets(y_a, y_b)
    assert torch.equal(comp_a, labels([0], []))
    assert torch.equal(comp_b, labels([2], []))


# --- the objective -----------------------------------------------------------------------


def objective_and_reference(
    batch: dict, coattention: bool, contrastive: bool, comp_active: tuple[bool, bool]
) -> tuple[dict, dict]:
    """Loss terms of MCISObjective and of the spec reference on the same tiny net, no grad."""
    net = tiny_net()
    settings = {"coattention": coattention, "contrastive": contrastive}
    with torch.no_grad():
        got = MCISObjective(net, **settings)(**batch, comp_active=comp_active)
        expected = reference_terms(net, **batch, **settings, comp_active=comp_active)
    return got, expected


@pytest.mark.parametrize(
    "comp_active", [(False, False), (True, False), (False, True), (True, True)]
)
def test_objective_matches_spec(batch: dict, comp_active: tuple[bool, bool]) -> None:
    got, expected = objective_and_reference(batch, True, True, comp_active)
    assert_terms_equal(got, expected)
    # the terms are far from log 2 per pairing, so wrong targets would show
    assert abs(got["cls"].item() - 4 * math.log(2)) > 0.1
    assert abs(got["co"].item() - 4 * math.log(2)) > 0.1
    if any(comp_active):
        assert got["comp"].item() > 0.1
    else:
        assert got["comp"].item() == 0.0


def test_objective_comp_sides_add_up(batch: dict) -> None:
    objective = MCISObjective(tiny_net(), coattention=True, contrastive=True)
    with torch.no_grad():
        comp = {
            side: objective(**batch, comp_active=side)["comp"]
            for side in [(True, False), (False, True), (True, True)]
        }
    assert comp[(True, False)] > 0 and comp[(False, True)] > 0
    assert not torch.isclose(comp[(True, False)], comp[(False, True)])
    torch.testing.assert_close(
        comp[(True, True)], comp[(True, False)] + comp[(False, True)], rtol=RTOL, atol=0
    )


def test_objective_without_contrastive_has_no_comp(batch: dict) -> None:
    got, expected = objective_and_reference(batch, True, False, (True, True))
    assert got["comp"].item() == 0.0
    assert_terms_equal(got, expected)


def test_objective_classification_only(batch: dict) -> None:
    got, expected = objective_and_reference(batch, False, False, (True, True))
    assert got["co"].item() == 0.0 and got["comp"].item() == 0.0
    assert torch.equal(got["loss"], got["cls"])  # exact: adding the zero co and comp terms
    assert_terms_equal(got, expected)


def test_objective_without_views_is_the_partner_pairing(batch: dict) -> None:
    got, expected = objective_and_reference({**batch, "views": []}, True, True, (True, True))
    assert_terms_equal(got, expected)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_reuse_anchor_changes_neither_loss_nor_gradients(batch: dict, batch_norm: bool) -> None:
    net = tiny_net(batch_norm=batch_norm)
    if batch_norm:
        net.eval()  # batch statistics would be updated once per features() call
    objective = MCISObjective(net, coattention=True, contrastive=True)
    results = {}
    for reuse in (True, False):
        net.zero_grad(set_to_none=True)
        terms = objective(**batch, comp_active=(True, True), reuse_anchor=reuse)
        terms["loss"].backward()
        grads = {name: p.grad.clone() for name, p in net.named_parameters()}
        results[reuse] = ({k: v.detach() for k, v in terms.items()}, grads)

    (terms_once, grads_once), (terms_again, grads_again) = results[True], results[False]
    assert_terms_equal(terms_once, terms_again)
    assert grads_once.keys() == grads_again.keys() == dict(net.named_parameters()).keys()
    # float32 gradients accumulated in another order, through 16 convs whose weight gradients
    # sum thousands of terms: relative to each tensor's largest gradient
    for name, grad in grads_once.items():
        assert_close_to_scale(grad, grads_again[name], rtol=1e-4, msg=name)
    # every parameter, the first conv of the backbone included, receives gradient
    assert all(grad.abs().sum() > 0 for grad in grads_once.values())
