"""Benchmark: the dense CRF in torch (mcis_core.evaluate.crf) against pydensecrf2.

A plain run (`python -m bench.crf_bench`) puts the lattice CRF (params.method "lattice") and
pydensecrf2 side by side on one CPU thread (bench.crf_photos): scikit-image's bundled photos at
VOC size 500 x 375 and at smaller sizes, with stand-in class probabilities, for 1 and 10
mean-field iterations: per image the label agreement and the time of each, the ratio of the
mean times (pydensecrf / lattice: above 1, the lattice is faster), with the lattice's
position-only kernel cached (as in the evaluate stage, where image sizes repeat) and cold.
When a trained network and the `download` stage's data/voc exist, the run adds the
comparison below on val with the network's probabilities.

`--voc` runs that comparison alone, with `--method exact` (the O(N^2) reference) or lattice:
both CRFs on the CPU, side by side per image, on the first N val images of data/voc with the
settings of params.yaml's `evaluate.crf`. The class probabilities are the val predictions of
the trained segmentation network (data/segmentation/model.pt, the evaluate stage's
multi-scale inference) when it exists; otherwise they are made from the ground truth: the
one-hot mask (void pixels belong to no class), box-blurred, scaled into logits with Gaussian
noise added, softmax over the 21 classes. Reports the time per image of each, the
argmax agreement between the two over all pixels, how many labels each CRF changed (agreement
means little where neither changes anything) and pixel accuracy against the ground truth.
pydensecrf is single-threaded; torch runs with --threads (default 1). Without pydensecrf
installed its entries are null. Needs the `download` stage output (data/voc). Prints JSON.

    python -m bench.crf_bench [--repeats R]
    python -m bench.crf_bench --voc [--method exact|lattice] [--images N] [--threads T]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from mcis_core.common.io import read_gray, read_rgb
from mcis_core.common.layout import (
    IGNORE_INDEX,
    VAL,
    fine_mask_path,
    image_path,
    read_classes,
    read_split,
)
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import stage_paths
from mcis_core.evaluate.crf import dense_crf
from mcis_core.evaluate.evaluation import network_probs
from mcis_core.evaluate.params import CrfParams, EvaluateParams
from mcis_core.segmentation.network import load_segmentation_model

try:
    import pydensecrf.densecrf as densecrf
except ImportError:
    densecrf = None

BLUR = 9  # box blur of the one-hot mask, pixels
LOGIT_SCALE = 5.0
NOISE = 1.0  # standard deviation of the logit noise
SEED = 0
PHOTO_SIZES = [(375, 500), (150, 200), (75, 100), (24, 32)]  # (H, W): VOC size, then small
PHOTO_ITERATIONS = [1, 10]


def noisy_probs(mask: np.ndarray, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """Softmax of blurred one-hot ground truth plus noise: (num_classes, H, W) float32.

    num_classes counts the background (21 for VOC).
    """
    labels = torch.from_numpy(mask.astype(np.int64))
    one_hot = (labels[None] == torch.arange(num_classes)[:, None, None]).float()
    blurred = F.avg_pool2d(one_hot[None], BLUR, stride=1, padding=BLUR // 2)[0]
    noise = torch.randn(blurred.shape, generator=generator)
    return torch.softmax(LOGIT_SCALE * blurred + NOISE * noise, dim=0)


def reference_crf(image: np.ndarray, probs: np.ndarray, params: CrfParams) -> np.ndarray:
    """pydensecrf's mean-field Q (C, H, W) with the same settings."""
    classes, height, width = probs.shape
    crf = densecrf.DenseCRF2D(width, height, classes)
    unary = -np.log(np.clip(probs, params.prob_floor, 1.0)).reshape(classes, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(
        sxy=params.bilateral_sxy,
        srgb=params.bilateral_srgb,
        rgbim=np.ascontiguousarray(image),
        compat=params.bilateral_compat,
    )
    return np.array(crf.inference(params.iterations)).reshape(classes, height, width)


def timed(function, *args) -> tuple[float, np.ndarray]:
    """Seconds of one call and the argmax labels (H, W) of the probabilities it returns."""
    started = time.perf_counter()
    refined = function(*args)
    seconds = time.perf_counter() - started
    return seconds, np.asarray(refined.argmax(0))


def voc_bench(num_images: int = 20, threads: int = 1, method: str = "exact") -> dict:
    """The CRF (`method`) against pydensecrf on val images of data/voc, summed: a dict."""
    torch.set_num_threads(threads)
    base, evaluate = load_section("base", BaseParams), load_section("evaluate", EvaluateParams)
    evaluate = dataclasses.replace(evaluate, crf=dataclasses.replace(evaluate.crf, method=method))
    paths = stage_paths(base.data_dir)
    voc, model_path = paths.voc, paths.segmentation_model
    net = None
    if model_path.is_file():
        net, _ = load_segmentation_model(model_path, torch.device("cpu"))
    num_classes = len(read_classes(voc)) + 1  # the classes and the background
    names = read_split(voc, VAL)[:num_images]
    params, generator = evaluate.crf, torch.Generator().manual_seed(SEED)
    seconds = {"ours": 0.0, "pydensecrf": 0.0}
    counts = dict.fromkeys(("pixels", "valid", "agree", "changed_ours", "changed_ref"), 0)
    correct = dict.fromkeys(("input", "ours", "pydensecrf"), 0)
    sizes, agreements = [], []
    for index, name in enumerate(names):
        image = np.array(read_rgb(image_path(voc, name)))  # writable, for pydensecrf
        mask = read_gray(fine_mask_path(voc, name))
        if net is not None:
            probs = network_probs(net, image, evaluate)
        else:
            probs = noisy_probs(mask, num_classes, generator)
        if index == 0:  # warm-up: allocator, kernels
            dense_crf(torch.from_numpy(image), probs, params)
        spent, ours = timed(dense_crf, torch.from_numpy(image), probs, params)
        seconds["ours"] += spent
        before, valid = probs.argmax(0).numpy(), mask != IGNORE_INDEX
        sizes.append(mask.shape)
        counts["pixels"] += mask.size
        counts["valid"] += int(valid.sum())
        counts["changed_ours"] += int((ours != before).sum())
        correct["input"] += int((before == mask)[valid].sum())
        correct["ours"] += int((ours == mask)[valid].sum())
        if densecrf is not None:
            spent, ref = timed(reference_crf, image, probs.numpy(), params)
            seconds["pydensecrf"] += spent
            counts["agree"] += int((ours == ref).sum())
            agreements.append(float((ours == ref).mean()))
            counts["changed_ref"] += int((ref != before).sum())
            correct["pydensecrf"] += int((ref == mask)[valid].sum())
    have_ref = densecrf is not None
    result = {
        "images": len(names), "method": method, "threads": threads, "pydensecrf_threads": 1,
        "probabilities": "segmentation network" if net is not None else "noisy ground truth",
        "mean_image_size": [round(float(np.mean([s[i] for s in sizes])), 1) for i in (0, 1)],
        "largest_image_size": list(max(sizes, key=lambda s: s[0] * s[1])),
        "ms_per_image": 1000 * seconds["ours"] / len(names),
        "pydensecrf_ms_per_image": 1000 * seconds["pydensecrf"] / len(names) if have_ref else None,
        "agreement": counts["agree"] / counts["pixels"] if have_ref else None,
        "worst_image_agreement": min(agreements) if have_ref else None,
        "changed_by_ours": counts["changed_ours"] / counts["pixels"],
        "changed_by_pydensecrf": counts["changed_ref"] / counts["pixels"] if have_ref else None,
        "accuracy_input": correct["input"] / counts["valid"],
        "accuracy_ours": correct["ours"] / counts["valid"],
        "accuracy_pydensecrf": correct["pydensecrf"] / counts["valid"] if have_ref else None,
    }  # fmt: skip
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


def main(repeats: int = 3) -> dict:
    """Lattice against pydensecrf on photos (and on VOC val with a trained network): a dict."""
    from bench.crf_photos import photo_bench  # it imports this module

    torch.set_num_threads(1)
    params = load_section("evaluate", EvaluateParams).crf
    report = {"threads": 1, "pydensecrf_threads": 1, "repeats": repeats}
    report["photos"] = photo_bench(params, PHOTO_SIZES, PHOTO_ITERATIONS, repeats)
    paths = stage_paths(load_section("base", BaseParams).data_dir)
    have_voc = paths.voc.is_dir() and paths.segmentation_model.is_file()
    report["voc_val_network"] = voc_bench(method="lattice") if have_voc else None
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Dense CRF in torch vs pydensecrf.")
    parser.add_argument("--voc", action="store_true", help="only the VOC val comparison")
    parser.add_argument("--method", choices=("exact", "lattice"), default="exact")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.voc:
        print(json.dumps(voc_bench(args.images, args.threads, args.method), indent=2))
    else:
        print(json.dumps(main(args.repeats), indent=2))
