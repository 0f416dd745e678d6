"""Segmentation confusion matrices and the scores computed from them, shared by every stage
that scores label maps against ground truth."""
