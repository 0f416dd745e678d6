"""Stage `evaluate`: multi-scale + dense CRF inference of the segmentation network, mIoU.

Reads params `evaluate`, <data_dir>/voc and <data_dir>/segmentation/model.pt.
Writes the CRF-refined predictions of the `evaluate.split` list as VOC palette PNGs
to <data_dir>/predictions/<name>.png, metrics/evaluate.json (mIoU, pixel accuracy,
mean class accuracy, fwIoU, each without and with the CRF), per-class IoU in
metrics/evaluate_class_iou.csv, and in metrics/evaluate_plots/ the confusion matrix
and overlays of image, ground truth and prediction. The test split has no ground
truth: its evaluate.json only counts the images, and no plots are drawn.
"""

from pathlib import Path

import pandas as pd
from PIL import Image

from mcis_core.cli import run_stage
from mcis_core.config import load_params
from mcis_core.deeplab import load_segmentation_model
from mcis_core.device import default_device
from mcis_core.evaluation import confusion_image, evaluate_split
from mcis_core.io import atomic_dir, atomic_file, read_names, write_json
from mcis_core.segmentation_metrics import segmentation_scores
from mcis_core.voc import CLASSES, LIST_DIR, DatasetError

SUMMARY = ("miou", "pixel_accuracy", "mean_class_accuracy", "fwiou")


def main() -> None:
    params = load_params()
    cfg, data_dir = params.evaluate, Path(params.base.data_dir)
    voc = data_dir / "voc"
    split_list = voc / LIST_DIR / f"{cfg.split}.txt"
    if not split_list.is_file():
        raise DatasetError(f"{split_list}: no such list (evaluate.split: {cfg.split})")
    net = load_segmentation_model(data_dir / "segmentation" / "model.pt", default_device())
    names = read_names(split_list)
    result = evaluate_split(net, voc, names, data_dir / "predictions", cfg, cfg.split == "val")
    if result.confusion is None:
        write_json("metrics/evaluate.json", {"split": cfg.split, "images": len(names)})
        with atomic_file("metrics/evaluate_class_iou.csv") as handle:
            pd.DataFrame({"class": ("background", *CLASSES)}).to_csv(handle, index=False)
        with atomic_dir("metrics/evaluate_plots"):
            pass  # no ground truth: no confusion matrix, no overlays
        return
    plain = segmentation_scores(result.confusion)
    crf = segmentation_scores(result.confusion_crf)
    summary = {k: round(plain[k], 5) for k in SUMMARY}
    summary.update({f"{k}_crf": round(crf[k], 5) for k in SUMMARY})
    write_json("metrics/evaluate.json", summary)
    per_class = pd.DataFrame(
        {"class": ("background", *CLASSES), "iou": plain["class_iou"], "iou_crf": crf["class_iou"]}
    )
    with atomic_file("metrics/evaluate_class_iou.csv") as handle:
        per_class.round(5).to_csv(handle, index=False)
    with atomic_dir("metrics/evaluate_plots") as tmp:
        confusion_image(result.confusion_crf).save(tmp / "confusion.png")
        for name, picture in result.overlays.items():
            Image.fromarray(picture).save(tmp / f"example_{name}.png")


if __name__ == "__main__":
    run_stage(main)
