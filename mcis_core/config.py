"""Typed, validated view of params.yaml.

Every stage reads its section through `load_params`, which turns the YAML into
frozen dataclasses and rejects unknown keys and wrong types with a message that
names the offending key (`dvc exp run -S` rewrites params.yaml without comments,
so the field docs below are the parameter reference).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """params.yaml has a missing, unknown or mistyped key."""


@dataclass(frozen=True)
class RemoteFile:
    """A file published on the web, verified by md5 after download."""

    filename: str  # name in the download cache
    md5: str | None  # expected md5 hex digest; None only for user-made archives
    urls: tuple[str, ...] = ()  # primary URL first, then mirrors (http(s)://, file:// or a path)


@dataclass(frozen=True)
class BaseParams:
    seed: int = 0  # every random choice of the pipeline derives from this
    data_dir: str = "data"  # root of all stage outputs (DVC-tracked, git-ignored)
    download_cache: str = "data/downloads"  # resumable archive cache, not a DVC output


@dataclass(frozen=True)
class Voc2012Params:
    voc_archive: RemoteFile  # VOCtrainval_11-May-2012.tar
    aug_archive: RemoteFile  # SBD benchmark.tgz or a SegmentationClassAug archive
    aug_format: Literal["sbd", "segmentation_class_aug"] = "sbd"


@dataclass(frozen=True)
class EmbeddedParams:
    """Size and difficulty of the offline OpenMoji dataset (see mcis_core.embedded)."""

    train_images: int = 300  # images with fine masks (the analogue of VOC train)
    aug_images: int = 4500  # images with aug masks only (the analogue of SBD)
    val_images: int = 300  # held-out images with fine masks (VOC val)
    image_size: tuple[int, int] = (128, 176)  # min and max side length in pixels
    object_scale: tuple[float, float] = (0.5, 0.85)  # object size / shorter image side
    max_classes: int = 3  # classes per image are drawn from 1..max_classes
    max_instances: int = 2  # instances per class are drawn from 1..max_instances
    distractor_prob: float = 0.25  # chance of one non-VOC glyph per image
    photo_background_prob: float = 0.6  # chance of a photo (vs procedural) background
    jpeg_quality: int = 90


@dataclass(frozen=True)
class DataParams:
    source: Literal["embedded", "voc2012"] = "embedded"
    voc2012: Voc2012Params | None = None
    embedded: EmbeddedParams = field(default_factory=EmbeddedParams)


@dataclass(frozen=True)
class SaliencyComputeParams:
    """Minimum Barrier salient object detection (mcis_core.saliency)."""

    max_side: int = 300  # images are resized so their longer side is this (the paper's 300)
    sweeps: int = 3  # raster + anti-raster scan passes of the barrier distance transform
    boundary_width: int = 15  # pixels of each image border used as background seeds
    batch_size: int = 16


@dataclass(frozen=True)
class SaliencyParams:
    source: Literal["compute", "fetch"] = "compute"
    fetch: RemoteFile | None = None  # archive of <image>.png maps, for source: fetch
    compute: SaliencyComputeParams = field(default_factory=SaliencyComputeParams)


@dataclass(frozen=True)
class ClassifierParams:
    """The co-attention classifier and its training (MCIS_SPEC section 2).

    Epochs are counted over the whole run: the first `warmup_epochs` train only the
    single-image branch on single jittered, randomly mirrored images (2 x batch_size
    per step, the rows of one MCIS pairing), a stand-in for the ImageNet initialisation
    of the paper when the narrow backbone trains from scratch; the MCIS epochs follow.
    """

    backbone: Literal["vgg16", "narrow"] = "narrow"  # vgg16: the paper's; narrow: CPU-sized
    width: float = 0.25  # channel multiplier of the narrow backbone (vgg16 forces 1)
    batch_norm: bool = True  # BN after every conv of the narrow backbone (vgg16: never)
    pretrained: Literal["none", "imagenet"] = "none"  # imagenet: torchvision VGG16 weights
    pretrained_path: str | None = None  # vgg16-397923af.pth, else the torch hub cache
    input_size: int = 256  # side of the square network input
    warmup_epochs: int = 0  # first epochs train the single-image branch alone (see below)
    coattention: bool = True  # co-attention terms (false/false: plain CAM baseline)
    contrastive: bool = True  # complementary co-attention terms (needs coattention)
    contrastive_from_epoch: int = 2  # 0-based epoch at which the contrastive terms start
    views: tuple[float, ...] = (1.0, 0.75, 2.0)  # anchor views as partners; 1.0 = the flip
    jitter: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.1)  # brightness..hue
    batch_size: int = 5  # anchor/partner pairs per step, over all processes
    epochs: int = 15
    lr: float = 1e-3  # backbone weights; biases x2, head weights x10, head biases x20
    lr_steps: tuple[int, ...] = (5, 10)  # 0-based epochs at whose start lr is multiplied by gamma
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    use_epoch: int = 10  # 0-based epoch whose checkpoint goes downstream (paper: 10 of 15)
    nproc: int = 1  # processes (GPUs) for torchrun DDP
    num_workers: int = 0  # data loader workers per process
    amp: bool = False  # bf16 autocast, on CUDA only

    def __post_init__(self) -> None:
        rules = [
            (self.contrastive and not self.coattention, "contrastive: needs coattention: true"),
            (self.use_epoch >= self.epochs, f"use_epoch: must be below epochs ({self.epochs})"),
            (
                self.warmup_epochs >= self.epochs,
                f"warmup_epochs: must be below epochs ({self.epochs})",
            ),
            (self.batch_size % self.nproc != 0, "batch_size: must be a multiple of nproc"),
            (
                self.backbone == "vgg16" and (self.width != 1 or self.batch_norm),
                "backbone: vgg16 is the paper's network: set width: 1 and batch_norm: false",
            ),
            (
                self.pretrained == "imagenet" and self.backbone != "vgg16",
                "pretrained: imagenet weights exist for backbone: vgg16 only",
            ),
        ]
        for broken, message in rules:
            if broken:
                raise ConfigError(f"classifier.{message}")


@dataclass(frozen=True)
class LocmapsParams:
    """Co-attention localization maps of the training images (MCIS_SPEC section 3)."""

    partners: int = 3  # partner images per positive class (drawn with replacement)
    naive: bool = False  # recompute both images' features for every pairing, as the original
    threshold_step: float = 0.05  # background thresholds step..1-step of the quality curve

    def __post_init__(self) -> None:
        if self.partners < 1:
            raise ConfigError("locmaps.partners: must be at least 1")
        if not 0 < self.threshold_step < 0.5:
            raise ConfigError("locmaps.threshold_step: must be in (0, 0.5)")


@dataclass(frozen=True)
class PseudoLabelRules:
    """Thresholds of the MCIS pseudo-label rules (mcis_core.pseudo_labels); the public code's."""

    score_floor: float = 0.3  # scores below this are zeroed (background channel too)
    conflict: float = 0.99  # a pixel where more than one score exceeds this -> ignore
    salient_locmap: float = 0.95  # normalised locmap above this counts as salient (sal_att)
    salient_background: int = 32  # background pixel whose sal_att >= this -> ignore
    min_foreground: float = 0.01  # less than this fraction of object pixels -> image ignored


