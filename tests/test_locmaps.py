"""Tests of the co-attention localization maps (mcis_core.locmaps.maps, docs/method.md §4)
and of their quality measure (mcis_core.locmaps.metrics).

Aggregation and scaling are checked on hand-written CAMs, the self views with a stub network,
flip handling with a mirror-equivariant tiny network, the cached schedule against the naive one
on a tiny embedded dataset, and the threshold mIoU against a brute-force pixel loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from mcis_core.classifier.network import CoAttentionNet, ModelConfig, PairOutput
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_dir, save_gray
from mcis_core.common.layout import (
    FINE_MASK_DIR,
    IGNORE_INDEX,
    JPEG_DIR,
    TRAIN_AUG,
    read_class_labels,
    read_split,
    save_mask,
)
from mcis_core.common.paths import locmap_path
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.locmaps.maps import (
    AnchorPlan,
    ImageSource,
    Localizer,
    aggregate,
    plan_partners,
    scale_to_max,
    self_view_maps,
    to_image_size,
)
from mcis_core.locmaps.metrics import evaluate_locmaps
from mcis_core.locmaps.run import bank_of_all_images, localize
from mcis_core.training.process import Process
from tests.params import section

NUM_CLASSES = len(VOC_CLASSES)
SEED = 0
INPUT_SIZE = 32  # a multiple of 8: every 2x2 pooling window of every view is whole
VIEWS = (1.0, 0.75, 2.0)
CPU = torch.device("cpu")
AFFINITY_STD = 3.0
HAND_GATE = 0.1  # the original's view gate, which the hand-computed maps below assume
VIEW_GATE = section("locmaps").view_gate
BANK = section("locmaps").bank  # the default: float32 on the device
SINGLE = Process(0, 1, CPU)

# --- scale_to_max and aggregate ----------------------------------------------------------------


def test_scale_to_max_by_hand() -> None:
    cam = torch.tensor([[-1.0, 0.0], [2.0, 5.0]])
    # exact: 255 / 5 = 51 and 2 * 51 = 102 are whole numbers, no rounding anywhere
    assert scale_to_max(cam).tolist() == [[0.0, 0.0], [102.0, 255.0]]


@pytest.mark.parametrize("value", [-3.0, 0.0])
def test_scale_to_max_of_a_map_without_positive_values_is_zero(value: float) -> None:
    cam = torch.full((2, 3), value)
    cam[0, 1] = value - 1  # not constant
    out = scale_to_max(cam)
    assert out.shape == (2, 3)
    assert out.tolist() == [[0.0] * 3] * 2


def cams_with(planes: dict[int, list[float]], fill: float = 100.0) -> torch.Tensor:
    """A (K, 1, 3) CAM whose channels in `planes` are given and the others are `fill`."""
    cam = torch.full((NUM_CLASSES, 1, 3), fill)
    for c, row in planes.items():
        cam[c, 0] = torch.tensor(row)
    return cam


# Five maps, like [M0, M1, M2, M3, M_partner]; per class: the row, sigmoid(mean) and what it adds.
HAND_MAPS = [
    # class 5: [0, 127.5, 255] (M0 always counts); class 2: all zero -> adds 0
    cams_with({5: [-1.0, 2.0, 4.0], 2: [0.0, 0.0, 0.0]}),
    # class 5: mean 2 -> kept, [63.75, 63.75, 255]; class 2: mean 1 -> kept, [0, 0, 255]
    cams_with({5: [1.0, 1.0, 4.0], 2: [0.0, 0.0, 3.0]}),
    # class 5: mean -5, sigmoid .0067 -> dropped (would add [0, 0, 255]); class 2: [255, 127.5, 0]
    cams_with({5: [-9.0, -7.0, 1.0], 2: [2.0, 1.0, 0.0]}),
    # class 5: mean -2, sigmoid .119 > .1 -> kept, [0, 255, 0]; class 2: mean -1, kept, adds 0
    cams_with({5: [-6.5, 1.0, -0.5], 2: [-1.0, -1.0, -1.0]}),
    # class 5: mean -2.33, sigmoid .088 -> dropped (would add [0, 0, 255]); class 2: [127.5, 0, 255]
    cams_with({5: [-4.0, -3.2, 0.2], 2: [5.0, 0.0, 10.0]}),
]
CLASS_5 = [(0 + 63.75 + 0) / 5, (127.5 + 63.75 + 255) / 5, (255 + 255 + 0) / 5]
CLASS_2 = [(255 + 127.5) / 5, 127.5 / 5, (255 + 255) / 5]


def test_aggregate_by_hand() -> None:
    out = aggregate(HAND_MAPS, [5, 2], HAND_GATE)
    assert out.shape == (2, 1, 3)
    torch.testing.assert_close(out, torch.tensor([[CLASS_5], [CLASS_2]]))


def test_aggregate_follows_the_order_of_classes() -> None:
    out = aggregate(HAND_MAPS, [2, 5], HAND_GATE)
    torch.testing.assert_close(out, torch.tensor([[CLASS_2], [CLASS_5]]))


def test_aggregate_divides_by_the_list_length() -> None:
    # only M0 and M1: class 5 = ([0, 127.5, 255] + [63.75, 63.75, 255]) / 2
    out = aggregate(HAND_MAPS[:2], [5], HAND_GATE)
    torch.testing.assert_close(out, torch.tensor([[[31.875, 95.625, 255.0]]]))


def test_aggregate_without_classes_is_empty() -> None:
    out = aggregate(HAND_MAPS, [], HAND_GATE)
    assert out.shape == (0, 1, 3)


# --- plan_partners -----------------------------------------------------------------------------

LABELS = [[0], [0, 1], [1], [2], [0, 3], [3], [], [0], [1, 0], [4]]


def test_plan_partners_draws_images_with_the_class() -> None:
    plans = plan_partners(LABELS, NUM_CLASSES, partners=3, seed=SEED)
    assert [p.index for p in plans] == list(range(len(LABELS)))
    for plan, classes in zip(plans, LABELS, strict=True):
        assert plan.classes == tuple(classes)
        assert set(plan.partners) == set(classes)
        for c, drawn in plan.partners.items():
            assert len(drawn) == 3
            assert all(c in LABELS[p] for p in drawn)


def test_plan_partners_may_draw_the_anchor_itself_as_the_original() -> None:
    plans = plan_partners(LABELS, NUM_CLASSES, partners=50, seed=SEED)
    # class 0: images 0, 1, 4, 7 and 8; each anchor's 50 draws include itself and others
    for index in (0, 1, 4, 7, 8):
        assert set(plans[index].partners[0]) == {0, 1, 4, 7, 8}


def test_plan_partners_pairs_an_image_alone_with_its_class_with_itself() -> None:
    plans = plan_partners(LABELS, NUM_CLASSES, partners=3, seed=SEED)
    assert plans[3].partners == {2: (3, 3, 3)}  # the only image of class 2
    assert plans[9].partners == {4: (9, 9, 9)}
    assert plans[6].partners == {}  # no class, no partner


def test_plan_partners_draws_with_replacement() -> None:
    # class 3 has two images, so 5 draws repeat them
    plans = plan_partners(LABELS, NUM_CLASSES, partners=5, seed=SEED)
    assert set(plans[4].partners[3]) <= {4, 5} and len(plans[4].partners[3]) == 5
    # class 0 has 5 images: 8 draws repeat one at least
    assert len(set(plan_partners(LABELS, NUM_CLASSES, 8, seed=SEED)[0].partners[0])) <= 5


def test_plan_partners_is_deterministic_for_a_seed() -> None:
    assert plan_partners(LABELS, NUM_CLASSES, 3, seed=7) == plan_partners(
        LABELS, NUM_CLASSES, 3, seed=7
    )
    assert plan_partners(LABELS, NUM_CLASSES, 3, seed=7) != plan_partners(
        LABELS, NUM_CLASSES, 3, seed=8
    )


# --- self views --------------------------------------------------------------------------------


class StubNet:
    """A `pair` returning prepared outputs in turn and recording the features it was given."""

    def __init__(self, outputs: list[PairOutput]) -> None:
        self.outputs = list(outputs)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def pair(self, fa: torch.Tensor, fb: torch.Tensor) -> PairOutput:
        self.calls.append((fa, fb))
        return self.outputs[len(self.calls) - 1]


def pair_output(co_cam_a: torch.Tensor, co_cam_b: torch.Tensor) -> PairOutput:
    k = co_cam_a.shape[1]
    return PairOutput(co_cam_a, co_cam_b, torch.zeros(1, k), torch.zeros(1, k))


def constant_cam(values: list[float], size: int) -> torch.Tensor:
    """(1, K, size, size) with channel k constant values[k]."""
    return torch.tensor(values)[None, :, None, None].expand(1, -1, size, size).clone()


def test_self_view_maps_with_a_stub() -> None:
    anchor = torch.zeros(1, 1, 4, 4)
    views = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 8, 8)]
    mirror_b = torch.arange(32.0).reshape(1, 2, 4, 4)
    outputs = [
        pair_output(torch.arange(32.0).reshape(1, 2, 4, 4) * -1, mirror_b),
        pair_output(torch.full((1, 2, 4, 4), 99.0), constant_cam([3.0, -2.0], 3)),
        pair_output(torch.full((1, 2, 4, 4), 99.0), constant_cam([7.0, 0.5], 8)),
    ]
    net = StubNet(outputs)
    anchor_calls = []

    def anchor_features() -> torch.Tensor:
        anchor_calls.append(1)
        return anchor

    maps = self_view_maps(net, anchor_features, views, VIEWS)

    assert len(maps) == 1 + len(VIEWS)
    assert len(anchor_calls) == len(VIEWS)
    assert len(net.calls) == len(VIEWS)
    for (fa, fb), view in zip(net.calls, views, strict=True):
        assert fa is anchor
        assert fb is view
    # M0: the anchor's co-CAM of the mirror pairing (the later pairings' are not used)
    assert torch.equal(maps[0], -torch.arange(32.0).reshape(2, 4, 4))
    # M1: the mirror's co-CAM flipped left-right: each row reversed
    rows = [[4 * r + 3, 4 * r + 2, 4 * r + 1, 4 * r] for r in range(8)]
    assert maps[1].tolist() == torch.tensor(rows, dtype=torch.float32).reshape(2, 4, 4).tolist()
    # M2, M3: the views' co-CAMs at the anchor's 4 x 4 size (a constant stays constant)
    torch.testing.assert_close(maps[2], constant_cam([3.0, -2.0], 4)[0])
    torch.testing.assert_close(maps[3], constant_cam([7.0, 0.5], 4)[0])


def test_self_view_maps_resize_bicubically() -> None:
    generator = torch.Generator().manual_seed(SEED)
    anchor = torch.zeros(1, 1, 5, 5)
    view_cam = torch.randn(1, 3, 9, 9, generator=generator)
    net = StubNet([pair_output(torch.zeros(1, 3, 5, 5), view_cam)])
    maps = self_view_maps(net, lambda: anchor, [torch.zeros(1, 1, 9, 9)], [2.0])
    assert len(maps) == 2
    expected = F.interpolate(view_cam, size=(5, 5), mode="bicubic", align_corners=False)[0]
    torch.testing.assert_close(maps[1], expected)
    bilinear = F.interpolate(view_cam, size=(5, 5), mode="bilinear", align_corners=False)[0]
    assert not torch.allclose(maps[1], bilinear)


# --- flip handling -----------------------------------------------------------------------------


def lively_net(symmetric: bool = False) -> CoAttentionNet:
    """A tiny random network whose co-attention CAMs vary over the image.

    PyTorch's default init shrinks the activations layer by layer and gives a near-uniform
    attention, hence near-constant maps; He-normal convs and a larger affinity do not.
    `symmetric` makes every conv kernel equal its own mirror: the network is then
    flip-equivariant (1x1 convs and the affinity act per position).
    """
    torch.manual_seed(SEED)
    net = CoAttentionNet(ModelConfig(width=0.0625, batch_norm=False, num_classes=NUM_CLASSES))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if symmetric:
                    module.weight.copy_((module.weight + module.weight.flip(-1)) / 2)
        nn.init.normal_(net.affinity.weight, std=AFFINITY_STD)
    return net.eval()


def write_image(path: Path, pixels: np.ndarray) -> None:
    """Save (H, W, 3) uint8 losslessly under `path`, a .jpg name as ImageSource expects.

    PIL decodes by content, so PNG data behind the .jpg name is read back exactly; JPEG's
    block DCT and chroma subsampling would not keep a mirror-symmetric image symmetric.
    """
    Image.fromarray(pixels).save(path, format="PNG")


@pytest.fixture(scope="module")
def mirror_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a left-right symmetric image `sym` and an asymmetric one `other`."""
    voc = tmp_path_factory.mktemp("mirror") / "voc"
    (voc / JPEG_DIR).mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    blocks = rng.integers(0, 256, size=(5, 3, 3), dtype=np.uint8)
    half = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)  # (40, 24, 3): image structure
    sym = np.concatenate([half, half[:, ::-1]], axis=1)  # (40, 48, 3)
    write_image(voc / JPEG_DIR / "sym.jpg", sym)
    with Image.open(voc / JPEG_DIR / "sym.jpg") as img:
        assert np.array_equal(np.asarray(img), sym[:, ::-1])  # the file is its own mirror
    other = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    write_image(voc / JPEG_DIR / "other.jpg", other)
    return voc


