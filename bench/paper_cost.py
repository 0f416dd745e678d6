"""Benchmark: what the paper's setting (conf/profile/paper.yaml) costs on PASCAL VOC.

MCIS (Sun et al., "Mining Cross-Image Semantics for Weakly Supervised Semantic
Segmentation", ECCV 2020) at full size: per unit of work of each heavy stage, on this CPU,
the wall time, the peak resident memory and the FLOPs; then the totals over VOC, on this CPU
and estimated for one and for eight GPUs (the `gpu` entry of the JSON states how).

- Units: a classifier step (batch_size anchor/partner pairs, each anchor also paired with
  its views), the localization maps of one image (its bank features, its views' features,
  the view pairings, `partners` pairings per positive class), one segmentation crop (forward
  and backward at batch 1, plus its share of the optimiser step), the network inference of
  one 375 x 500 val image (every scale, window and flip) and its dense CRF. Saliency is not
  measured: the paper profile reads the authors' precomputed maps.
- Networks at the paper's size with random weights and random inputs (the CRF on a photo:
  the lattice's cost depends on the image); the stages' own functions do the work.
- Time: the median of a few calls after one warm-up call (the evaluate stage: one call,
  after one window's forward as warm-up). FLOPs: torch's FlopCounterMode on the warm-up
  call; it counts matmuls and convolutions (2 per multiply-add), not elementwise work.
- Memory: each stage runs in its own fresh process (with params.yaml's `base.cpu_kernels`,
  as the stages run); peak RSS is that process's ru_maxrss (torch, model, inputs and work),
  and setup RSS the same before the first call (torch, model, inputs).

    python -m bench.paper_cost [--full-batch]

`--full-batch` times the classifier at the paper's batch (several minutes on a laptop);
by default it times one pair and scales by the batch. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

VOC_TRAIN_AUG = 10582  # images of train_aug on VOC 2012 + SBD
VOC_VAL = 1449
VOC_CLASSES_PER_IMAGE = 1.5  # mean positive classes of a train_aug image (about)
VAL_IMAGE = (375, 500)  # (H, W): VOC's most common size
GPU = {
    "model": "NVIDIA A100 SXM",
    "peak_tflops": 156.0,  # TF32 tensor cores, dense: amp is false in the paper profile
    "peak_tflops_amp": 312.0,  # bf16, dense: with classifier/segmentation `amp: true`
    "utilisation": {"train": 0.35, "inference": 0.25},
}
REPEATS = {"classifier": 2, "locmaps": 2, "segmentation": 3, "evaluate": 1, "crf": 5}
CONF = Path(__file__).resolve().parents[1] / "conf"
MIB = 1024  # ru_maxrss is in KiB on Linux


def paper_params() -> dict:
    """Every params section of the paper profile, composed as `dvc exp run -S profile=paper`
    composes it, then validated by its schema."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from mcis_core.common.params import from_dict
    from mcis_core.sections import SECTIONS

    with initialize_config_dir(str(CONF), version_base=None):
        raw = OmegaConf.to_container(compose("config", overrides=["profile=paper"]), resolve=True)
    return {name: from_dict(schema, raw[name], name) for name, schema in SECTIONS.items()}


def measure(works: dict, repeats: int, warmups: dict | None = None) -> dict[str, dict]:
    """Per work: its warm-up call's FLOPs (the warm-up is the work itself unless given), then
    the median wall and process CPU seconds of `repeats` calls; the works alternate within
    each round, so changes of load on the machine hit them alike."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name in works:
        with FlopCounterMode(display=False) as counter:
            (warmups or works)[name]()
        flops[name] = counter.get_total_flops()
    wall, cpu = defaultdict(list), defaultdict(list)
    for _ in range(repeats):
        for name, work in works.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            work()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    return {name: {"seconds": statistics.median(wall[name]),
                   "cpu_seconds": statistics.median(cpu[name]), "flops": flops[name]}
            for name in works}  # fmt: skip


def per_unit(timing: dict, scale: float = 1.0) -> dict:
    """A measured call's seconds, CPU seconds and GFLOP, times `scale` calls per unit."""
    return {"seconds": timing["seconds"] * scale, "cpu_seconds": timing["cpu_seconds"] * scale,
            "gflop": timing["flops"] * scale / 1e9}  # fmt: skip


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB


