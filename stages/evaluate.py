"""Stage `evaluate`: multi-scale + dense CRF inference of the segmentation network, mIoU.

Reads params `evaluate`, <data_dir>/voc and <data_dir>/segmentation/model.pt. Runs in
evaluate.nproc processes (one per GPU), which share the images. Writes the CRF-refined
predictions of the `evaluate.split` list as VOC palette PNGs to
<data_dir>/predictions/<name>.png, metrics/evaluate.json (mIoU, pixel accuracy, mean class
accuracy, fwIoU, each without and with the CRF), per-class IoU in
metrics/evaluate_class_iou.csv, and in metrics/evaluate_plots/ the confusion matrix and
overlays of image, ground truth and prediction. The test split has no ground truth: its
evaluate.json only counts the images, and no plots are drawn.
"""

import pandas as pd
from PIL import Image

from mcis_core.common.cli import run_stage
from mcis_core.common.errors import DatasetError
from mcis_core.common.io import atomic_dir, atomic_file, write_json
from mcis_core.common.layout import VAL, read_classes, read_split
from mcis_core.common.params import BaseParams, load_section
from mcis_core.common.paths import METRICS_DIR, stage_paths
from mcis_core.evaluate.evaluation import Evaluation, confusion_image, evaluate_split
from mcis_core.evaluate.params import EvaluateParams
from mcis_core.scoring.segmentation import segmentation_scores
from mcis_core.segmentation.network import load_segmentation_model
from mcis_core.training.process import close_process, init_process, launch, shared_atomic_dir

SUMMARY = ("miou", "pixel_accuracy", "mean_class_accuracy", "fwiou")


def main() -> None:
    launch(load_section("evaluate", EvaluateParams).nproc, run_stage, evaluate)


def evaluate() -> None:
    base, cfg = load_section("base", BaseParams), load_section("evaluate", EvaluateParams)
    paths = stage_paths(base.data_dir)
    process = init_process()
    names, classes = read_split(paths.voc, cfg.split), read_classes(paths.voc)
    net, meta = load_segmentation_model(paths.segmentation_model, process.device)
    if tuple(meta["classes"]) != classes:
        raise DatasetError(f"{paths.segmentation_model}: trained on other classes than {paths.voc}")
    # the predictions are put in place once the metrics are written too
    with shared_atomic_dir(paths.predictions, process) as predictions:
        result = evaluate_split(net, paths.voc, names, predictions, cfg, cfg.split == VAL, process)
        if process.is_main:
            write_metrics(result, ("background", *classes), cfg.split, len(names))
    close_process()


def write_metrics(result: Evaluation, labels: tuple[str, ...], split: str, images: int) -> None:
    if result.confusion is None:  # no ground truth: no scores, no confusion matrix, no overlays
        write_json(METRICS_DIR / "evaluate.json", {"split": split, "images": images})
        with atomic_file(METRICS_DIR / "evaluate_class_iou.csv") as handle:
            pd.DataFrame({"class": labels}).to_csv(handle, index=False)
        with atomic_dir(METRICS_DIR / "evaluate_plots"):
            pass
        return
    plain = segmentation_scores(result.confusion)
    crf = segmentation_scores(result.confusion_crf)
    summary = {k: round(plain[k], 5) for k in SUMMARY}
    summary.update({f"{k}_crf": round(crf[k], 5) for k in SUMMARY})
    write_json(METRICS_DIR / "evaluate.json", summary)
    per_class = pd.DataFrame(
        {"class": labels, "iou": plain["class_iou"], "iou_crf": crf["class_iou"]}
    )
    with atomic_file(METRICS_DIR / "evaluate_class_iou.csv") as handle:
        per_class.round(5).to_csv(handle, index=False)
    with atomic_dir(METRICS_DIR / "evaluate_plots") as tmp:
        confusion_image(result.confusion_crf).save(tmp / "confusion.png")
        for name, picture in result.overlays.items():
            Image.fromarray(picture).save(tmp / f"example_{name}.png")


if __name__ == "__main__":
    run_stage(main)
