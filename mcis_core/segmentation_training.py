"""Training of DeepLab-LargeFOV on the pseudo labels (MCIS_SPEC section 5), resumable, DDP-ready.

SGD with momentum, the LargeFOV head at 10x the backbone's lr (biases 2x / 20x),
poly decay over every optimiser step, a step of `batch_size` images made of
`accumulation` micro-batches per process, pixel-wise cross entropy that skips
255. The machinery (processes, seeds, checkpoints, lr groups) is the classifier's,
from `mcis_core.training`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mcis_core.classification_data import epoch_batches, load_image, normalize, shard
from mcis_core.config import SegmentationParams
from mcis_core.deeplab import DeepLabLargeFOV, SegModelConfig, build_segmentation_model
from mcis_core.io import read_gray
from mcis_core.segmentation_data import SegmentationTrainSet
from mcis_core.segmentation_metrics import (
    NUM_SEG_CLASSES,
    confusion_matrix,
    segmentation_scores,
)
from mcis_core.training import (
    Checkpoints,
    Process,
    barrier,
    fingerprint,
    latest_checkpoint,
    mean_across_processes,
    parameter_groups,
    seed_everything,
    set_lr,
    tree_digest,
)  # fmt: skip
from mcis_core.voc import FINE_MASK_DIR, IGNORE_INDEX, JPEG_DIR


def model_config(params: SegmentationParams) -> SegModelConfig:
    """The network a parameter set describes."""
    return SegModelConfig(params.backbone, params.width, params.batch_norm)


def training_fingerprint(params: SegmentationParams, seed: int, *data_dirs: Path) -> str:
    """What determines the checkpoints: params (but the worker count), seed, the data."""
    relevant = {k: v for k, v in asdict(params).items() if k != "num_workers"}
    return fingerprint(relevant, seed, [tree_digest(d) for d in data_dirs])


def poly_lr(base_lr: float, step: int, total_steps: int, power: float) -> float:
    """DeepLab's poly schedule: base_lr * (1 - step / total_steps) ** power."""
    return base_lr * (1 - step / total_steps) ** power


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross entropy of (B, C, h, w) logits upsampled to the (B, H, W) labels, 255 skipped.

    The mean is over the labelled pixels; a batch of wholly ignored images (pseudo labels
    can be) gives 0, not the NaN of an empty mean.
    """
    logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


def train_segmentation(
    params: SegmentationParams,
    seed: int,
    voc_dir: Path,
    names: Sequence[str],
    label_dir: Path,
    val_names: Sequence[str],
    checkpoints: Checkpoints,
    process: Process,
    classifier_path: Path | None = None,
) -> list[dict[str, float]]:
    """Train (resuming from the newest matching checkpoint); return the per-epoch history."""
    seed_everything(seed)
    train_set = SegmentationTrainSet(
        voc_dir, names, label_dir, params.crop_size, params.scale_range, seed=seed
    )
    net = build_segmentation_model(
        model_config(params), params.pretrained, params.pretrained_path, classifier_path, seed
    ).to(process.device)
    optimizer = torch.optim.SGD(
        parameter_groups(net.backbone_modules(), net.head_modules()),
        lr=params.lr,
        momentum=params.momentum,
        weight_decay=params.weight_decay,
    )
    history: list[dict[str, float]] = []
    start = 0
    resumed = latest_checkpoint(checkpoints, process)
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        history, start = resumed["history"], resumed["epoch"] + 1
        if process.is_main:
            print(f"resuming after epoch {resumed['epoch']} from {checkpoints.path(start - 1)}")
    model: torch.nn.Module = net
    if process.world > 1:
        if process.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = DistributedDataParallel(model)

    steps_per_epoch = len(train_set) // params.batch_size
    for epoch in range(start, params.epochs):
        started = time.perf_counter()
        stats = train_epoch(model, optimizer, train_set, params, seed, epoch, process)
        record = {"epoch": epoch, "lr": poly_lr(params.lr, (epoch + 1) * steps_per_epoch,
                                                params.epochs * steps_per_epoch, params.lr_power),
                  **stats}  # fmt: skip
        if process.is_main:
            record["val_miou"] = validation_miou(net, voc_dir, val_names, process.device)
            history.append(record)
            checkpoints.save(
                epoch,
                {
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "model_config": asdict(net.config),
                },
                keep=set(),
            )
            shown = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")
            print(f"epoch {epoch}: {shown} ({time.perf_counter() - started:.0f} s)")
        barrier()
    return history


def train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: SegmentationTrainSet,
    params: SegmentationParams,
    seed: int,
    epoch: int,
    process: Process,
) -> dict[str, float]:
    """One pass over the labelled images; returns the mean loss."""
    model.train()
    dataset.set_epoch(epoch)
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))  # dropout
    steps = epoch_batches(len(dataset), params.batch_size, seed, epoch)
    steps_per_epoch, total = len(steps), params.epochs * len(steps)
    micro = params.batch_size // (params.accumulation * process.world)
    batches = [
        part[i : i + micro]
        for step in steps
        for part in [shard(step, process.rank, process.world)]
        for i in range(0, len(part), micro)
    ]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=params.num_workers)
    amp = params.amp and process.device.type == "cuda"
    loss_sum = 0.0
    bar = tqdm(total=len(steps), desc=f"epoch {epoch}", unit="step", disable=not process.is_main)
    for index, batch in enumerate(loader):
        step, part = divmod(index, params.accumulation)
        if part == 0:
            lr = poly_lr(params.lr, epoch * steps_per_epoch + step, total, params.lr_power)
            set_lr(optimizer, lr)
            optimizer.zero_grad(set_to_none=True)
        images = batch["image"].to(process.device, non_blocking=True)
        labels = batch["label"].to(process.device, non_blocking=True)
        last = part == params.accumulation - 1
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not last else None
        with sync or nullcontext(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = segmentation_loss(model(images), labels) / params.accumulation
        loss.backward()
        loss_sum += float(loss.detach())
        if last:
            optimizer.step()
            bar.update()
    bar.close()
    return mean_across_processes({"train_loss": loss_sum / max(len(steps), 1)}, process.device)


@torch.no_grad()
def validation_miou(
    net: DeepLabLargeFOV, voc_dir: Path, names: Sequence[str], device: torch.device
) -> float:
    """Single-scale mIoU on the validation images (the full evaluation is the evaluate stage)."""
    net.eval()
    confusion = np.zeros((NUM_SEG_CLASSES, NUM_SEG_CLASSES), np.int64)
    for name in names:
        image = normalize(load_image(voc_dir / JPEG_DIR / f"{name}.jpg"))
        logits = net(image[None].to(device))
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        pred = logits[0].argmax(0).cpu().numpy().astype(np.uint8)
        confusion += confusion_matrix(pred, read_gray(voc_dir / FINE_MASK_DIR / f"{name}.png"))
    net.train()
    return segmentation_scores(confusion)["miou"]