def largest_nproc(batch: int, limit: int = 8) -> int:
    """The most processes (at most `limit`) that split a global batch of `batch` evenly."""
    return max(n for n in range(1, limit + 1) if batch % n == 0)


def stage_classifier(params: dict, full_batch: bool) -> dict:
    """One MCIS training step: the partner and every view pairing, backward, SGD."""
    import dataclasses

    import torch

    from bench.classifier_bench import synthetic_batch, training_step
    from mcis_core.classifier.loss import MCISObjective
    from mcis_core.classifier.train import build_model
    from mcis_core.dataset.voc import VOC_CLASSES
    from mcis_core.training.optim import parameter_groups

    cfg = dataclasses.replace(params["classifier"], pretrained="none")  # random weights
    net = build_model(cfg, len(VOC_CLASSES), seed=0)
    objective = MCISObjective(net, cfg.coattention, cfg.contrastive).train()
    groups = parameter_groups([net.backbone], net.head_modules(), cfg.lr, cfg.lr_multipliers)
    optimizer = torch.optim.SGD(
        groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )
    pairs = cfg.batch_size if full_batch else 1
    batch = synthetic_batch(pairs, cfg.input_size, cfg.views)
    setup = peak_rss_mib()
    step = {"step": lambda: training_step(objective, optimizer, batch, True)}
    timing = measure(step, REPEATS["classifier"])["step"]
    steps = cfg.epochs * (VOC_TRAIN_AUG // cfg.batch_size)
    return {
        "unit": f"step ({cfg.batch_size} pairs)", "units_on_voc": steps, "kind": "train",
        **per_unit(timing, cfg.batch_size / pairs), "setup_rss_mib": setup,
        "max_processes": largest_nproc(cfg.batch_size),
        "measured_pairs": pairs,
        "note": "" if full_batch else
                f"timed at 1 pair: time and FLOPs x {cfg.batch_size}, peak RSS at 1 pair",
    }  # fmt: skip


class RandomImages:
    """Stand-in for locmaps.maps.ImageSource: random val-size images, no files."""

    def __init__(self, count: int, input_size: int) -> None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        self.input_size = input_size
        self.images = [Image.fromarray(rng.integers(0, 256, (*VAL_IMAGE, 3), np.uint8))
                       for _ in range(count)]  # fmt: skip

    def original(self, index: int):
        return self.images[index]

    def image(self, index: int):
        from mcis_core.models.inputs import square

        return square(self.images[index], self.input_size)


def stage_locmaps(params: dict, full_batch: bool) -> dict:
    """One image's maps, cached schedule: its bank features, then maps with 1 and 2 classes."""
    import dataclasses

    import torch

    from mcis_core.classifier.train import build_model
    from mcis_core.dataset.voc import VOC_CLASSES
    from mcis_core.locmaps.bank import FeatureBank, bank_bytes
    from mcis_core.locmaps.maps import AnchorPlan, Localizer

    cfg, locmaps = params["classifier"], params["locmaps"]
    net = build_model(dataclasses.replace(cfg, pretrained="none"), len(VOC_CLASSES), seed=0)
    partners = tuple(range(1, locmaps.partners + 1))
    source = RandomImages(len(partners) + 1, cfg.input_size)
    cpu = torch.device("cpu")
    localizer = Localizer(net, source, cfg.views, locmaps.view_gate, cpu, naive=False)
    shape = localizer.feature_shape()  # (C, h, w)
    bank = FeatureBank(torch.empty(len(partners) + 1, *shape), cpu)
    localizer.build_bank(bank, range(len(partners) + 1), progress=False)
    setup = peak_rss_mib()
    repeats = REPEATS["locmaps"]
    plans = {k: AnchorPlan(0, tuple(range(k)), dict.fromkeys(range(k), partners)) for k in (1, 2)}
    works = {"bank": lambda: localizer.build_bank(bank, [0], progress=False)}
    works |= {k: lambda plan=plan: localizer.maps(plan) for k, plan in plans.items()}
    timings = {k: per_unit(t) for k, t in measure(works, repeats).items()}
    extra = VOC_CLASSES_PER_IMAGE - 1  # the cost is linear in the class count: 1 class + extra
    own, one, two = timings["bank"], timings[1], timings[2]  # its bank row, maps
    image = {key: own[key] + one[key] + extra * (two[key] - one[key]) for key in one}
    return {
        "unit": "image", "units_on_voc": VOC_TRAIN_AUG, "kind": "inference",
        **image, "setup_rss_mib": setup, "max_processes": 8,
        "bank_seconds": timings["bank"]["seconds"],
        "maps_seconds_1_class": timings[1]["seconds"],
        "maps_seconds_2_classes": timings[2]["seconds"],
        "feature_shape": list(shape),
        "bank_gib_on_voc": bank_bytes(VOC_TRAIN_AUG, *shape, torch.float32) / 2**30,
        "note": f"{VOC_CLASSES_PER_IMAGE} classes per image: maps of 1 class + {extra} x (2 - 1); "
                "the bank is not in the peak RSS (float32 on VOC: bank_gib_on_voc per process)",
    }  # fmt: skip


def segmentation_net(params: dict, train: bool):
    from mcis_core.dataset.voc import VOC_CLASSES
    from mcis_core.segmentation.network import DeepLabLargeFOV
    from mcis_core.segmentation.train import model_config

    return DeepLabLargeFOV(model_config(params["segmentation"], len(VOC_CLASSES))).train(train)


def stage_segmentation(params: dict, full_batch: bool) -> dict:
    """One crop's forward and backward at batch 1, plus 1/accumulation of the SGD step."""
    import torch

    from mcis_core.dataset.voc import VOC_CLASSES
    from mcis_core.segmentation.train import segmentation_loss
    from mcis_core.training.optim import parameter_groups

    cfg = params["segmentation"]
    net = segmentation_net(params, train=True)
    groups = parameter_groups(
        net.backbone_modules(), net.head_modules(), cfg.lr, cfg.lr_multipliers
    )
    optimizer = torch.optim.SGD(groups, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    images = torch.randn(1, 3, cfg.crop_size, cfg.crop_size)
    labels = torch.randint(0, len(VOC_CLASSES) + 1, (1, cfg.crop_size, cfg.crop_size))
    setup = peak_rss_mib()

    def micro_step() -> None:
        (segmentation_loss(net(images), labels) / cfg.accumulation).backward()

    timings = measure({"crop": micro_step, "sgd": optimizer.step}, REPEATS["segmentation"])
    crop, sgd = per_unit(timings["crop"]), per_unit(timings["sgd"], 1 / cfg.accumulation)
    crops = cfg.epochs * (VOC_TRAIN_AUG // cfg.batch_size) * cfg.batch_size
    return {
        "unit": "crop", "units_on_voc": crops, "kind": "train",
        **{key: crop[key] + sgd[key] for key in crop},
        "setup_rss_mib": setup, "max_processes": largest_nproc(cfg.batch_size),
        "optimizer_step_seconds": timings["sgd"]["seconds"],
        "note": f"{cfg.epochs} epochs x {VOC_TRAIN_AUG // cfg.batch_size} updates x "
                f"{cfg.batch_size} crops; the original: 16000 x 10 = 160000",
    }  # fmt: skip


def stage_evaluate(params: dict, full_batch: bool) -> dict:
    """The network's multi-scale, sliding-window, flipped probabilities of one val image."""
    import torch

    from bench.crf_photos import photo
    from mcis_core.evaluate.evaluation import network_probs
    from mcis_core.evaluate.inference import scaled_size, window_starts

    cfg = params["evaluate"]
    net = segmentation_net(params, train=False)
    rgb = photo("astronaut", *VAL_IMAGE)
    stride = max(1, round(cfg.window * cfg.stride_ratio))
    flips = 2 if cfg.flip else 1
    windows = sum(len(window_starts(max(h, cfg.window), cfg.window, stride))
                  * len(window_starts(max(w, cfg.window), cfg.window, stride))
                  for h, w in (scaled_size(*VAL_IMAGE, s) for s in cfg.scales))  # fmt: skip
    crops = torch.randn(flips, 3, cfg.window, cfg.window)
    setup = peak_rss_mib()
    with torch.no_grad():
        works, warmups = (
            {"image": lambda: network_probs(net, rgb, cfg)},
            {"image": lambda: net(crops)},
        )
        timing = measure(works, REPEATS["evaluate"], warmups)["image"]
    timing["flops"] *= windows  # the warm-up was one window (and its flip)
    return {
        "unit": "image", "units_on_voc": VOC_VAL, "kind": "inference",
        **per_unit(timing), "setup_rss_mib": setup,
        "max_processes": 8, "windows_per_image": windows, "flips": flips,
        "note": f"{VAL_IMAGE[0]} x {VAL_IMAGE[1]}; FLOPs: one window (x {flips} flips) x windows",
    }  # fmt: skip


def stage_crf(params: dict, full_batch: bool) -> dict:
    """The dense CRF of one val image (its position-only kernel cached, as in the stage)."""
    import torch

    from bench.crf_photos import photo, stand_in_probs
    from mcis_core.evaluate.crf import dense_crf

    crf = params["evaluate"].crf
    rgb = photo("astronaut", *VAL_IMAGE)
    probs = stand_in_probs(rgb, seed=0)
    setup = peak_rss_mib()
    works = {"image": lambda: dense_crf(torch.from_numpy(rgb), probs, crf)}
    timing = measure(works, REPEATS["crf"])["image"]
    return {
        "unit": "image", "units_on_voc": VOC_VAL, "kind": "cpu",
        **per_unit(timing), "setup_rss_mib": setup, "max_processes": 8, "method": crf.method,
        "note": "timed on the CPU only (the lattice also runs on a GPU); its work is "
                "scatter and elementwise, which FlopCounterMode does not count",
    }  # fmt: skip


STAGES = {
    "classifier": stage_classifier,
    "locmaps": stage_locmaps,
    "segmentation": stage_segmentation,
    "evaluate": stage_evaluate,
    "crf": stage_crf,
}


def worker(stage: str, full_batch: bool) -> dict:
    """Measure `stage` in this process, with the stages' CPU kernels pinned before torch loads."""
    from mcis_core.common.kernels import cpu_kernels_setting, pin_cpu_kernels

    pin_cpu_kernels(cpu_kernels_setting())
    import torch

    result = STAGES[stage](paper_params(), full_batch)
    result["peak_rss_mib"] = peak_rss_mib()
    result["threads"] = torch.get_num_threads()
    result["repeats"] = REPEATS[stage]
    return result


def totals(stage: dict) -> dict:
    """The stage's units, CPU hours and estimated GPU hours on VOC."""
    units, seconds = stage["units_on_voc"], stage["seconds"]
    processes = min(8, stage["max_processes"])
    if stage["kind"] == "cpu":  # not converted: each process on 2 cores of its own
        one = units * seconds
    else:
        rate = GPU["peak_tflops"] * 1e3 * GPU["utilisation"][stage["kind"]]  # GFLOP/s
        one = units * stage["gflop"] / rate
    return {
        "cpu_hours": units * seconds / 3600,
        "gpu_hours_1": one / 3600,
        "gpu_processes_of_8": processes,
        "gpu_hours_8": one / processes / 3600,
    }


def main(full_batch: bool = False) -> dict:
    stages = {}
    for stage in STAGES:
        command = [sys.executable, "-m", "bench.paper_cost", "--worker", stage]
        command += ["--full-batch"] if full_batch else []
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        stages[stage] = json.loads(result.stdout.strip().splitlines()[-1])
        stages[stage].update(totals(stages[stage]))
    sums = {
        k: sum(s[k] for s in stages.values()) for k in ("cpu_hours", "gpu_hours_1", "gpu_hours_8")
    }
    report = {
        "setting": "conf/profile/paper.yaml on VOC 2012 + SBD",
        "voc": {"train_aug": VOC_TRAIN_AUG, "val": VOC_VAL,
                "classes_per_image": VOC_CLASSES_PER_IMAGE},
        "gpu": {**GPU, "how": "GPU seconds = FLOPs / (peak x utilisation); 8 GPUs: divided "
                "by the processes the stage can use (the classifier's and DeepLab's batch of "
                "5 and 10 must split evenly: 5); the CRF keeps its CPU time; amp: true would "
                "double the peak of both trainings"},
        "stages": stages,
        "total": sums,
        "saliency": "not measured: the paper profile reads the authors' precomputed maps",
    }  # fmt: skip
    return rounded(report)


def rounded(value):
    """Floats to 4 significant digits, recursively."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Cost of the paper's setting on VOC.")
    parser.add_argument("--full-batch", action="store_true", help="classifier at batch 5 pairs")
    parser.add_argument("--worker", choices=tuple(STAGES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.full_batch)))
    else:
        print(json.dumps(main(args.full_batch), indent=2))
