"""Stage `download`: PASCAL VOC 2012 with augmented masks, or the embedded offline dataset,
laid out as `mcis_core.common.layout` describes (method page: docs/method.md §1)."""
