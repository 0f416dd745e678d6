"""Parameters of the `saliency` stage (params.yaml section `saliency`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcis_core.common.params import RemoteFile, param


@dataclass(frozen=True)
class SaliencyComputeParams:
    """Minimum Barrier salient object detection, MB+ (mcis_core.saliency.mbplus)."""

    max_side: int = param("images shrink so their longer side is at most this (MB+: 300)", ge=8)
    sweeps: int = param("raster + anti-raster passes of the barrier distance transform", ge=1)
    boundary_width: int = param("pixels of each image border used as background seeds", ge=1)
    batch_size: int = param("images per call (output does not depend on it)", ge=1)


@dataclass(frozen=True)
class SaliencyParams:
    """Where the saliency maps come from."""

    source: Literal["compute", "fetch", "folder", "ground_truth"] = param(
        "compute: MB+; fetch: an archive of maps; folder: a local folder of maps; "
        "ground_truth: the aug masks' foreground, leaks labels (an upper bound, analysis only)"
    )
    fetch: RemoteFile | None = param("archive of <image>.png maps, for source: fetch")
    folder: str | None = param(
        "folder of <image>.png maps, for source: folder (copied into the stage output; "
        "DVC does not watch its contents)"
    )
    compute: SaliencyComputeParams = param("MB+ settings, for source: compute")

    def relations(self) -> list[tuple[bool, str]]:
        return [
            (
                self.source == "fetch" and self.fetch is None,
                "fetch: required when saliency.source is fetch",
            ),
            (
                self.source == "folder" and not self.folder,
                "folder: required when saliency.source is folder",
            ),
        ]
