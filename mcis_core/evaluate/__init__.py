"""Stage `evaluate`: multi-scale, sliding-window, flipped inference (`inference`), the dense CRF
(`crf`), predictions and scores on a split (`evaluation`); method page: docs/method.md §7."""
