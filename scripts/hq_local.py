"""A HyperQueue server with one local worker on loopback, kept running for Tessera's
distributed tests and benchmark (started and stopped by scripts/hq-local.sh).

    python scripts/hq_local.py SERVER_DIR CORES

Writes SERVER_DIR/tessera-ready once the server and worker are up; stops both on SIGTERM.
"""

import os
import signal
import sys
import time

from hyperqueue.cluster import LocalCluster, WorkerConfig

server_dir, cores = sys.argv[1], int(sys.argv[2])
os.makedirs(server_dir, exist_ok=True)
cluster = LocalCluster(server_dir=server_dir)
cluster.start_worker(WorkerConfig(cores=cores))
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
ready = os.path.join(server_dir, "tessera-ready")
with open(ready + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.replace(ready + ".tmp", ready)
while not stopping:
    time.sleep(0.2)
os.remove(ready)
cluster.stop()