def mirror_maps(voc: Path, anchor: int) -> torch.Tensor:
    """Maps of every class of image `anchor`, partnered with the other image."""
    source = ImageSource(voc, ["sym", "other"], INPUT_SIZE)
    localizer = Localizer(lively_net(symmetric=True), source, VIEWS, VIEW_GATE, CPU, naive=False)
    classes = tuple(range(NUM_CLASSES))
    partner = 1 - anchor
    plan = AnchorPlan(anchor, classes, {c: (partner,) * 3 for c in classes})
    with bank_of_all_images(localizer, BANK, voc.parent / "bank", SINGLE):
        return localizer.maps(plan)


def test_symmetric_image_gives_symmetric_maps(mirror_voc: Path) -> None:
    maps = mirror_maps(mirror_voc, anchor=0)  # the partner is not symmetric: no matter
    assert maps.shape == (NUM_CLASSES, 40, 48)
    assert maps.dtype == torch.uint8
    assert torch.equal(maps, maps.flip(-1))
    varying = [int(m.max()) > int(m.min()) for m in maps]
    assert sum(varying) >= NUM_CLASSES // 4  # the symmetry is not that of constant maps


def test_asymmetric_image_gives_asymmetric_maps(mirror_voc: Path) -> None:
    """The symmetry check above can fail: the same network on an asymmetric image."""
    maps = mirror_maps(mirror_voc, anchor=1)
    assert not torch.equal(maps, maps.flip(-1))


