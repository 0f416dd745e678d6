"""Stage `pseudo_gt`: pseudo labels from saliency and localization maps, by the rules of the
original code (`rules`), for every training image (`labels`), and their quality (`metrics`);
method page: docs/method.md §5."""
