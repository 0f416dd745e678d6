"""Parameters of the `pseudo_gt` stage (params.yaml section `pseudo_gt`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import param


@dataclass(frozen=True)
class PseudoLabelRules:
    """Thresholds of the pseudo-label rules (mcis_core.pseudo_gt.rules); the original's."""

    score_floor: float = param("scores below this are zeroed (background too)", ge=0, le=1)
    conflict: float = param("more than one score above this -> ignored", ge=0, le=1)
    salient_locmap: float = param("normalised map above this counts as salient", ge=0, le=1)
    salient_background: int = param(
        "background pixel with sal_att >= this -> ignored (256: never)", ge=0, le=256
    )
    min_foreground: float = param("under this object fraction -> image ignored", ge=0, le=1)


@dataclass(frozen=True)
class PseudoGtParams:
    """Pseudo labels from saliency and localization maps (docs/method.md §5)."""

    rules: PseudoLabelRules = param("the thresholds of the rules")
    on_missing: Literal["error", "skip"] = param("an image lacking saliency or maps: stop or skip")
