"""NYU Depth v2 data: download, synthetic twin, reader, preprocessing, validation."""
