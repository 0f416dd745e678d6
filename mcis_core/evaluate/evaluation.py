"""The evaluate stage's work: predictions on a split, scored without and with the dense CRF.

Each image goes through multi-scale, sliding-window, flip inference
(`evaluate.inference`), the averaged probabilities through the fully connected CRF
(`evaluate.crf`); the CRF-refined labels are saved as VOC palette PNGs (the
format the VOC evaluation server takes). With ground truth, confusion matrices of
both are summed over the split (docs/method.md §7.3), and a few overlays of image,
ground truth and prediction are kept for the README and `dvc plots`.

Several processes share the split: each predicts every world-th image into one folder,
their confusion matrices are summed and the overlays gathered in the main process, so
that the outputs equal a single process's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from tqdm import tqdm

from mcis_core.common.io import read_gray, read_rgb
from mcis_core.common.layout import fine_mask_path, image_path, save_mask, voc_palette
from mcis_core.common.paths import label_path
from mcis_core.evaluate.crf import dense_crf
from mcis_core.evaluate.inference import predict_probs
from mcis_core.evaluate.params import EvaluateParams
from mcis_core.models.inputs import imagenet_normalize
from mcis_core.scoring.segmentation import confusion_matrix
from mcis_core.training.process import (
    Process,
    gather_to_main,
    process_share,
    sum_across_processes,
)

CELL_PIXELS = 16  # side of one cell of the confusion-matrix image


@dataclass
class Evaluation:
    """Confusion matrices summed over the split (None without ground truth) and the kept
    overlays (in the main process only)."""

    confusion: np.ndarray | None = None
    confusion_crf: np.ndarray | None = None
    overlays: dict[str, np.ndarray] = field(default_factory=dict)


def network_probs(net: torch.nn.Module, rgb: np.ndarray, params: EvaluateParams) -> torch.Tensor:
    """(C, H, W) class probabilities of one (H, W, 3) uint8 image: scales, windows, flips."""
    image = imagenet_normalize(TF.to_tensor(rgb)).to(next(net.parameters()).device)
    return predict_probs(
        net,
        image,
        params.scales,
        params.window,
        params.stride_ratio,
        params.flip,
        params.pad_to_window,
    )


def predict(
    net: torch.nn.Module, rgb: np.ndarray, params: EvaluateParams
) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) uint8 labels of one (H, W, 3) uint8 image: before and after the CRF."""
    device = next(net.parameters()).device  # the CRF runs where the network does
    probs = network_probs(net, rgb, params).to(device)
    refined = dense_crf(torch.from_numpy(rgb).to(device), probs, params.crf)
    return (
        probs.argmax(0).to(torch.uint8).cpu().numpy(),
        refined.argmax(0).to(torch.uint8).cpu().numpy(),
    )


def evaluate_split(
    net: torch.nn.Module,
    voc_dir: Path,
    names: Sequence[str],
    out: Path,
    params: EvaluateParams,
    with_truth: bool,
    process: Process,
) -> Evaluation:
    """Write out/<name>.png (CRF labels) for this process's share of the images; score all of
    them if possible."""
    result = Evaluation()
    num_classes = net.config.num_classes
    if with_truth:
        result.confusion = np.zeros((num_classes, num_classes), np.int64)
        result.confusion_crf = np.zeros_like(result.confusion)
    net.eval()
    share = process_share(len(names), process)
    with torch.no_grad():
        for index in tqdm(share, desc="evaluate", unit="img", disable=not process.is_main):
            name = names[index]
            rgb = read_rgb(image_path(voc_dir, name))
            plain, refined = predict(net, rgb, params)
            save_mask(label_path(out, name), refined)
            if not with_truth:
                continue
            truth = read_gray(fine_mask_path(voc_dir, name))
            result.confusion += confusion_matrix(plain, truth, num_classes)
            result.confusion_crf += confusion_matrix(refined, truth, num_classes)
            if index < params.examples:
                result.overlays[name] = overlay(rgb, truth, refined)
    return combined(result, names, process)


def combined(own: Evaluation, names: Sequence[str], process: Process) -> Evaluation:
    """The processes' evaluations as one: confusion matrices summed (in every process), the
    overlays gathered in the main process, in list order."""
    overlays = gather_to_main(own.overlays)
    result = Evaluation(overlays={name: overlays[name] for name in names if name in overlays})
    if own.confusion is not None:
        result.confusion = sum_across_processes(own.confusion, process.device)
        result.confusion_crf = sum_across_processes(own.confusion_crf, process.device)
    return result


def colourise(labels: np.ndarray) -> np.ndarray:
    """(H, W) label map -> (H, W, 3) uint8 in the VOC palette (255 stays its void colour)."""
    palette = np.array(voc_palette(), np.uint8).reshape(-1, 3)
    return palette[labels]


def overlay(rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Image, ground truth and prediction side by side, (H, 3W, 3) uint8."""
    return np.concatenate([rgb, colourise(truth), colourise(pred)], axis=1)


def confusion_image(confusion: np.ndarray) -> Image.Image:
    """The row-normalised confusion matrix as a grayscale picture (white = all of the row)."""
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    cells = np.round(255 * share).astype(np.uint8)
    return Image.fromarray(cells, mode="L").resize(
        (cells.shape[1] * CELL_PIXELS, cells.shape[0] * CELL_PIXELS), Image.Resampling.NEAREST
    )
