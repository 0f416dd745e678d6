"""params.yaml: every section validated by its schema; errors name the key, value and rule."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from mcis_core.common.errors import ConfigError
from mcis_core.common.params import check_params_file, load_section, spec_of
from mcis_core.sections import SECTIONS
from tests.params import PARAMS_FILE


def _params_with(tmp_path: Path, changes: dict[str, object]) -> Path:
    """The repository's params.yaml with dotted keys set (None deletes nothing: it sets null)."""
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _schemas(schema: type) -> typing.Iterator[type]:
    """A schema and every dataclass nested in it."""
    yield schema
    for hint in typing.get_type_hints(schema).values():
        for option in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(option):
                yield from _schemas(option)


def test_repository_params_are_valid() -> None:
    params = check_params_file(SECTIONS, PARAMS_FILE)
    assert set(params) == set(SECTIONS)
    assert params["data"].source == "embedded"
    assert params["data"].voc2012.voc_archive.md5 == "6cd6e144f989b92b3379bac3b3de84fd"
    assert params["data"].voc2012.aug_archive.md5 == "82b4d87ceb2ed10f6038a1cba92111cb"
    assert isinstance(params["data"].embedded.image_size, tuple)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_schemas_document_every_field_and_hold_no_default(name: str) -> None:
    for schema in _schemas(SECTIONS[name]):
        for field in dataclasses.fields(schema):
            assert field.default is dataclasses.MISSING, f"{schema.__name__}.{field.name}"
            assert field.default_factory is dataclasses.MISSING, f"{schema.__name__}.{field.name}"
            spec = spec_of(field)
            assert spec is not None and spec.doc, f"{schema.__name__}.{field.name} has no doc"


def test_int_is_accepted_as_float_but_not_the_reverse(tmp_path: Path) -> None:
    path = _params_with(tmp_path, {"data.embedded.distractor_prob": 1})
    assert load_section("data", SECTIONS["data"], path).embedded.distractor_prob == 1.0
    path = _params_with(tmp_path, {"data.embedded.train_images": 2.5})
    with pytest.raises(ConfigError, match=r"data\.embedded\.train_images: expected an integer"):
        load_section("data", SECTIONS["data"], path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data.sorce": "embedded"}, r"data: unknown key `sorce` \(did you mean `source`\?\)"),
        ({"base.sede": 1}, r"base: unknown key `sede` \(did you mean `seed`\?\)"),
        ({"classfier": {"epochs": 3}}, r"unknown key `classfier` \(did you mean `classifier`\?\)"),
        ({"data.source": "coco"}, r"data\.source: 'coco' is not one of"),
        ({"data.embedded.image_size": [1, 2, 3]}, r"image_size: expected 2 values"),
        ({"base.seed": True}, r"base\.seed: expected an integer"),
        ({"saliency.fetch": {"md5": "abc"}}, r"saliency\.fetch\.filename: required key is missing"),
        ({"base": [1]}, r"base: expected a mapping"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_params_file(SECTIONS, _params_with(tmp_path, changes))


def test_a_missing_key_is_named_with_its_doc(tmp_path: Path) -> None:
    raw = yaml.safe_load(PARAMS_FILE.read_text())
    del raw["classifier"]["lr"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"classifier\.lr: required key is missing \(learning"):
        check_params_file(SECTIONS, path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        check_params_file(SECTIONS, tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classifier.lr": 0}, r"classifier\.lr: 0 is not allowed: must be > 0"),
        ({"classifier.views": []}, r"classifier\.views: \[\] is not allowed: must have at least 1"),
        ({"classifier.batch_size": 0}, r"classifier\.batch_size: 0 is not allowed: must be >= 1"),
        ({"classifier.epochs": 0}, r"classifier\.epochs: 0 is not allowed: must be >= 1"),
        ({"classifier.nproc": 0}, r"classifier\.nproc: 0 is not allowed: must be >= 1"),
        ({"classifier.input_size": -8}, r"classifier\.input_size: -8 is not allowed: must be >="),
        ({"pseudo_gt.rules.score_floor": 2}, r"score_floor: 2 is not allowed: must be <= 1"),
        ({"data.embedded.jpeg_quality": 150}, r"jpeg_quality: 150 is not allowed: must be <= 100"),
        ({"data.embedded.max_classes": 30}, r"max_classes: 30 is not allowed: must be <= 20"),
        ({"evaluate.window": 0}, r"evaluate\.window: 0 is not allowed: must be >= 8"),
        ({"evaluate.scales": []}, r"evaluate\.scales: \[\] is not allowed: must have at least"),
        ({"evaluate.scales": [1.0, -1.0]}, r"evaluate\.scales: \[1\.0, -1\.0\] is not allowed"),
        ({"segmentation.crop_size": 0}, r"segmentation\.crop_size: 0 is not allowed"),
        ({"locmaps.partners": 0}, r"locmaps\.partners: 0 is not allowed: must be >= 1"),
        ({"evaluate.crf.prob_floor": 0}, r"evaluate\.crf\.prob_floor: 0 is not allowed: must be >"),
    ],
)
def test_values_out_of_range_are_rejected(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_params_file(SECTIONS, _params_with(tmp_path, changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classifier.coattention": False}, r"classifier\.contrastive: needs coattention"),
        (
            {"classifier.epochs": 18, "classifier.use_epoch": 18},
            r"classifier\.use_epoch: 18 must be below epochs \(18\)",
        ),
        (
            {"classifier.epochs": 18, "classifier.warmup_epochs": 18},
            r"classifier\.warmup_epochs: 18 must be below",
        ),
        ({"classifier.views": [0.75, 1.0]}, r"classifier\.views: \[0\.75, 1\.0\] must start"),
        ({"classifier.nproc": 3}, r"classifier\.batch_size: 8 must be a multiple of nproc \(3\)"),
        ({"classifier.backbone": "vgg16"}, r"classifier\.backbone: vgg16 is the paper's network"),
        ({"classifier.pretrained": "imagenet"}, r"classifier\.pretrained: imagenet weights"),
        ({"segmentation.accumulation": 3}, r"segmentation\.batch_size: 8 must be a multiple"),
        ({"segmentation.scales": [0.7, -1.3]}, r"segmentation\.scales: \[0\.7, -1\.3\] is not"),
        ({"data.embedded.image_size": [200, 100]}, r"data\.embedded\.image_size: min must"),
        ({"data.source": "voc2012", "data.voc2012": None}, r"data\.voc2012: required when"),
        ({"saliency.source": "fetch"}, r"saliency\.fetch: required when saliency\.source is"),
        ({"pseudo_gt.on_missing": "ignore"}, r"pseudo_gt\.on_missing: 'ignore' is not one of"),
    ],
)
def test_inconsistent_params_are_rejected(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_params_file(SECTIONS, _params_with(tmp_path, changes))