# --- cached vs naive schedule, writing ---------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(4, 8, 2, (56, 72))


@pytest.fixture(scope="module")
def tiny_net() -> CoAttentionNet:
    return lively_net()


def embedded_setup(
    voc: Path, net: CoAttentionNet, naive: bool
) -> tuple[Localizer, list[AnchorPlan], list[str]]:
    """A localizer of the train_aug images, their partner plans and names."""
    names = read_split(voc, TRAIN_AUG)
    labels = read_class_labels(voc)
    source = ImageSource(voc, names, INPUT_SIZE)
    localizer = Localizer(net, source, VIEWS, VIEW_GATE, CPU, naive=naive)
    plans = plan_partners([labels[n] for n in names], NUM_CLASSES, partners=3, seed=SEED)
    return localizer, plans, names


def counting_features(localizer: Localizer) -> list[int]:
    """Count the localizer's backbone passes (one per image) from now on."""
    passes: list[int] = []
    features = localizer.features

    def counted(image: torch.Tensor) -> torch.Tensor:
        passes.append(1)
        return features(image)

    localizer.features = counted  # the instance attribute shadows the method
    return passes


def test_cached_and_naive_schedules_give_identical_maps(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path
) -> None:
    cached, plans, names = embedded_setup(embedded_voc, tiny_net, naive=False)
    naive, _, _ = embedded_setup(embedded_voc, tiny_net, naive=True)
    with bank_of_all_images(cached, BANK, tmp_path / "bank", SINGLE):
        assert len(names) == 12
        assert len(cached.bank) == len(names)
        assert cached.bank.storage.shape == (len(names), *cached.feature_shape())
        compare_schedules(cached, naive, plans, names)


