"""Stage `train_segmentation`: DeepLab-LargeFOV (`network`) trained on the pseudo labels or
the masks (`data`, `train`); method page: docs/method.md §6."""
