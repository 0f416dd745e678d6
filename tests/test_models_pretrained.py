"""ImageNet weights: an explicit file, the torch hub cache, or a checked download into it
(against a local HTTP server), and the `check_params` stage fetching them before training."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from mcis_core.common.errors import WeightsError
from mcis_core.common.params import check_params_file
from mcis_core.models import pretrained
from mcis_core.models.pretrained import (
    RESNET101_IMAGENET,
    VGG16_IMAGENET,
    hub_cache_path,
    imagenet_state_dict,
    sha256_prefix,
    weights_file,
)
from mcis_core.sections import SECTIONS, imagenet_weights_files
from tests.http_server import ServedFile, serve_files
from tests.tiny import REPO, TINY, merged

PARAM_NAME = "classifier.pretrained_path"
RESNET101_FILE = "resnet101-63fe2227.pth"


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache folder: <TORCH_HOME>/hub/checkpoints under tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert checkpoints == tmp_path / "torch_home" / "hub" / "checkpoints"
    return checkpoints


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on any outgoing connection (urllib connects through this call)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every outgoing connection fails, as on a machine without a network."""

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)


def standin_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4)}


def saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def hashed_name(data: bytes, stem: str = "standin") -> str:
    """`stem-<first 10 hex digits of sha256>.pth`, torch.hub's check_hash convention."""
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:10]}.pth"


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_the_weights_are_torchvisions_files() -> None:
    assert hub_cache_path(VGG16_IMAGENET.url).name == "vgg16-397923af.pth"
    assert hub_cache_path(RESNET101_IMAGENET.url).name == RESNET101_FILE
    assert sha256_prefix("vgg16-397923af.pth") == "397923af"
    assert sha256_prefix(RESNET101_FILE) == "63fe2227"


def test_a_download_lands_in_the_hub_cache(hub_dir: Path) -> None:
    state = standin_state()
    data = saved(state)
    name = hashed_name(data)
    with serve_files({name: data}) as server:
        got = imagenet_state_dict(server.url(name), None, PARAM_NAME)
        assert server.ranges(name) == [None]  # one GET
    assert got.keys() == state.keys()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert sorted(p.name for p in hub_dir.iterdir()) == [name]
    assert (hub_dir / name).read_bytes() == data


@pytest.mark.parametrize(
    "served",
    [
        pytest.param(lambda data: ServedFile(data[:-1] + bytes([data[-1] ^ 1])), id="corrupt"),
        pytest.param(lambda data: ServedFile(data, drop_after=len(data) // 2), id="cut_short"),
    ],
)
def test_a_bad_download_leaves_nothing_in_the_cache(hub_dir: Path, served) -> None:
    data = saved(standin_state())
    name = hashed_name(data)
    with serve_files({name: served(data)}) as server, pytest.raises(WeightsError) as error:
        weights_file(server.url(name), None, PARAM_NAME)
    message = one_line(error)
    assert name in message
    assert server.url(name) in message
    assert str(hub_dir) in message
    assert list(hub_dir.iterdir()) == []  # no .partial file either


def test_an_unreachable_server_names_file_url_and_folder(hub_dir: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/{RESNET101_FILE}"
    with pytest.raises(WeightsError) as error:
        weights_file(url, None, "segmentation.pretrained_path")
    message = one_line(error)
    for part in (RESNET101_FILE, url, str(hub_dir), "segmentation.pretrained_path"):
        assert part in message
    assert list(hub_dir.iterdir()) == []


def test_a_file_the_server_lacks_is_an_error(hub_dir: Path) -> None:
    with serve_files({}) as server, pytest.raises(WeightsError, match="404"):
        weights_file(server.url(RESNET101_FILE), None, PARAM_NAME)


def test_the_cached_file_is_read_without_network(hub_dir: Path, no_network: None) -> None:
    state = standin_state()
    hub_dir.mkdir(parents=True)
    torch.save(state, hub_dir / "vgg16-397923af.pth")
    got = imagenet_state_dict(VGG16_IMAGENET.url, None, PARAM_NAME)
    assert all(torch.equal(got[k], state[k]) for k in state)


def test_an_explicit_path_wins_over_the_cache(
    tmp_path: Path, hub_dir: Path, no_network: None
) -> None:
    state = standin_state()
    explicit = tmp_path / "weights.pth"
    torch.save(state, explicit)
    hub_dir.mkdir(parents=True)
    torch.save({k: 2 * v for k, v in state.items()}, hub_dir / "vgg16-397923af.pth")
    got = imagenet_state_dict(VGG16_IMAGENET.url, str(explicit), PARAM_NAME)
    assert all(torch.equal(got[k], state[k]) for k in state)
    with pytest.raises(WeightsError, match=r"classifier\.pretrained_path: .*nowhere\.pth"):
        weights_file(VGG16_IMAGENET.url, str(tmp_path / "nowhere.pth"), PARAM_NAME)


def test_offline_names_every_missing_file_in_one_line(hub_dir: Path, offline: None) -> None:
    params = check_params_file(SECTIONS, REPO / "params.yaml")
    needs = {
        "classifier": {"backbone": "vgg16", "width": 1.0, "batch_norm": False},
        "segmentation": {"backbone": "resnet101"},
    }
    for name, changes in needs.items():
        params[name] = replace(params[name], **changes, pretrained="imagenet")
    with pytest.raises(WeightsError) as error:
        imagenet_weights_files(params)
    message = one_line(error)
    assert "vgg16-397923af.pth" in message
    assert RESNET101_FILE in message
    assert list(hub_dir.iterdir()) == []


def test_the_default_config_needs_no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object) -> None:
        raise AssertionError("weights accessed")

    monkeypatch.setattr(pretrained, "weights_file", forbidden)
    monkeypatch.setattr("mcis_core.sections.weights_file", forbidden)
    assert imagenet_weights_files(check_params_file(SECTIONS, REPO / "params.yaml")) == []


def write_params(project: Path, override: dict) -> None:
    """The repository's params.yaml made tiny, with `override` put in, at `project`."""
    params = merged(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.yaml").write_text(yaml.safe_dump(merged(params, override)))


def test_check_params_stops_on_missing_resnet101_weights_offline(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write_params(project, {"segmentation": {"backbone": "resnet101", "pretrained": "imagenet"}})
    proxy = f"http://127.0.0.1:{closed_port()}"  # urllib fetches through it: refused, offline
    keep = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "pythonpath")}
    env = {
        **keep,
        **{k: proxy for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
        "TORCH_HOME": str(tmp_path / "torch_home"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-m", "stages.check_params"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert RESNET101_FILE in errors[0]
    assert RESNET101_IMAGENET.url in errors[0]
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in errors[0]
    assert not (project / "data" / "params_check.txt").exists()
    assert list((tmp_path / "torch_home" / "hub" / "checkpoints").iterdir()) == []
