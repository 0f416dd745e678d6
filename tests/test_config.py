"""params.yaml loading: defaults, type checks and error messages that name the key."""

from pathlib import Path

import pytest

from mcis_core.config import ConfigError, Params, load_params

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_repository_params_load() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "embedded"
    assert params.data.voc2012.voc_archive.md5 == "6cd6e144f989b92b3379bac3b3de84fd"
    assert params.data.voc2012.aug_archive.md5 == "82b4d87ceb2ed10f6038a1cba92111cb"
    assert isinstance(params.data.embedded.image_size, tuple)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_params(_write(tmp_path, "")) == Params()


def test_int_is_accepted_as_float_but_not_the_reverse(tmp_path: Path) -> None:
    params = load_params(_write(tmp_path, "data:\n  embedded:\n    distractor_prob: 1\n"))
    assert params.data.embedded.distractor_prob == 1.0
    with pytest.raises(ConfigError, match=r"data\.embedded\.train_images: expected an integer"):
        load_params(_write(tmp_path, "data:\n  embedded:\n    train_images: 2.5\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data:\n  sorce: embedded\n", r"data: unknown key\(s\) \['sorce'\]"),
        ("data:\n  source: coco\n", r"data\.source: 'coco' is not one of"),
        ("data:\n  embedded:\n    image_size: [1, 2, 3]\n", r"image_size: expected 2 values"),
        ("base:\n  seed: true\n", r"base\.seed: expected an integer"),
        (
            "saliency:\n  fetch:\n    md5: abc\n",
            r"saliency\.fetch\.filename: required key is missing",
        ),
        ("base: [1]\n", r"base: expected a mapping"),
    ],
)
def test_bad_params_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params(_write(tmp_path, text))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classifier:\n  coattention: false\n", r"classifier\.contrastive: needs coattention"),
        ("classifier:\n  epochs: 3\n  use_epoch: 3\n", r"classifier\.use_epoch: must be below"),
        ("classifier:\n  epochs: 3\n  use_epoch: 2\n  warmup_epochs: 3\n", r"warmup_epochs: must"),
        ("locmaps:\n  partners: 0\n", r"locmaps\.partners: must be at least 1"),
        ("pseudo_gt:\n  on_missing: ignore\n", r"pseudo_gt\.on_missing: 'ignore' is not one of"),
        (
            "classifier:\n  batch_size: 5\n  nproc: 2\n",
            r"classifier\.batch_size: must be a multiple",
        ),
        ("classifier:\n  backbone: vgg16\n", r"classifier\.backbone: vgg16 is the paper's network"),
        ("classifier:\n  pretrained: imagenet\n", r"classifier\.pretrained: imagenet weights"),
    ],
)
def test_inconsistent_classifier_params_are_rejected(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_params(_write(tmp_path, text))
