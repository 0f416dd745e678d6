"""Training of the MCIS co-attention classifier (docs/method.md §3), resumable and DDP-ready.

The epoch loop, resume, DDP and checkpoints are `training.loop.fit`'s; this module
says what a classifier epoch is (warm-up or MCIS pairs) and how it is validated.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mcis_core.classifier.data import PairDataset, ValidationImages, WarmupDataset
from mcis_core.classifier.loss import (
    LOSS_TERMS,
    MCISObjective,
    complementary_targets,
    multilabel_loss,
)
from mcis_core.classifier.metrics import macro_f1, mean_average_precision
from mcis_core.classifier.network import EXPORT_KIND, CoAttentionNet, ModelConfig, global_average
from mcis_core.classifier.params import ClassifierParams
from mcis_core.common.errors import ConfigError
from mcis_core.common.layout import TRAIN_AUG, VAL, read_class_labels, read_classes, read_split
from mcis_core.models.pretrained import imagenet_state_dict, weights_file
from mcis_core.models.vgg import VGG16_IMAGENET_URL, init_convs_fan_out, load_imagenet_convs
from mcis_core.training.batches import (
    EpochItems,
    EpochLoader,
    data_workers,
    epoch_batches,
    loader_options,
    shard,
)
from mcis_core.training.checkpoints import Checkpoints, run_fingerprint
from mcis_core.training.loop import Record, export_checkpoint, fit
from mcis_core.training.optim import parameter_groups, set_lr, step_lr
from mcis_core.training.process import (
    Process,
    any_across_processes,
    mean_across_processes,
    seed_everything,
)

VALIDATION_BATCH = 32
PRETRAINED_PARAM = "classifier.pretrained_path"


def model_config(params: ClassifierParams, num_classes: int) -> ModelConfig:
    """The network a parameter set describes."""
    if params.backbone == "vgg16":
        return ModelConfig(width=1.0, batch_norm=False, num_classes=num_classes)
    return ModelConfig(params.width, params.batch_norm, num_classes)


def build_model(params: ClassifierParams, num_classes: int, seed: int) -> CoAttentionNet:
    """A freshly initialised (and, if asked, ImageNet-initialised) co-attention network."""
    torch.manual_seed(seed)
    net = CoAttentionNet(model_config(params, num_classes))
    if params.init == "original":
        init_convs_fan_out(net.original_init_modules())
    if params.pretrained == "imagenet":
        state = imagenet_state_dict(VGG16_IMAGENET_URL, params.pretrained_path, PRETRAINED_PARAM)
        load_imagenet_convs(net.backbone, state)
    return net


def training_fingerprint(params: ClassifierParams, seed: int, voc_dir: Path) -> str:
    """What determines the checkpoints: params (not the process and worker counts, nor the
    exported epoch), seed, the dataset, the ImageNet weights, if any, and this module's
    source with all it imports."""
    inputs = [voc_dir]
    if params.pretrained == "imagenet":
        inputs.append(weights_file(VGG16_IMAGENET_URL, params.pretrained_path, PRETRAINED_PARAM))
    ignored = ("nproc", "num_workers", "use_epoch")
    return run_fingerprint(params, seed, inputs, ignored, code=Path(__file__))


def export_meta(params: ClassifierParams, classes: tuple[str, ...]) -> dict:
    """What later stages need to use the exported classifier."""
    return {"classes": list(classes), "input_size": params.input_size, "views": list(params.views)}


def train_classifier(
    params: ClassifierParams, seed: int, voc_dir: Path, checkpoints: Checkpoints, process: Process
) -> list[Record]:
    """Train (resuming from the newest matching checkpoint); return the per-epoch history."""
    seed_everything(seed)
    classes, labels = read_classes(voc_dir), read_class_labels(voc_dir)
    names = read_split(voc_dir, TRAIN_AUG)
    if len(names) < params.batch_size:
        raise ConfigError(
            f"classifier.batch_size: {params.batch_size} is more than the "
            f"{len(names)} training images: an epoch would have no step"
        )
    sizes = (len(classes), params.input_size)
    pair_set = PairDataset(
        voc_dir, names, labels, *sizes, seed, view_scales=params.views, jitter=params.jitter
    )
    warmup_set = WarmupDataset(voc_dir, names, labels, *sizes, seed, jitter=params.jitter)
    val_set = ValidationImages(voc_dir, read_split(voc_dir, VAL), labels, *sizes)
    workers = data_workers(params.num_workers, process.device)
    net = build_model(params, len(classes), seed).to(process.device)
    groups = parameter_groups([net.backbone], net.head_modules(), params.lr, params.lr_multipliers)
    optimizer = torch.optim.SGD(
        groups, momentum=params.momentum, weight_decay=params.weight_decay, nesterov=True
    )

    def batches(epoch: int) -> list[list[int]]:
        size = 2 * params.batch_size if epoch < params.warmup_epochs else params.batch_size
        steps = epoch_batches(len(names), size, seed, epoch)
        return [shard(b, process.rank, process.world) for b in steps]

    items = EpochItems({0: warmup_set, params.warmup_epochs: pair_set})  # no warm-up: pairs at 0
    with EpochLoader(items, batches, workers, process.device) as loader:

        def run_epoch(objective: nn.Module, epoch: int) -> Record:
            lr = step_lr(params.lr, epoch, params.lr_steps, params.lr_gamma)
            set_lr(optimizer, lr)
            stats = train_epoch(objective, optimizer, loader, params, epoch, process)
            return {"lr": lr, **stats}

        return fit(
            net,
            MCISObjective(net, params.coattention, params.contrastive),
            optimizer,
            params.epochs,
            run_epoch,
            lambda: evaluate_classifier(net, val_set, process.device, workers),
            checkpoints,
            process,
            keep={params.use_epoch},
            find_unused_parameters=True,  # the gate has no gradient before the contrastive epochs
        )


def train_epoch(
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: EpochLoader,
    params: ClassifierParams,
    epoch: int,
    process: Process,
) -> Record:
    """One pass over the training pairs (or warm-up images); returns each loss term's mean."""
    objective.train()
    warmup = epoch < params.warmup_epochs
    batches = loader.epoch(epoch)
    contrastive_now = params.contrastive and epoch >= params.contrastive_from_epoch
    amp = params.amp and process.device.type == "cuda"
    sums: dict[str, float] = defaultdict(float)
    for batch in tqdm(batches, desc=f"epoch {epoch}", unit="step", disable=not process.is_main):
        batch = {k: v.to(process.device, non_blocking=True) for k, v in batch.items()}
        views = [batch[f"view{i}"] for i in range(len(params.views))] if not warmup else []
        comp_active = (False, False)
        if contrastive_now and not warmup:
            comp_a, comp_b = complementary_targets(batch["y_a"], batch["y_b"])
            flags = [bool(comp_a.any()), bool(comp_b.any())]
            comp_active = tuple(any_across_processes(flags, process.device))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            terms = objective(
                batch["anchor"],
                batch.get("partner"),
                views,
                batch["y_a"],
                batch.get("y_b"),
                comp_active=comp_active,
            )
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        for name in ("loss", *LOSS_TERMS):
            sums[name] += float(terms[name].detach())
    means = {f"train_{k}": v / max(len(batches), 1) for k, v in sums.items()}
    return mean_across_processes(means, process.device)