def compare_schedules(
    cached: Localizer, naive: Localizer, plans: list[AnchorPlan], names: list[str]
) -> None:
    """Every plan's maps equal in both schedules; the cached one makes fewer backbone passes."""
    cached_passes, naive_passes = counting_features(cached), counting_features(naive)
    varying = 0
    for plan in plans:
        a, b = cached.maps(plan), naive.maps(plan)
        assert a.dtype == b.dtype == torch.uint8
        original = cached.source.original(plan.index)
        assert a.shape == b.shape == (len(plan.classes), original.height, original.width)
        assert torch.equal(a, b), names[plan.index]
        varying += sum(int(m.max()) > int(m.min()) for m in a)
    assert varying >= len(plans) // 2  # not trivially equal
    # cached: only the views are new; naive: the anchor for each of its pairings, and partners
    pairings = sum(len(VIEWS) + 2 * len(plan.classes) * 3 for plan in plans)
    assert len(cached_passes) == len(VIEWS) * len(plans)
    assert len(naive_passes) == len(VIEWS) * len(plans) + pairings


def test_localize_writes_one_gray_png_per_image_and_class(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path
) -> None:
    localizer, plans, names = embedded_setup(embedded_voc, tiny_net, naive=False)
    out = tmp_path / "locmaps"
    with atomic_dir(out) as tmp:
        localize(localizer, plans, names, tmp, BANK, out, SINGLE)

    labels = read_class_labels(embedded_voc)
    expected = {f"{n}_{c}.png" for n in names for c in labels[n]}
    assert {p.name for p in out.iterdir()} == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locmaps"]  # no temporary left
    with bank_of_all_images(localizer, BANK, out, SINGLE):
        every_maps = {names[plan.index]: (plan.classes, localizer.maps(plan)) for plan in plans}
    for name, (classes, maps) in every_maps.items():
        for cls, plane in zip(classes, maps, strict=True):
            assert locmap_path(out, name, cls) == out / f"{name}_{cls}.png"
            with Image.open(locmap_path(out, name, cls)) as img:
                assert img.format == "PNG"
                assert img.mode == "L"
                with Image.open(embedded_voc / JPEG_DIR / f"{name}.jpg") as original:
                    assert img.size == original.size
                assert np.array_equal(np.asarray(img), plane.numpy())


