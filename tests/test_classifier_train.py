"""Training of the co-attention classifier: resume, configuration changes, DDP, determinism.

All runs use one tiny embedded dataset and a narrow network of 32x32 inputs, on the CPU
with one intra-op thread (the machine is shared; oversubscribed threads are ~50x slower).
"""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

import pytest
import torch
from torch import nn

from mcis_core.classifier import train as classifier_training
from mcis_core.classifier.network import CoAttentionNet, ModelConfig
from mcis_core.classifier.params import ClassifierParams
from mcis_core.classifier.train import export_classifier, train_classifier, training_fingerprint
from mcis_core.dataset.voc import VOC_CLASSES
from mcis_core.training.batches import EpochLoader
from mcis_core.training.checkpoints import Checkpoints, tree_digest
from mcis_core.training.optim import parameter_groups, set_lr, step_lr
from mcis_core.training.process import Process
from tests.ddp_worker import train_rank
from tests.params import section

SEED = 0
CPU = Process(rank=0, world=1, device=torch.device("cpu"))
PARAMS = replace(
    section("classifier"),
    backbone="narrow",
    pretrained="none",
    width=0.0625,
    batch_norm=False,
    input_size=32,
    views=(1.0, 0.75, 2.0),
    batch_size=4,
    epochs=3,
    warmup_epochs=1,
    use_epoch=1,
    lr_steps=(2,),
    contrastive_from_epoch=1,
    lr=0.01,
)
TRAIN_EPOCH = classifier_training.train_epoch
DDP_TIMEOUT_S = 120.0


@dataclass
class Run:
    history: list[dict[str, float]]
    checkpoints: Checkpoints


@pytest.fixture(scope="module")
def voc(tiny_voc: Callable[..., Path]) -> Path:
    return tiny_voc(6, 10, 4, (48, 64))