@torch.no_grad()
def evaluate_classifier(
    net: CoAttentionNet, dataset: ValidationImages, device: torch.device, num_workers: int
) -> Record:
    """Validation loss, mAP and macro F1 at 0.5 of the single-image branch (its workers, if
    any, start anew each time: they would sit idle through every training epoch)."""
    net.eval()
    logits, targets = [], []
    options = loader_options(num_workers, device, persistent=False)
    loader = DataLoader(dataset, batch_size=VALIDATION_BATCH, **options)
    for images, labels in loader:
        logits.append(global_average(net.cam(net.features(images.to(device)))).float().cpu())
        targets.append(labels)
    net.train()
    scores, truth = torch.cat(logits), torch.cat(targets)
    probabilities = torch.sigmoid(scores).numpy()
    return {
        "val_loss": float(multilabel_loss(scores, truth)),
        "val_map": mean_average_precision(scores.numpy(), truth.numpy()),
        "val_f1": macro_f1(probabilities, truth.numpy()),
    }


def export_classifier(
    params: ClassifierParams, checkpoints: Checkpoints, voc_dir: Path, out: Path
) -> Record:
    """Export epoch `use_epoch` with its meta to `out`; return that epoch's record."""
    meta = export_meta(params, read_classes(voc_dir))
    return export_checkpoint(checkpoints, params.use_epoch, out, EXPORT_KIND, meta)
