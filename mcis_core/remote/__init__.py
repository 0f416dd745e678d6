"""Files from the web or a local path: md5-verified, resumable downloads into a cache folder
(`download`) and safe archive extraction (`archives`); used by `dataset` and `saliency`."""