def test_localize_leaves_no_output_when_interrupted(
    embedded_voc: Path, tiny_net: CoAttentionNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    localizer, plans, names = embedded_setup(embedded_voc, tiny_net, naive=False)
    calls = []
    real_maps = Localizer.maps

    def failing_maps(self: Localizer, plan: AnchorPlan) -> torch.Tensor:
        calls.append(plan.index)
        if len(calls) == 3:
            raise RuntimeError("interrupted")
        return real_maps(self, plan)

    monkeypatch.setattr(Localizer, "maps", failing_maps)
    out = tmp_path / "locmaps"
    with pytest.raises(RuntimeError, match="interrupted"), atomic_dir(out) as tmp:
        localize(localizer, plans, names, tmp, BANK, out, SINGLE)
    assert len(calls) == 3
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


# --- evaluate_locmaps --------------------------------------------------------------------------


def brute_force_curve(
    maps: dict[str, dict[int, np.ndarray]], truths: dict[str, np.ndarray], thresholds: list[float]
) -> list[float]:
    """mIoU at each threshold by classifying every pixel in plain loops."""
    curve = []
    for t in thresholds:
        tp, in_truth, in_pred = [0] * 21, [0] * 21, [0] * 21
        for name, truth in truths.items():
            planes = maps[name]  # class -> (H, W) 0..255, in the image's class order
            peaks = {c: float(p.max()) for c, p in planes.items()}
            height, width = truth.shape
            for y in range(height):
                for x in range(width):
                    true = int(truth[y, x])
                    if true == IGNORE_INDEX:
                        continue
                    best, top = -math.inf, 0
                    for c, plane in planes.items():
                        score = float(plane[y, x]) / peaks[c] if peaks[c] > 0 else 0.0
                        if score > best:  # the first map wins ties
                            best, top = score, c + 1
                    pred = top if best > t else 0  # no map: -inf, background
                    in_truth[true] += 1
                    in_pred[pred] += 1
                    tp[true] += pred == true
        ious = [
            tp[k] / (in_truth[k] + in_pred[k] - tp[k])
            for k in range(21)
            if in_truth[k] + in_pred[k]
        ]
        curve.append(sum(ious) / len(ious))
    return curve


def test_evaluate_locmaps_against_brute_force(tmp_path: Path) -> None:
    voc, maps_dir = tmp_path / "voc", tmp_path / "locmaps"
    (voc / FINE_MASK_DIR).mkdir(parents=True)
    maps_dir.mkdir()
    X = IGNORE_INDEX
    truths = {
        "a": np.array([[0, 0, 3, 3], [0, 3, 3, X], [8, 8, 0, 0]], dtype=np.uint8),
        "b": np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, X, 5]], dtype=np.uint8),
        "c": np.array([[0, 0, 0, 0], [0, 2, 2, 0], [0, 0, 0, 0]], dtype=np.uint8),
    }
    maps = {
        # no normalised score equals a threshold but 100 / 200 = 0.5, exact in float32 too
        "a": {  # classes 2 and 7 (labels 3 and 8); the class 7 map peaks at 200 -> / 200
            2: np.array([[10, 40, 250, 255], [0, 200, 180, 90], [60, 0, 30, 0]]),
            7: np.array([[0, 0, 21, 100], [0, 50, 0, 0], [200, 160, 100, 19]]),
        },
        "b": {  # class 0 and an all-zero map of class 4
            0: np.array([[120, 90, 30, 60], [100, 12, 0, 0], [0, 0, 255, 6]]),
            4: np.zeros((3, 4)),
        },
        "c": {},  # no class: every pixel background
    }
    labels = {name: list(planes) for name, planes in maps.items()}
    for name, truth in truths.items():
        save_mask(voc / FINE_MASK_DIR / f"{name}.png", truth)
        for c, plane in maps[name].items():
            save_gray(locmap_path(maps_dir, name, c), plane.astype(np.uint8))
    thresholds = [0.1, 0.3, 0.45, 0.5, 0.7, 0.9]

    threshold, scores, curve = evaluate_locmaps(
        voc, maps_dir, list(truths), labels, NUM_CLASSES, np.array(thresholds)
    )

    expected = brute_force_curve(maps, truths, thresholds)
    assert [row["threshold"] for row in curve] == thresholds
    for row, miou in zip(curve, expected, strict=True):
        assert math.isclose(row["miou"], miou, rel_tol=1e-12)
    best = max(expected)
    assert threshold == thresholds[expected.index(best)]  # the lowest of equals
    assert math.isclose(scores["miou"], best, rel_tol=1e-12)
    assert len(set(expected)) > 1  # the thresholds matter for these maps


