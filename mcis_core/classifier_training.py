"""Training of the MCIS co-attention classifier (MCIS_SPEC section 2), resumable and DDP-ready."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from mcis_core.backbone import imagenet_state_dict, load_imagenet_convs
from mcis_core.classification_data import (
    ImageLabelDataset,
    PairDataset,
    WarmupDataset,
    epoch_batches,
    shard,
)
from mcis_core.coattention import CoAttentionNet, ModelConfig, global_average
from mcis_core.config import ClassifierParams
from mcis_core.io import read_names
from mcis_core.mcis_loss import LOSS_TERMS, MCISObjective, complementary_targets, multilabel_loss
from mcis_core.multilabel_metrics import macro_f1, mean_average_precision
from mcis_core.training import (
    Checkpoints,
    Process,
    any_across_processes,
    barrier,
    fingerprint,
    latest_checkpoint,
    lr_at_epoch,
    mean_across_processes,
    parameter_groups,
    seed_everything,
    set_lr,
    tree_digest,
)  # fmt: skip
from mcis_core.voc import LABELS_FILE, LIST_DIR, read_class_labels


def model_config(params: ClassifierParams) -> ModelConfig:
    """The network a parameter set describes."""
    if params.backbone == "vgg16":
        return ModelConfig(width=1.0, batch_norm=False)
    return ModelConfig(width=params.width, batch_norm=params.batch_norm)


def build_model(params: ClassifierParams, seed: int) -> CoAttentionNet:
    """A freshly initialised (and, if asked, ImageNet-initialised) co-attention network."""
    torch.manual_seed(seed)
    net = CoAttentionNet(model_config(params))
    if params.pretrained == "imagenet":
        load_imagenet_convs(net.backbone, imagenet_state_dict(params.pretrained_path))
    return net


def training_fingerprint(params: ClassifierParams, seed: int, voc_dir: Path) -> str:
    """What determines the checkpoints: params (but the worker count), seed, the dataset."""
    relevant = {k: v for k, v in asdict(params).items() if k != "num_workers"}
    return fingerprint(relevant, seed, tree_digest(voc_dir))


def train_classifier(
    params: ClassifierParams, seed: int, voc_dir: Path, checkpoints: Checkpoints, process: Process
) -> list[dict[str, float]]:
    """Train (resuming from the newest matching checkpoint); return the per-epoch history."""
    seed_everything(seed)
    labels = read_class_labels(voc_dir / LABELS_FILE)
    train_names = read_names(voc_dir / LIST_DIR / "train_aug.txt")
    pair_set = PairDataset(
        voc_dir, train_names, labels, params.input_size, params.views, params.jitter, seed
    )
    warmup_set = WarmupDataset(voc_dir, train_names, labels, params.input_size, params.jitter, seed)
    val_set = ImageLabelDataset(
        voc_dir, read_names(voc_dir / LIST_DIR / "val.txt"), labels, params.input_size
    )
    net = build_model(params, seed).to(process.device)
    optimizer = torch.optim.SGD(
        parameter_groups([net.backbone], net.head_modules()),
        lr=params.lr,
        momentum=params.momentum,
        weight_decay=params.weight_decay,
        nesterov=True,
    )
    history: list[dict[str, float]] = []
    start = 0
    resumed = latest_checkpoint(checkpoints, process)
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        history, start = resumed["history"], resumed["epoch"] + 1
        if process.is_main:
            print(
                f"resuming after epoch {resumed['epoch']} from {checkpoints.path(resumed['epoch'])}"
            )
    objective = MCISObjective(net, params.coattention, params.contrastive)
    if process.world > 1:
        if process.device.type == "cuda":
            objective = torch.nn.SyncBatchNorm.convert_sync_batchnorm(objective)
        objective = DistributedDataParallel(objective, find_unused_parameters=True)

    for epoch in range(start, params.epochs):
        lr = lr_at_epoch(params.lr, epoch, params.lr_steps, params.lr_gamma)
        set_lr(optimizer, lr)
        started = time.perf_counter()
        dataset = warmup_set if epoch < params.warmup_epochs else pair_set
        train_stats = train_epoch(objective, optimizer, dataset, params, seed, epoch, process)
        record = {"epoch": epoch, "lr": lr, **train_stats}
        if process.is_main:
            record.update(evaluate_classifier(net, val_set, process.device, params.num_workers))
            history.append(record)
            checkpoints.save(
                epoch,
                {
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "model_config": asdict(net.config),
                },
                keep={params.use_epoch},
            )
            shown = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")
            print(f"epoch {epoch}: {shown} ({time.perf_counter() - started:.0f} s)")
        barrier()
    return history


def train_epoch(
    objective: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: PairDataset | WarmupDataset,
    params: ClassifierParams,
    seed: int,
    epoch: int,
    process: Process,
) -> dict[str, float]:
    """One pass over the training pairs (or warm-up images); returns each loss term's mean."""
    objective.train()
    dataset.set_epoch(epoch)
    warmup = isinstance(dataset, WarmupDataset)
    batch_size = 2 * params.batch_size if warmup else params.batch_size
    batches = [
        shard(b, process.rank, process.world)
        for b in epoch_batches(len(dataset), batch_size, seed, epoch)
    ]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=params.num_workers)
    contrastive_now = params.contrastive and epoch >= params.contrastive_from_epoch
    amp = params.amp and process.device.type == "cuda"
    sums: dict[str, float] = defaultdict(float)
    for batch in tqdm(loader, desc=f"epoch {epoch}", unit="step", disable=not process.is_main):
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
    net: CoAttentionNet, dataset: ImageLabelDataset, device: torch.device, num_workers: int = 0
) -> dict[str, float]:
    """Validation loss, mAP and macro F1 at 0.5 of the single-image branch."""
    net.eval()
    logits, targets = [], []
    for images, labels in DataLoader(dataset, batch_size=32, num_workers=num_workers):
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


def load_model(path: Path, device: torch.device) -> CoAttentionNet:
    """The exported classifier at `path`, in eval mode on `device`."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = CoAttentionNet(ModelConfig(**state["model_config"]))
    net.load_state_dict(state["model"])
    return net.to(device).eval()
