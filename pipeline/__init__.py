"""FCRN monocular depth estimation: data, model, training and tracking as an importable library."""
