"""Ctrl-C during a run raises KeyboardInterrupt, leaves no torn chunk, and resumes."""

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np, scipy.ndimage as ndi, zarr, tessera

    root = sys.argv[1]
    a = np.random.default_rng(3).random((2048, 2048), dtype=np.float32)
    src = zarr.create_array(store=root + "/in.zarr", shape=a.shape, chunks=(128, 128), dtype="float32")
    src[:] = a
    out = root + "/out.zarr"
    script = f'x.map(gaussian(3.0)).write("{out}")'

    def interrupt_after_first_chunks():
        # Wait for written chunks, not for a time: the run is certainly under way then.
        while True:
            found = [f for _, _, fs in os.walk(root + "/out.zarr") for f in fs if f != "zarr.json"]
            if len(found) >= 2:
                break
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_after_first_chunks, daemon=True).start()
    try:
        tessera.run(script, workers=2, x=root + "/in.zarr")
        print("finished")
    except KeyboardInterrupt:
        print("interrupted")
    want = ndi.gaussian_filter(a, 3.0)
    # Every chunk on disk is whole: it reads back as the filter's result, or is missing.
    part = zarr.open_array(out)[:]
    done = 0
    for i in range(0, 2048, 128):
        for j in range(0, 2048, 128):
            block = part[i:i + 128, j:j + 128]
            if np.all(block == 0):
                continue
            np.testing.assert_allclose(block, want[i:i + 128, j:j + 128], rtol=1e-4, atol=1e-4)
            done += 1
    rep = tessera.run(script, resume=True, x=root + "/in.zarr")
    np.testing.assert_allclose(zarr.open_array(out)[:], want, rtol=1e-4, atol=1e-4)
    print(done, rep.skipped, rep.tasks)
    """
)


def test_keyboard_interrupt_cancels_cleanly(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[0] == "interrupted", res.stdout
    done, skipped, tasks = (int(v) for v in lines[1].split())
    assert skipped > 0 and done >= skipped and tasks > 0
    assert skipped + tasks == 256
