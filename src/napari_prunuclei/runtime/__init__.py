"""Floor 6: segment(): model pairs, the request, the whole and tiled engines, tiles, stitching, worker pools,
batches of files, dask."""
