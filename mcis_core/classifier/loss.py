"""The MCIS training objective: every loss term of one step (docs/method.md §3.6).

For anchors a with partners b and views v of a (flip, 0.75x, 2x), all multilabel
soft-margin losses over the two images' rows stacked:
    cls([s_a; s_b], [y_a; y_b]) + co([co_a; co_b], [y_a & y_b; y_a & y_b])
  + sum_v cls([s_a; s_v], [y_a; y_a]) + co([co_a; co_v], [y_a; y_a])
  + comp(comp_a, y_a - shared) + comp(comp_b, y_b - shared)   (contrastive epochs)
The anchor's features are computed once and shared by its four pairings; the
original recomputed them per pairing (`reuse_anchor=False`, kept for the benchmark).
The objective is an nn.Module so DistributedDataParallel sees one forward per step;
without a partner it is the plain single-image loss of the warm-up epochs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mcis_core.classifier.network import CoAttentionNet, global_average

LOSS_TERMS = ("cls", "co", "comp")


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Multilabel soft margin: BCE on sigmoid, mean over classes, then over rows."""
    return F.multilabel_soft_margin_loss(logits, targets)


def stacked_loss(logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """One multilabel loss over the rows of several images stacked."""
    return multilabel_loss(torch.cat(list(logits)), torch.cat(list(targets)))


def complementary_targets(
    y_a: torch.Tensor, y_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes each image has that its partner lacks."""
    return y_a * (1 - y_b), y_b * (1 - y_a)


class MCISObjective(nn.Module):
    """forward(batch) -> {"cls", "co", "comp", "loss"} for one training step."""

    def __init__(self, net: CoAttentionNet, coattention: bool, contrastive: bool) -> None:
        super().__init__()
        self.net = net
        self.coattention = coattention
        self.contrastive = contrastive

    def forward(
        self,
        anchor: torch.Tensor,  # (B, 3, S, S), colour-jittered
        partner: torch.Tensor | None,  # (B, 3, S, S), colour-jittered; None: warm-up step
        views: Sequence[torch.Tensor],  # each (B, 3, s, s): flipped / rescaled anchors
        y_a: torch.Tensor,  # (B, K) 0/1
        y_b: torch.Tensor | None,  # (B, K) 0/1
        comp_active: tuple[bool, bool] = (False, False),  # per side, decided over all processes
        reuse_anchor: bool = True,
    ) -> dict[str, torch.Tensor]:
        totals = dict.fromkeys(LOSS_TERMS, anchor.new_zeros(()))
        if partner is None:
            totals["cls"] = multilabel_loss(
                global_average(self.net.cam(self.net.features(anchor))), y_a
            )
            totals["loss"] = totals["cls"]
            return totals
        fa = self.net.features(anchor) if reuse_anchor else None
        # the partner pairing alone has complementary classes: a view shares all of a's
        pairings = [(partner, y_b, comp_active if self.contrastive else (False, False))]
        pairings += [(view, y_a, (False, False)) for view in views]
        for images, y_other, active in pairings:
            f_anchor = fa if fa is not None else self.net.features(anchor)
            terms = self._pairing(f_anchor, self.net.features(images), y_a, y_other, active)
            for name, value in terms.items():
                totals[name] = totals[name] + value
        totals["loss"] = totals["cls"] + totals["co"] + totals["comp"]
        return totals

    def _pairing(
        self,
        fa: torch.Tensor,
        fo: torch.Tensor,
        y_a: torch.Tensor,
        y_o: torch.Tensor,
        comp_active: tuple[bool, bool],
    ) -> dict[str, torch.Tensor]:
        """Loss terms of one pairing of anchor features `fa` with other features `fo`."""
        net = self.net
        logits = [global_average(net.cam(fa)), global_average(net.cam(fo))]
        terms = {"cls": stacked_loss(logits, [y_a, y_o])}
        if not self.coattention:
            return terms
        shared = y_a * y_o
        fa_att, fo_att = net.coattend(fa, fo)
        co_logits = [
            global_average(net.co_classifier(fa_att)),
            global_average(net.co_classifier(fo_att)),
        ]
        terms["co"] = stacked_loss(co_logits, [shared, shared])
        sides = ((fa, fa_att), (fo, fo_att))
        comp = [multilabel_loss(net.complementary_logits(f, att), target)
                for (f, att), target, on in zip(sides, complementary_targets(y_a, y_o), comp_active,
                                                strict=True) if on]  # fmt: skip
        if comp:
            terms["comp"] = torch.stack(comp).sum()
        return terms
