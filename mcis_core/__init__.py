"""mcis_core: the library behind the MCIS pipeline, one subpackage per stage of dvc.yaml.

Stage packages: dataset (download), saliency, classifier (train_classifier), locmaps,
pseudo_gt, segmentation (train_segmentation), evaluate. Shared packages: common (params,
errors, io, dataset layout, device), remote (downloads and archives), models (the VGG16-D1
backbone, ImageNet weights, exported models, network inputs), training (processes,
checkpoints, the epoch loop), scoring (segmentation confusion matrices and scores).
"""
