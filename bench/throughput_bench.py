"""Benchmark: training-step throughput of the default models against the machine's peak.

The classifier's warm-up step (one image per row) and MCIS pair step (anchor, partner and
three views), and the segmentation network's step, each on the model, batch and input size
of params.yaml, run on the CPU under the pipeline's kernel settings (`base.cpu_kernels`,
pinned before torch loads, as in the stages). FLOPs are counted by torch's FlopCounterMode
(convolutions and matmuls, forward and backward). The yardstick is oneDNN's float32
throughput on a GEMM-shaped convolution (`bench.conv_peak`) measured in the same run: under
the same kernel settings (what the step can reach) and, in a child process, with the
libraries' own choice of instruction set (`native`). Prints JSON.

    python -m bench.throughput_bench [--steps N]
"""

from mcis_core.common.kernels import cpu_kernels_setting, pin_cpu_kernels

pin_cpu_kernels(cpu_kernels_setting())  # before torch loads, as stages/__init__.py does

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from bench.classifier_bench import NUM_CLASSES, synthetic_batch  # noqa: E402
from bench.conv_peak import conv_gflops  # noqa: E402
from mcis_core.classifier.loss import MCISObjective  # noqa: E402
from mcis_core.classifier.params import ClassifierParams  # noqa: E402
from mcis_core.classifier.train import build_model  # noqa: E402
from mcis_core.common.kernels import PORTABLE  # noqa: E402
from mcis_core.common.params import load_section  # noqa: E402
from mcis_core.segmentation.network import build_segmentation_model  # noqa: E402
from mcis_core.segmentation.params import SegmentationParams  # noqa: E402
from mcis_core.segmentation.train import model_config, segmentation_loss  # noqa: E402


def native_conv_gflops(threads: int) -> float:
    """conv_gflops in a child process free of the portable kernels' instruction-set caps,
    on the same number of threads."""
    env = {k: v for k, v in os.environ.items() if k not in PORTABLE}
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    out = subprocess.run(
        [sys.executable, "-m", "bench.conv_peak"], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def measure(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """(seconds per step, GFLOP per step) of `step`, after one warm-up call."""
    step()
    with FlopCounterMode(display=False) as counter:
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps, counter.get_total_flops() / 1e9


def classifier_steps() -> dict[str, Callable[[], None]]:
    """The warm-up and MCIS pair steps of the default classifier, on synthetic batches."""
    cfg = load_section("classifier", ClassifierParams)
    net = build_model(cfg, NUM_CLASSES, seed=0)
    objective = MCISObjective(net, cfg.coattention, cfg.contrastive).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
    pair = synthetic_batch(cfg.batch_size, cfg.input_size, cfg.views)
    single = synthetic_batch(2 * cfg.batch_size, cfg.input_size, ())  # warm-up: 2x the rows

    def run(terms: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()

    return {
        "classifier_warmup": lambda: run(
            objective(single["anchor"], None, [], single["y_a"], None)
        ),
        "classifier_pair": lambda: run(
            objective(
                pair["anchor"], pair["partner"], pair["views"], pair["y_a"], pair["y_b"],
                comp_active=(True, True),
            )
        ),
    }  # fmt: skip


def segmentation_step() -> Callable[[], None]:
    """One step of the default segmentation network on a synthetic batch of crops."""
    cfg = load_section("segmentation", SegmentationParams)
    config = model_config(cfg, NUM_CLASSES)
    pretrained = "none" if cfg.pretrained == "classifier" else cfg.pretrained
    net = build_segmentation_model(config, pretrained, cfg.pretrained_path, None, seed=0).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    size = (cfg.batch_size // cfg.accumulation, 3, cfg.crop_size, cfg.crop_size)
    images = torch.randn(size, generator=generator)
    labels = torch.randint(0, NUM_CLASSES + 1, (size[0], *size[2:]), generator=generator)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        segmentation_loss(net(images), labels).backward()
        optimizer.step()

    return step


def main(steps: int) -> dict:
    threads = torch.get_num_threads()
    peak = conv_gflops()
    result: dict = {
        "cpu_kernels": cpu_kernels_setting(),
        "threads": threads,
        "peak_gflops": round(peak, 1),
        "peak_gflops_native": round(native_conv_gflops(threads), 1),
    }
    for name, step in {**classifier_steps(), "segmentation": segmentation_step()}.items():
        seconds, gflop = measure(step, steps)
        result[name] = {
            "ms_per_step": round(seconds * 1e3, 1),
            "gflop_per_step": round(gflop, 2),
            "gflops": round(gflop / seconds, 1),
            "of_peak": round(gflop / seconds / peak, 3),
            "of_native_peak": round(gflop / seconds / result["peak_gflops_native"], 3),
        }
    return result


if __name__ == "__main__":
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 8
    print(json.dumps(main(steps), indent=2))
