"""A NumPy array passed in is read in place: peak memory does not grow by its size."""

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import resource, numpy as np, tessera
    a = np.full((512, 1024, 256), 1.0, dtype=np.float32)   # 512 MiB, every page touched
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = tessera.eval("x.sum()", x=a)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(a.nbytes, after - before, float(total))
    """
)


def test_large_input_is_not_copied():
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
    ).stdout.split()
    size, grew, total = int(out[0]), int(out[1]), float(out[2])
    assert total == 512 * 1024 * 256
    # A copy would add the whole 512 MiB; reading chunk windows adds a few chunks.
    assert grew < size // 4, f"peak RSS grew by {grew} bytes for a {size}-byte input"
