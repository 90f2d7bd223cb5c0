# Tessera's bridge to HyperQueue's Python API (the `hyperqueue` package); the Rust
# executor runs it as `python -c <this file> COMMAND SERVER_DIR [...]`.
#   ping SERVER_DIR            prints the HyperQueue version once the server answers
#   submit SERVER_DIR          reads the job as JSON on stdin, prints the job id
#   wait SERVER_DIR JOB        blocks until the job ends; prints "ok" or "failed"
# Errors go to stderr with exit status 1 (the import) or 2 (the server, the submission).
import json
import sys

try:
    from hyperqueue import Client, Job
    from hyperqueue.ffi import get_version
except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
    print(f"the hyperqueue package cannot be imported: {e}", file=sys.stderr)
    sys.exit(1)


def brief(e):
    """An error's message without the backtrace HyperQueue may append."""
    return str(e).split("Stack backtrace:")[0].strip().replace("\n\nCaused by:\n", ": ").replace("\n", " ")


def client(server_dir):
    try:
        return Client(server_dir or None)
    except Exception as e:  # noqa: BLE001
        where = server_dir or "HyperQueue's default server directory"
        print(f"no HyperQueue server answers at {where}: {brief(e)}", file=sys.stderr)
        sys.exit(2)


def main():
    cmd, server_dir = sys.argv[1], sys.argv[2]
    if cmd == "ping":
        client(server_dir)
        print(get_version())
    elif cmd == "submit":
        spec = json.load(sys.stdin)
        c = client(server_dir)
        job = Job(name=spec["name"], max_fails=None, default_env=spec["env"])
        made = []
        for t in spec["tasks"]:
            deps = [made[d] for d in t["deps"]]
            made.append(
                job.program(
                    t["args"],
                    cwd=spec["cwd"],
                    stdout=None,
                    stderr=None,
                    deps=deps,
                    name=t["name"],
                )
            )
        try:
            submitted = c.submit(job)
        except Exception as e:  # noqa: BLE001
            print(f"HyperQueue refused the job: {brief(e)}", file=sys.stderr)
            sys.exit(2)
        print(submitted.id)
    elif cmd == "wait":
        c = client(server_dir)
        try:
            failed = c.connection.wait_for_jobs([int(sys.argv[3])], lambda _: None)
        except Exception as e:  # noqa: BLE001
            print(f"cannot wait for job {sys.argv[3]}: {brief(e)}", file=sys.stderr)
            sys.exit(2)
        print("failed" if failed else "ok")
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        sys.exit(2)


main()
