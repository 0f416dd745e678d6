"""Benchmark: the speed cost of portable CPU kernels (`base.cpu_kernels`), stage by stage.

Each setting runs in its own process (the kernels are chosen when torch loads), the two
alternated for `--rounds` rounds; each process times the core work of the heavy stages on
the default params: an MCIS training step, a DeepLab training step, a batch of MB+
saliency maps, the multi-scale inference and CRF of one image. Prints JSON: seconds per
unit (median over rounds) and native / portable speed ratios.

    python -m bench.kernels_bench [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

SETTINGS = ("portable", "native")
REPEATS = 3


def timed(work: Callable[[], None], repeats: int = REPEATS) -> float:
    """Median wall-clock seconds of `work` after one warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure() -> dict[str, float]:
    """Seconds per unit of each stage's core work, with the kernels this process loaded."""
    from dataclasses import replace

    import numpy as np
    import torch

    from bench.classifier_bench import synthetic_batch, training_step
    from mcis_core.classifier.loss import MCISObjective
    from mcis_core.classifier.params import ClassifierParams
    from mcis_core.classifier.train import build_model
    from mcis_core.common.params import load_section
    from mcis_core.dataset.voc import VOC_CLASSES
    from mcis_core.evaluate.crf import dense_crf
    from mcis_core.evaluate.inference import predict_probs
    from mcis_core.evaluate.params import EvaluateParams
    from mcis_core.saliency.mbplus import compute_saliency
    from mcis_core.saliency.params import SaliencyParams
    from mcis_core.segmentation.network import DeepLabLargeFOV
    from mcis_core.segmentation.params import SegmentationParams
    from mcis_core.segmentation.train import model_config, segmentation_loss

    classifier = load_section("classifier", ClassifierParams)
    net = build_model(classifier, len(VOC_CLASSES), seed=0)
    objective = MCISObjective(net, True, True)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    pairs = synthetic_batch(classifier.batch_size, classifier.input_size, classifier.views)

    segmentation = replace(load_section("segmentation", SegmentationParams), pretrained="none")
    deeplab = DeepLabLargeFOV(model_config(segmentation, len(VOC_CLASSES)))
    seg_optimizer = torch.optim.SGD(deeplab.parameters(), lr=1e-3, momentum=0.9)
    crops = torch.randn(segmentation.batch_size, 3, segmentation.crop_size, segmentation.crop_size)
    labels = torch.randint(0, len(VOC_CLASSES) + 1, (len(crops), *crops.shape[-2:]))

    def deeplab_step() -> None:
        seg_optimizer.zero_grad()
        segmentation_loss(deeplab(crops), labels).backward()
        seg_optimizer.step()

    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (150, 160, 3), dtype=np.uint8) for _ in range(16)]
    mbplus = load_section("saliency", SaliencyParams).compute
    evaluate = load_section("evaluate", EvaluateParams)
    image = torch.randn(3, 150, 160)
    rgb = torch.from_numpy(photos[0])
    deeplab.eval()

    def inference() -> None:
        probs = predict_probs(
            deeplab, image, evaluate.scales, evaluate.window, evaluate.stride_ratio, evaluate.flip
        )
        dense_crf(rgb, probs, evaluate.crf)

    return {
        "train_classifier_step": timed(lambda: training_step(objective, optimizer, pairs, True)),
        "train_segmentation_step": timed(deeplab_step),
        "saliency_16_images": timed(
            lambda: compute_saliency(
                photos,
                max_side=mbplus.max_side,
                sweeps=mbplus.sweeps,
                boundary_width=mbplus.boundary_width,
            ),
            repeats=2,
        ),
        "evaluate_one_image": timed(inference),
    }


def worker(setting: str) -> None:
    """Pin the kernels of `setting` (before torch loads), measure, print JSON."""
    from mcis_core.common.kernels import pin_cpu_kernels

    pin_cpu_kernels(setting)
    print(json.dumps(measure()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in SETTINGS}
    for _ in range(args.rounds):
        for setting in SETTINGS:
            command = [sys.executable, "-m", "bench.kernels_bench", "--worker", setting]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            runs[setting].append(json.loads(result.stdout.strip().splitlines()[-1]))
    seconds = {
        s: {k: round(statistics.median(r[k] for r in rs), 4) for k in rs[0]}
        for s, rs in runs.items()
    }
    ratios = {k: round(seconds["portable"][k] / seconds["native"][k], 3) for k in seconds["native"]}
    print(json.dumps({"seconds": seconds, "portable_over_native": ratios}, indent=2))


if __name__ == "__main__":
    main()