@pytest.fixture(scope="module")
def run_a(voc: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """PARAMS trained uninterrupted."""
    return train(PARAMS, voc, tmp_path_factory.mktemp("run_a") / "checkpoints")


def train(params: ClassifierParams, voc: Path, folder: Path) -> Run:
    checkpoints = Checkpoints(folder, training_fingerprint(params, SEED, voc))
    return Run(train_classifier(params, SEED, voc, checkpoints, CPU), checkpoints)


def spy_on_epochs(monkeypatch: pytest.MonkeyPatch, interrupt_epoch: int | None = None) -> list[int]:
    """Record the epochs trained; in `interrupt_epoch`, Ctrl-C after its first optimizer step."""
    epochs: list[int] = []

    def train_epoch(
        objective: nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: EpochLoader,
        params: ClassifierParams,
        epoch: int,
        process: Process,
    ) -> dict[str, float]:
        epochs.append(epoch)
        if epoch == interrupt_epoch:
            step, steps = optimizer.step, []

            def step_then_interrupt(*args: object, **kwargs: object) -> object:
                if steps:
                    raise KeyboardInterrupt
                steps.append(epoch)
                return step(*args, **kwargs)

            optimizer.step = step_then_interrupt
        return TRAIN_EPOCH(objective, optimizer, loader, params, epoch, process)

    monkeypatch.setattr(classifier_training, "train_epoch", train_epoch)
    return epochs


def assert_identical(a: object, b: object, where: str = "state") -> None:
    """Nested dicts / lists of tensors and plain values, equal bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def file_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ddp(params: ClassifierParams, voc: Path, folder: Path, error_dir: Path) -> None:
    """Train with params.nproc spawned gloo processes; fail with a worker's traceback."""
    error_dir.mkdir()
    context = multiprocessing.get_context("spawn")
    port = free_port()
    workers = [
        context.Process(
            target=train_rank,
            args=(rank, params.nproc, port, params, SEED, voc, folder, error_dir),
            daemon=True,
        )
        for rank in range(params.nproc)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + DDP_TIMEOUT_S
    running = list(workers)
    try:
        while running and time.monotonic() < deadline:
            wait([w.sentinel for w in running], timeout=deadline - time.monotonic())
            running = [w for w in workers if w.exitcode is None]
            if any(w.exitcode not in (None, 0) for w in workers):
                break  # the others would wait for it in a collective
    finally:
        for worker in running:
            worker.kill()
        for worker in workers:
            worker.join(10)
    why = "timed out" if time.monotonic() >= deadline else "killed: another rank failed"
    problems = [
        f"rank {rank}: " + (why if w in running else f"exit code {w.exitcode}")
        for rank, w in enumerate(workers)
        if w.exitcode != 0
    ]
    if problems:
        tracebacks = [p.read_text() for p in sorted(error_dir.iterdir())]
        pytest.fail("\n".join(problems + tracebacks), pytrace=False)


def test_interrupted_run_resumes_to_the_same_checkpoints(
    voc: Path,
    run_a: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "checkpoints"
    epochs = spy_on_epochs(monkeypatch, interrupt_epoch=2)
    with pytest.raises(KeyboardInterrupt):
        train(PARAMS, voc, folder)
    assert epochs == [0, 1, 2]
    assert file_names(folder) == ["epoch_001.pt"]

    epochs = spy_on_epochs(monkeypatch)
    run_b = train(PARAMS, voc, folder)
    assert epochs == [2]
    assert "resuming after epoch 1" in capsys.readouterr().out

    assert run_b.history == run_a.history
    assert [r["epoch"] for r in run_b.history] == [0, 1, 2]
    assert file_names(folder) == file_names(run_a.checkpoints.folder)
    assert file_names(folder) == ["epoch_001.pt", "epoch_002.pt"]  # use_epoch and the last
    for epoch in (PARAMS.use_epoch, PARAMS.epochs - 1):
        state_a, state_b = run_a.checkpoints.load(epoch), run_b.checkpoints.load(epoch)
        assert_identical(state_a["model"], state_b["model"], f"epoch {epoch} model")
        assert_identical(state_a, state_b, f"epoch {epoch} checkpoint")


def test_warmup_epochs_train_the_single_image_branch_alone(run_a: Run) -> None:
    warmup, mcis = run_a.history[0], run_a.history[1]
    assert warmup["train_cls"] > 0 and warmup["train_co"] == 0 and warmup["train_comp"] == 0
    assert warmup["train_loss"] == pytest.approx(warmup["train_cls"])
    assert mcis["train_co"] > 0 and mcis["train_comp"] > 0
    state = run_a.checkpoints.load(PARAMS.use_epoch)  # after the first MCIS epoch
    fresh = classifier_training.build_model(PARAMS, len(VOC_CLASSES), SEED).state_dict()
    assert not torch.equal(state["model"]["affinity.weight"], fresh["affinity.weight"])


def test_checkpoints_of_another_configuration_are_not_resumed(
    voc: Path,
    run_a: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "checkpoints"
    shutil.copytree(run_a.checkpoints.folder, folder)
    other = replace(PARAMS, lr=0.02)
    assert training_fingerprint(other, SEED, voc) != run_a.checkpoints.fingerprint

    epochs = spy_on_epochs(monkeypatch)
    run = train(other, voc, folder)
    out = capsys.readouterr().out
    assert epochs == [0, 1, 2]
    assert "resuming" not in out
    assert out.count("belongs to another configuration") == 2
    assert file_names(folder) == ["epoch_001.pt", "epoch_002.pt"]
    for epoch in (1, 2):
        state = torch.load(folder / f"epoch_{epoch:03d}.pt", weights_only=False)
        assert state["fingerprint"] == run.checkpoints.fingerprint
        assert [r["epoch"] for r in state["history"]] == list(range(epoch + 1))
    assert run.history[0]["epoch"] == 0 and run.history[0]["lr"] == pytest.approx(0.02)
    with pytest.raises(RuntimeError, match="another configuration"):
        Checkpoints(folder, run_a.checkpoints.fingerprint).load(2)


def test_two_process_ddp_matches_one_process(voc: Path, tmp_path: Path) -> None:
    single = replace(PARAMS, epochs=2, use_epoch=1, nproc=1)
    ddp = replace(single, nproc=2)
    reference = train(single, voc, tmp_path / "single")
    run_ddp(ddp, voc, tmp_path / "ddp", tmp_path / "errors")

    assert reference.history[1]["train_comp"] > 0  # the contrastive terms were trained
    ddp_checkpoints = Checkpoints(tmp_path / "ddp", training_fingerprint(ddp, SEED, voc))
    assert file_names(ddp_checkpoints.folder) == ["epoch_001.pt"]
    state = ddp_checkpoints.load(1)
    expected = reference.checkpoints.load(1)
    assert state["model"].keys() == expected["model"].keys()
    # float32 gradients averaged over 2 processes round differently from the one-process batch's,
    # and 2 epochs of SGD carry that on: weights agree to 1e-4 of each tensor's largest weight
    for name, weights in expected["model"].items():
        difference = (state["model"][name] - weights).abs().max().item()
        scale = weights.abs().max().item()
        assert difference <= 1e-4 * scale, f"{name}: max abs difference {difference:.3g}"
    # losses agree closely; ranking metrics on 4 val images may flip on near-tied scores
    for got, want in zip(state["history"], expected["history"], strict=True):
        losses = [k for k in want if "loss" in k or k.startswith("train_")]
        assert {k: got[k] for k in losses} == pytest.approx({k: want[k] for k in losses}, rel=1e-4)


def test_same_params_export_identical_model_files(voc: Path, tmp_path: Path) -> None:
    params = replace(PARAMS, epochs=1, warmup_epochs=0, use_epoch=0)
    exported = []
    for name in ("first", "second"):
        run = train(params, voc, tmp_path / name / "checkpoints")
        out = tmp_path / name / "model.pt"
        metrics = export_classifier(params, run.checkpoints, voc, out)
        assert metrics == run.history[0]
        exported.append(out.read_bytes())
    assert exported[0] == exported[1]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_parameter_groups_split_backbone_head_weights_biases(batch_norm: bool) -> None:
    net = CoAttentionNet(
        ModelConfig(width=0.0625, batch_norm=batch_norm, num_classes=len(VOC_CLASSES))
    )
    multipliers = section("classifier").lr_multipliers
    groups = parameter_groups([net.backbone], net.head_modules(), 1.0, multipliers)
    assert [g["lr_mult"] for g in groups] == [1, 2, 10, 20]

    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in net.parameters()}

    backbone = {id(p) for p in net.backbone.parameters()}
    head = {id(p) for m in net.head_modules() for p in m.parameters()}
    shifts = {id(m.bias) for m in net.modules() if getattr(m, "bias", None) is not None}
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == (16 if batch_norm else 0)  # 13 backbone convs + 3 extra convs
    expected = [backbone - shifts, backbone & shifts, head - shifts, head & shifts]
    assert [{id(p) for p in g["params"]} for g in groups] == expected
    assert all(g["params"] for g in groups)

    optimizer = torch.optim.SGD(groups, lr=1.0)
    set_lr(optimizer, 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [0.5, 1.0, 5.0, 10.0]


@pytest.mark.parametrize(
    ("epoch", "expected"), [(0, 1e-3), (4, 1e-3), (5, 1e-4), (9, 1e-4), (10, 1e-5), (14, 1e-5)]
)
def test_lr_steps_down_at_the_step_epochs(epoch: int, expected: float) -> None:
    assert step_lr(1e-3, epoch, (5, 10), 0.1) == pytest.approx(expected, rel=1e-12)


def test_tree_digest_sees_content_and_names(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "JPEGImages").mkdir(parents=True)
        (tmp_path / name / "JPEGImages" / "x.jpg").write_bytes(b"pixels")
        (tmp_path / name / "cls_labels.txt").write_text("x 3\n")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    (tmp_path / "b" / "JPEGImages" / "x.jpg").write_bytes(b"pixelz")  # same labels, new image
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "b")
    (tmp_path / "b" / "JPEGImages" / "x.jpg").write_bytes(b"pixels")
    (tmp_path / "b" / "JPEGImages" / "x.jpg").rename(tmp_path / "b" / "JPEGImages" / "y.jpg")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "b")