@dataclass(frozen=True)
class PseudoGtParams:
    """Pseudo labels from saliency and localization maps (MCIS_SPEC section 4)."""

    rules: PseudoLabelRules = field(default_factory=PseudoLabelRules)
    on_missing: Literal["error", "skip"] = "error"  # an image lacking saliency or maps


@dataclass(frozen=True)
class SegmentationParams:
    """DeepLab-LargeFOV trained on the pseudo labels (MCIS_SPEC section 5)."""

    backbone: Literal["resnet101", "narrow"] = "resnet101"  # narrow: the VGG16-D1 of classifier
    width: float = 1.0  # channel multiplier of the narrow backbone and its head
    batch_norm: bool = True  # BN in the narrow backbone (resnet101: always, frozen)
    pretrained: Literal["none", "imagenet", "classifier"] = "imagenet"  # classifier: narrow only
    pretrained_path: str | None = None  # resnet101-63fe2227.pth, else the torch hub cache
    labels: Literal["pseudo", "gt"] = "pseudo"  # gt: the fully supervised upper bound
    crop_size: int = 321
    scale_range: tuple[float, float] = (0.7, 1.3)
    batch_size: int = 10  # images per optimiser step, over all processes and accumulation
    accumulation: int = 10  # micro-batches per step (the original: 1 image x 10)
    epochs: int = 15  # 15 x 10582 / 10 = about the original's 16000 iterations
    lr: float = 1e-3  # backbone; the LargeFOV head x10 (biases x2 and x20)
    lr_power: float = 0.9  # poly decay over all iterations
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nproc: int = 1
    num_workers: int = 0
    amp: bool = False

    def __post_init__(self) -> None:
        rules = [
            (
                self.batch_size % (self.accumulation * self.nproc) != 0,
                "batch_size: must be a multiple of accumulation x nproc",
            ),
            (
                self.pretrained == "classifier" and self.backbone != "narrow",
                "pretrained: classifier weights fit backbone: narrow only",
            ),
            (
                self.pretrained == "imagenet" and self.backbone != "resnet101",
                "pretrained: imagenet weights exist for backbone: resnet101 only",
            ),
        ]
        for broken, message in rules:
            if broken:
                raise ConfigError(f"segmentation.{message}")


