"""What the networks of the pipeline share: the VGG16-D1 backbone (`vgg`), ImageNet weights
(`pretrained`), exported models and their one loader (`export`), network inputs (`inputs`).
The networks themselves live with their stages: `classifier.network`, `segmentation.network`."""
