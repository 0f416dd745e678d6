"""Stage `saliency`: one saliency map per training image, computed with MB+ (`mbplus`),
fetched as an archive or copied from a folder of precomputed maps, or taken from the
ground-truth masks for analysis (`maps`), and its quality (`metrics`); method page:
docs/method.md §2."""