@dataclass(frozen=True)
class CrfParams:
    """Fully connected CRF on the averaged probabilities (the public code's setting)."""

    iterations: int = 1
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 1.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 4.0
    bilateral_compat: float = 3.0
    prob_floor: float = 1e-4  # probabilities are clipped here before -log

    def __post_init__(self) -> None:
        rules = [
            (self.iterations < 0, "iterations: must be >= 0"),
            (not self.gaussian_sxy > 0, "gaussian_sxy: must be > 0"),
            (not self.bilateral_sxy > 0, "bilateral_sxy: must be > 0"),
            (not self.bilateral_srgb > 0, "bilateral_srgb: must be > 0"),
            (not 0 < self.prob_floor <= 1, "prob_floor: must be in (0, 1]"),
        ]
        for broken, message in rules:
            if broken:
                raise ConfigError(f"evaluate.crf.{message}")


@dataclass(frozen=True)
class EvaluateParams:
    """Multi-scale, sliding-window, flip inference and dense CRF (MCIS_SPEC section 6)."""

    split: Literal["val", "test"] = "val"  # test: predictions only (no ground truth)
    scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    window: int = 401  # sliding-window side at each scale; stride 2/3 of it
    flip: bool = True
    crf: CrfParams = field(default_factory=CrfParams)
    examples: int = 4  # qualitative overlays written to metrics/evaluate_examples/


@dataclass(frozen=True)
class Params:
    base: BaseParams = field(default_factory=BaseParams)
    data: DataParams = field(default_factory=DataParams)
    saliency: SaliencyParams = field(default_factory=SaliencyParams)
    classifier: ClassifierParams = field(default_factory=ClassifierParams)
    locmaps: LocmapsParams = field(default_factory=LocmapsParams)
    pseudo_gt: PseudoGtParams = field(default_factory=PseudoGtParams)
    segmentation: SegmentationParams = field(default_factory=SegmentationParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return from_dict(Params, raw, where=str(path))


def from_dict(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking keys and types recursively."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name in raw:
            values[f.name] = _coerce(hints[f.name], raw[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required key is missing")
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits no option")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported parameter type {tp}")