def test_evaluate_locmaps_names_a_missing_map(tmp_path: Path) -> None:
    voc = tmp_path / "voc"
    (voc / FINE_MASK_DIR).mkdir(parents=True)
    save_mask(voc / FINE_MASK_DIR / "a.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "locmaps").mkdir()
    with pytest.raises(DatasetError, match="a_3.png: localization map missing"):
        evaluate_locmaps(voc, tmp_path / "locmaps", ["a"], {"a": [3]}, NUM_CLASSES, np.array([0.5]))


def test_evaluate_locmaps_a_score_equal_to_the_threshold_is_background(tmp_path: Path) -> None:
    voc, maps_dir = tmp_path / "voc", tmp_path / "locmaps"
    (voc / FINE_MASK_DIR).mkdir(parents=True)
    maps_dir.mkdir()
    save_mask(voc / FINE_MASK_DIR / "a.png", np.array([[0, 0, 1]], dtype=np.uint8))
    save_gray(locmap_path(maps_dir, "a", 0), np.array([[0, 51, 255]], dtype=np.uint8))
    # scores [0, 0.2, 1]: only the last pixel exceeds 0.2, so the prediction is the truth
    _, scores, _ = evaluate_locmaps(voc, maps_dir, ["a"], {"a": [0]}, NUM_CLASSES, np.array([0.2]))
    assert scores["miou"] == 1.0


def test_maps_are_cut_to_8_bits_before_the_resize_as_the_original() -> None:
    maps = torch.full((1, 2, 2), 10.9)
    assert torch.equal(to_image_size(maps, (4, 4)), torch.full((1, 4, 4), 10, dtype=torch.uint8))
    ramp = torch.tensor([[[0.0, 0.6], [0.6, 255.0]]])  # 0.6 -> 0 first, so less spills over
    truncated_first = (
        F.interpolate(
            torch.tensor([[[[0.0, 0.0], [0.0, 255.0]]]]),
            (6, 6),
            mode="bicubic",
            align_corners=False,
        )[0]
        .round()
        .clamp(0, 255)
    )
    assert torch.equal(to_image_size(ramp, (6, 6)), truncated_first.to(torch.uint8))
