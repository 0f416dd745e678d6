"""Tests of the cached schedule's feature bank (mcis_core.locmaps.bank): its size by hand, its
placements giving the same maps as the device bank, float16 within a grey level of float32,
and the disk bank's scratch file removed, also after an interruption."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from mcis_core.classifier.network import CoAttentionNet
from mcis_core.common.errors import ConfigError
from mcis_core.common.params import load_section
from mcis_core.locmaps import maps as maps_module
from mcis_core.locmaps.bank import BANK_FILE, bank_bytes, readable
from mcis_core.locmaps.maps import MAX_VALUE, to_image_size
from mcis_core.locmaps.params import BankParams, LocmapsParams
from mcis_core.locmaps.run import bank_of_all_images
from tests.test_locmaps import SINGLE, embedded_setup, lively_net
from tests.test_params import _params_with

PAPER_IMAGES, PAPER_CHANNELS, PAPER_SIDE = 10582, 512, 32  # VOC train_aug, VGG16 at 256 px
GB16 = 16 * 10**9  # a "16 GB" GPU


def test_bank_bytes_of_the_papers_setting() -> None:
    fp32 = bank_bytes(PAPER_IMAGES, PAPER_CHANNELS, PAPER_SIDE, PAPER_SIDE, torch.float32)
    fp16 = bank_bytes(PAPER_IMAGES, PAPER_CHANNELS, PAPER_SIDE, PAPER_SIDE, torch.float16)
    assert fp32 == 10582 * 512 * 32 * 32 * 4 == 22_192_062_464
    assert fp16 == fp32 // 2 == 11_096_031_232
    assert readable(fp32) == "20.7 GiB"
    assert readable(fp16) == "10.3 GiB"
    assert fp16 < GB16 < fp32


def test_readable_sizes() -> None:
    assert readable(512) == "512 B"
    assert readable(3 * 2**20 // 2) == "1.5 MiB"


@pytest.fixture(scope="module")
def embedded_voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(4, 8, 2, (56, 72))


@pytest.fixture(scope="module")
def tiny_net() -> CoAttentionNet:
    return lively_net()


def all_maps(voc: Path, net: CoAttentionNet, bank: BankParams, scratch: Path) -> torch.Tensor:
    """Every image's maps with this bank, flattened into one uint8 vector."""
    localizer, plans, _ = embedded_setup(voc, net, naive=False)
    with bank_of_all_images(localizer, bank, scratch, SINGLE):
        return torch.cat([localizer.maps(plan).flatten() for plan in plans])


def maps_at_both_sizes(
    voc: Path, net: CoAttentionNet, bank: BankParams, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image's maps cut to 8 bits at the feature size, and at the image size, flattened."""
    cut = []

    def keeping_the_cut(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        cut.append(maps.clamp(0, MAX_VALUE).floor().flatten())
        return to_image_size(maps, size)

    monkeypatch.setattr(maps_module, "to_image_size", keeping_the_cut)
    localizer, plans, _ = embedded_setup(voc, net, naive=False)
    with bank_of_all_images(localizer, bank, scratch, SINGLE):
        assert localizer.bank.storage.dtype == getattr(torch, bank.dtype)
        assert localizer.bank[0].dtype == torch.float32  # used as float32 whatever is stored
        final = torch.cat([localizer.maps(plan).flatten() for plan in plans])
    return torch.cat(cut), final


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("placement", ["host", "disk"])
def test_host_and_disk_banks_give_the_maps_of_the_device_bank(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path, placement: str, dtype: str
) -> None:
    on_device = all_maps(embedded_voc, tiny_net, BankParams("device", dtype), tmp_path / "b")
    elsewhere = all_maps(embedded_voc, tiny_net, BankParams(placement, dtype), tmp_path / "b")
    assert torch.equal(on_device, elsewhere)
    assert list(tmp_path.iterdir()) == []


def test_float16_bank_maps_are_within_a_grey_level_of_float32_at_the_feature_size(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float16 moves the aggregated maps by a small fraction of a grey level, so their 8-bit
    cut by at most one level; the bicubic upsampling to the image size overshoots such a step
    (its weights' absolute sum exceeds 1) and the rounding adds up to one more: at most 2."""
    cut32, fp32 = maps_at_both_sizes(
        embedded_voc, tiny_net, BankParams("device", "float32"), tmp_path, monkeypatch
    )
    cut16, fp16 = maps_at_both_sizes(
        embedded_voc, tiny_net, BankParams("device", "float16"), tmp_path, monkeypatch
    )
    difference = (fp32.int() - fp16.int()).abs()
    identical = float((difference == 0).float().mean())
    print(f"float16 vs float32: max {int(difference.max())} grey level(s), {identical:.2%} equal")
    assert float((cut32 - cut16).abs().max()) <= 1
    assert int(difference.max()) <= 2
    assert identical > 0.95
    assert int(fp32.max()) > int(fp32.min())  # the maps vary: the comparison means something


def test_disk_bank_lives_in_a_scratch_folder_removed_after_the_block(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path
) -> None:
    localizer, _, names = embedded_setup(embedded_voc, tiny_net, naive=False)
    with bank_of_all_images(localizer, BankParams("disk", "float16"), tmp_path / "b", SINGLE):
        (scratch,) = tmp_path.iterdir()
        assert scratch.name.startswith(".b.tmp-")
        channels, height, width = localizer.feature_shape()
        expected = bank_bytes(len(names), channels, height, width, torch.float16)
        assert (scratch / BANK_FILE).stat().st_size == expected
    assert list(tmp_path.iterdir()) == []
    assert localizer.bank is None


def test_disk_bank_is_removed_when_interrupted(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path
) -> None:
    localizer, _, _ = embedded_setup(embedded_voc, tiny_net, naive=False)
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        bank_of_all_images(localizer, BankParams("disk", "float32"), tmp_path / "b", SINGLE),
    ):
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_naive_schedule_holds_no_bank(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path
) -> None:
    localizer, _, _ = embedded_setup(embedded_voc, tiny_net, naive=True)
    with bank_of_all_images(localizer, BankParams("disk", "float32"), tmp_path / "b", SINGLE):
        assert localizer.bank is None
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("locmaps.bank.placement", "gpu", r"locmaps\.bank\.placement: 'gpu' is not one of"),
        ("locmaps.bank.dtype", "bfloat16", r"locmaps\.bank\.dtype: 'bfloat16' is not one of"),
        ("locmaps.nproc", 0, r"locmaps\.nproc: 0 is not allowed: must be >= 1"),
    ],
)
def test_bank_and_nproc_params_are_checked(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_section("locmaps", LocmapsParams, _params_with(tmp_path, {key: value}))
