"""Benchmark: localization maps per second, cached features vs the original's naive schedule.

Per image with k positive classes, in units of one input-size backbone pass, the
original costs 2 * partners * k (both images of every partner pairing) plus, per
view of scale s, 1 + s^2 (anchor and view again): 6k + 8.56 with the paper's
settings. The cached schedule costs 1 + sum s^2 = 6.56 (partners are other training
images whose features are already in the bank). The bound is the ratio of the sums
over the images at hand. Both schedules run on the same model and images, on the
CPU, alternately; their maps must be identical. Also times pseudo labels per second.
Needs the `download` and `saliency` stage outputs (data/voc, data/saliency). Prints JSON.

    python -m bench.locmaps_bench [--images N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mcis_core.classifier.train import build_model
from mcis_core.common.layout import TRAIN_AUG, read_class_labels, read_classes, read_split
from mcis_core.common.params import load_section
from mcis_core.common.paths import stage_paths
from mcis_core.locmaps.bank import open_bank
from mcis_core.locmaps.maps import ImageSource, Localizer, plan_partners, write_maps
from mcis_core.locmaps.params import BankParams
from mcis_core.pseudo_gt.labels import label_image
from mcis_core.sections import SECTIONS


def section(name: str) -> Any:
    """Section `name` of params.yaml, validated by its schema."""
    return load_section(name, SECTIONS[name])


def schedule_units(classes_per_image: list[int], partners: int, views: tuple[float, ...]):
    """(naive, cached) backbone passes over the images, in units of one input-size image."""
    views_cost = sum(s * s for s in views)
    naive = sum(2 * partners * k + len(views) + views_cost for k in classes_per_image)
    cached = len(classes_per_image) * (1 + views_cost)
    return naive, cached


def run(localizer: Localizer, plans: list, bank: BankParams) -> tuple[float, list[torch.Tensor]]:
    """Seconds for the whole schedule (the cached one's bank included) and the maps it made."""
    started = time.perf_counter()
    if localizer.naive:
        maps = [localizer.maps(plan) for plan in plans]
    else:
        count, shape = len(localizer.source.names), localizer.feature_shape()
        with (
            tempfile.TemporaryDirectory() as scratch,
            open_bank(count, shape, bank, localizer.device, Path(scratch) / "bank") as features,
        ):
            localizer.build_bank(features, range(count), progress=False)
            maps = [localizer.maps(plan) for plan in plans]
    return time.perf_counter() - started, maps


def main(num_images: int = 60, rounds: int = 2) -> dict:
    base, classifier = section("base"), section("classifier")
    locmaps, pseudo_gt = section("locmaps"), section("pseudo_gt")
    paths = stage_paths(base.data_dir)
    voc = paths.voc
    names = read_split(voc, TRAIN_AUG)[:num_images]
    labels = read_class_labels(voc)
    num_classes = len(read_classes(voc))
    torch.set_num_threads(1)
    net = build_model(classifier, num_classes, base.seed).eval()
    source = ImageSource(voc, names, classifier.input_size)
    plans = plan_partners([labels[n] for n in names], num_classes, locmaps.partners, 0)
    cpu = torch.device("cpu")
    gate = locmaps.view_gate
    cached = Localizer(net, source, classifier.views, gate, cpu, naive=False)
    naive = Localizer(net, source, classifier.views, gate, cpu, naive=True)
    seconds = {"cached": [], "naive": []}
    outputs = {}
    for _ in range(rounds):  # alternated, so load changes hit both alike
        for name, localizer in (("cached", cached), ("naive", naive)):
            elapsed, outputs[name] = run(localizer, plans, locmaps.bank)
            seconds[name].append(elapsed)
    pairs = zip(outputs["cached"], outputs["naive"], strict=True)
    identical = all(torch.equal(a, b) for a, b in pairs)
    naive_units, cached_units = schedule_units(
        [len(p.classes) for p in plans], locmaps.partners, classifier.views
    )
    with tempfile.TemporaryDirectory() as tmp:
        for plan, maps in zip(plans, outputs["cached"], strict=True):
            write_maps(Path(tmp), names[plan.index], plan.classes, maps)
        started = time.perf_counter()
        for name in names:
            label_image(name, labels[name], num_classes, paths.saliency, Path(tmp), pseudo_gt.rules)
        pseudo_seconds = time.perf_counter() - started
    best = {k: min(v) for k, v in seconds.items()}
    result = {
        "images": len(names), "classes_per_image": sum(len(p.classes) for p in plans) / len(plans),
        "threads": torch.get_num_threads(),
        "cached_images_per_s": len(names) / best["cached"],
        "naive_images_per_s": len(names) / best["naive"],
        "speedup": best["naive"] / best["cached"],
        "bound": naive_units / cached_units,
        "identical_maps": identical,
        "pseudo_gt_images_per_s": len(names) / pseudo_seconds,
    }  # fmt: skip
    result["share_of_bound"] = result["speedup"] / result["bound"]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}


if __name__ == "__main__":
    images = int(sys.argv[sys.argv.index("--images") + 1]) if "--images" in sys.argv else 60
    print(json.dumps(main(images), indent=2))
