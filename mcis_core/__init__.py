"""mcis_core: the compute behind the MCIS weakly supervised segmentation pipeline."""
