"""Block functions for bench/python_blocks.sh: the same functions run by Tessera's
python(...) and by dask's map_blocks."""

import numpy as np


def identity(block):
    """The block itself: what Tessera pays to hand a block to Python and back."""
    return block


def median(block):
    """scipy's median filter over each plane of the block (CPU-heavy, in C)."""
    from scipy import ndimage  # here, so the identity's workers do not pay for scipy

    return ndimage.median_filter(block, size=(1, 5, 5), mode="reflect")


def loops(block):
    """A pure-Python loop over every row (holds the GIL the whole time)."""
    out = np.empty_like(block)
    for z in range(block.shape[0]):
        for y in range(block.shape[1]):
            row = block[z, y].tolist()
            acc = 0
            vals = []
            for v in row:
                acc = (acc * 31 + v) & 0xFFFF
                vals.append(acc)
            out[z, y] = vals
    return out
