"""Stage `locmaps`: co-attention localization maps of every training image (`maps`) and their
quality as segmentations (`metrics`); method page: docs/method.md §4."""
