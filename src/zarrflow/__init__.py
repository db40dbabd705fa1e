"""zarrflow: parallel chunk I/O for Zarr arrays."""
