"""Parameters of the `locmaps` stage (params.yaml section `locmaps`).

The classifier's input size, views and classes come with the exported model.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcis_core.common.params import param


@dataclass(frozen=True)
class LocmapsParams:
    """Co-attention localization maps of the training images (docs/method.md §4)."""

    partners: int = param("partner images per positive class, drawn with replacement", ge=1)
    view_gate: float = param("a map after M0 counts only if sigmoid(its mean) > this", ge=0, lt=1)
    naive: bool = param("recompute both images' features for every pairing, as the original")
    threshold_step: float = param("background thresholds step..1-step of the quality curve",
                                  gt=0, lt=0.5)  # fmt: skip
