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
    aug_images: int = 900  # images with aug masks only (the analogue of SBD)
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
    """The co-attention classifier and its training (MCIS_SPEC section 2)."""

    backbone: Literal["vgg16", "narrow"] = "narrow"  # vgg16: the paper's; narrow: CPU-sized
    width: float = 0.25  # channel multiplier of the narrow backbone (vgg16 forces 1)
    batch_norm: bool = True  # BN after every conv of the narrow backbone (vgg16: never)
    pretrained: Literal["none", "imagenet"] = "none"  # imagenet: torchvision VGG16 weights
    pretrained_path: str | None = None  # vgg16-397923af.pth, else the torch hub cache
    input_size: int = 256  # side of the square network input
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
class Params:
    base: BaseParams = field(default_factory=BaseParams)
    data: DataParams = field(default_factory=DataParams)
    saliency: SaliencyParams = field(default_factory=SaliencyParams)
    classifier: ClassifierParams = field(default_factory=ClassifierParams)


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
