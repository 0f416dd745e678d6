"""Training of DeepLab-LargeFOV on the pseudo labels (docs/method.md §6), resumable, DDP-ready.

SGD with momentum, the LargeFOV head at 10x the backbone's lr (biases 2x / 20x), poly
decay over every optimiser step, a step of `batch_size` images made of `accumulation`
micro-batches per process, pixel-wise cross entropy that skips 255. The epoch loop,
resume, DDP and checkpoints are `training.loop.fit`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mcis_core.common.io import read_gray
from mcis_core.common.layout import IGNORE_INDEX, fine_mask_path, image_path
from mcis_core.models.inputs import imagenet_normalize, load_image
from mcis_core.models.pretrained import weights_file
from mcis_core.scoring.segmentation import confusion_matrix, segmentation_scores
from mcis_core.segmentation.data import SegmentationTrainSet
from mcis_core.segmentation.network import (
    EXPORT_KIND,
    PRETRAINED_PARAM,
    RESNET101_IMAGENET_URL,
    DeepLabLargeFOV,
    SegModelConfig,
    build_segmentation_model,
)
from mcis_core.segmentation.params import SegmentationParams
from mcis_core.training.batches import EpochItems, EpochLoader, data_workers, epoch_batches, shard
from mcis_core.training.checkpoints import Checkpoints, run_fingerprint
from mcis_core.training.loop import Record, export_checkpoint, fit
from mcis_core.training.optim import parameter_groups, poly_lr, set_lr
from mcis_core.training.process import Process, mean_across_processes, seed_everything


def model_config(params: SegmentationParams, num_classes: int) -> SegModelConfig:
    """The network a parameter set describes (`num_classes` object classes + background)."""
    return SegModelConfig(
        params.backbone, params.width, params.batch_norm, num_classes + 1, params.dropout
    )


def training_fingerprint(
    params: SegmentationParams, seed: int, voc_dir: Path, label_dir: Path, classifier: Path
) -> str:
    """What determines the checkpoints: params (not the process and worker counts), seed, the
    dataset, the labels, the initial weights (the classifier's, or ImageNet's) and this
    module's source with all it imports."""
    inputs = [voc_dir, label_dir]
    if params.pretrained == "classifier":
        inputs.append(classifier)
    elif params.pretrained == "imagenet":
        inputs.append(
            weights_file(RESNET101_IMAGENET_URL, params.pretrained_path, PRETRAINED_PARAM)
        )
    return run_fingerprint(params, seed, inputs, ("nproc", "num_workers"), code=Path(__file__))


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
    num_classes: int,
    checkpoints: Checkpoints,
    process: Process,
    classifier_path: Path | None = None,
) -> list[Record]:
    """Train (resuming from the newest matching checkpoint); return the per-epoch history."""
    seed_everything(seed)
    train_set = SegmentationTrainSet(
        voc_dir, names, label_dir, params.crop_size, params.scales, seed=seed
    )
    net = build_segmentation_model(
        model_config(params, num_classes),
        params.pretrained,
        params.pretrained_path,
        classifier_path,
        seed,
    ).to(process.device)
    groups = parameter_groups(
        net.backbone_modules(), net.head_modules(), params.lr, params.lr_multipliers
    )
    optimizer = torch.optim.SGD(groups, momentum=params.momentum, weight_decay=params.weight_decay)
    steps_per_epoch = len(train_set) // params.batch_size
    total_steps = params.epochs * steps_per_epoch

    def batches(epoch: int) -> list[list[int]]:
        return micro_batches(len(train_set), params, seed, epoch, process)

    def validate() -> Record:
        return {"val_miou": validation_miou(net, voc_dir, val_names, process.device)}

    workers = data_workers(params.num_workers, process.device)
    with EpochLoader(EpochItems({0: train_set}), batches, workers, process.device) as loader:

        def run_epoch(model: nn.Module, epoch: int) -> Record:
            stats = train_epoch(model, optimizer, loader, params, seed, epoch, process)
            lr = poly_lr(params.lr, (epoch + 1) * steps_per_epoch, total_steps, params.lr_power)
            return {"lr": lr, **stats}

        return fit(
            net,
            net,
            optimizer,
            params.epochs,
            run_epoch,
            validate,
            checkpoints,
            process,
            keep=set(),
        )


def micro_batches(
    num_items: int, params: SegmentationParams, seed: int, epoch: int, process: Process
) -> list[list[int]]:
    """This process's micro-batches of the epoch: `accumulation` per optimiser step."""
    micro = params.batch_size // (params.accumulation * process.world)
    return [
        part[i : i + micro]
        for step in epoch_batches(num_items, params.batch_size, seed, epoch)
        for part in [shard(step, process.rank, process.world)]
        for i in range(0, len(part), micro)
    ]


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: EpochLoader,
    params: SegmentationParams,
    seed: int,
    epoch: int,
    process: Process,
) -> Record:
    """One pass over the labelled images; returns the mean loss."""
    model.train()
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))  # dropout
    batches = loader.epoch(epoch)
    steps_per_epoch = len(batches) // params.accumulation
    total = params.epochs * steps_per_epoch
    amp = params.amp and process.device.type == "cuda"
    loss_sum = 0.0
    bar = tqdm(
        total=steps_per_epoch, desc=f"epoch {epoch}", unit="step", disable=not process.is_main
    )
    for index, batch in enumerate(batches):
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
    return mean_across_processes({"train_loss": loss_sum / max(steps_per_epoch, 1)}, process.device)


@torch.no_grad()
def validation_miou(
    net: DeepLabLargeFOV, voc_dir: Path, names: Sequence[str], device: torch.device
) -> float:
    """Single-scale mIoU on the validation images (the full evaluation is the evaluate stage)."""
    net.eval()
    num_classes = net.config.num_classes
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for name in names:
        image = imagenet_normalize(load_image(image_path(voc_dir, name)))
        logits = net(image[None].to(device))
        logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        pred = logits[0].argmax(0).cpu().numpy().astype(np.uint8)
        truth = read_gray(fine_mask_path(voc_dir, name))
        confusion += confusion_matrix(pred, truth, num_classes)
    net.train()
    return segmentation_scores(confusion)["miou"]


def export_segmentation(
    params: SegmentationParams, checkpoints: Checkpoints, classes: Sequence[str], out: Path
) -> Record:
    """Export the last epoch with its meta to `out`; return that epoch's record."""
    meta = {"classes": list(classes)}
    return export_checkpoint(checkpoints, params.epochs - 1, out, EXPORT_KIND, meta)
