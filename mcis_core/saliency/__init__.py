"""Stage `saliency`: one saliency map per training image, computed with MB+ (`mbplus`) or
fetched as an archive of precomputed maps (`maps`), and its quality (`metrics`); method
page: docs/method.md §2."""
