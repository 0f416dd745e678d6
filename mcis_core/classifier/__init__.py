"""Stage `train_classifier`: the MCIS co-attention classifier (`network`), its paired training
data (`data`), objective (`loss`), training (`train`) and validation metrics (`metrics`);
method page: docs/method.md §3."""
