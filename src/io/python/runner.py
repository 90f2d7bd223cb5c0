# Tessera's Python block worker. Started by tessera (never by hand) as
#   python -c <this file> IN OUT
# Commands arrive as JSON lines on stdin and replies leave as JSON lines on the original
# stdout; the user's own prints go to stderr. Blocks travel through the files IN and OUT
# (in /dev/shm), both mapped here, so no block is ever pickled or sent through a pipe.
import json
import mmap
import os
import signal
import sys
import traceback

# Ctrl-C reaches the whole process group: tessera finishes the calls in flight itself.
signal.signal(signal.SIGINT, signal.SIG_IGN)

_proto_out = os.fdopen(os.dup(1), "w", buffering=1)
_proto_in = os.fdopen(os.dup(0), "r")
os.dup2(2, 1)
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
sys.stdout = sys.stderr


def reply(**kw):
    _proto_out.write(json.dumps(kw) + "\n")
    _proto_out.flush()


try:
    import numpy as np
except Exception as e:  # noqa: BLE001 - any failure to import numpy is the same error
    reply(ready=False, error="%s: %s" % (type(e).__name__, e))
    sys.exit(0)

# Open both shared files before saying ready: tessera then removes their names, so nothing
# is left in /dev/shm however either process ends (the memory goes with the last fd).
IN_PATH, OUT_PATH = sys.argv[1], sys.argv[2]
_in_fd = os.open(IN_PATH, os.O_RDWR)
_out_fd = os.open(OUT_PATH, os.O_RDWR)

reply(ready=True, numpy=np.__version__, python="%d.%d.%d" % sys.version_info[:3])
_maps = {"in": (None, 0), "out": (None, 0)}
_funcs = {}
_modules = {}


def mapped(which, fd, nbytes, grow):
    m, size = _maps[which]
    if m is not None and size >= nbytes:
        return m
    if grow:
        have = os.fstat(fd).st_size
        if have < nbytes:
            os.ftruncate(fd, nbytes)
    size = os.fstat(fd).st_size
    # An old map may still be referenced by a block the user kept: let it go, never close.
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    _maps[which] = (m, size)
    return m


def user_traceback(e):
    tb = e.__traceback__
    # Drop this file's own frames so the traceback starts in the user's code.
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb))


def load_module(file, module, stamp):
    # A file edited since this worker imported it (a REPL or notebook session) has a new
    # stamp and is imported again.
    key = (file or module, stamp)
    if key in _modules:
        return _modules[key]
    if file:
        import importlib.util

        d = os.path.dirname(file)
        if d not in sys.path:
            sys.path.insert(0, d)
        spec = importlib.util.spec_from_file_location(module, file)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
    else:
        import importlib

        mod = importlib.import_module(module)
    _modules[key] = mod
    return mod


def load(cmd):
    try:
        mod = load_module(cmd.get("file"), cmd["module"], cmd.get("stamp", ""))
    except ModuleNotFoundError as e:
        if not cmd.get("file") and e.name and cmd["module"].startswith(e.name):
            return reply(ok=False, kind="module_missing", message=str(e))
        return reply(ok=False, kind="module_error", message=user_traceback(e))
    except BaseException as e:  # noqa: BLE001 - a module's failure is reported, never fatal
        return reply(ok=False, kind="module_error", message=user_traceback(e))
    f = getattr(mod, cmd["func"], None)
    if f is None:
        names = sorted(n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n)))
        return reply(ok=False, kind="function_missing", message=", ".join(names))
    if not callable(f):
        return reply(ok=False, kind="not_callable", message=type(f).__name__)
    kwargs = cmd["kwargs"]
    try:
        import inspect

        sig = inspect.signature(f)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(None, **kwargs)
        except TypeError as e:
            return reply(ok=False, kind="arity", message="%s%s: %s" % (cmd["func"], sig, e))
    _funcs[cmd["key"]] = (f, kwargs)
    reply(ok=True)


def call(cmd):
    f, kwargs = _funcs[cmd["key"]]
    dtype = np.dtype(cmd["dtype"])
    shape = tuple(cmd["shape"])
    nbytes = cmd["nbytes"]
    if nbytes:
        m = mapped("in", _in_fd, nbytes, False)
        block = np.frombuffer(m, dtype=dtype, count=nbytes // dtype.itemsize).reshape(shape)
    else:
        block = np.zeros(shape, dtype=dtype)
    start = block.__array_interface__["data"][0]
    try:
        out = f(block, **kwargs)
    except BaseException as e:  # noqa: BLE001 - the user's exception goes back to tessera
        return reply(ok=False, kind="exception", message=user_traceback(e))
    finally:
        del block
    if not isinstance(out, np.ndarray):
        return reply(ok=False, kind="not_array", message=type(out).__name__)
    if (
        nbytes
        and out.__array_interface__["data"][0] == start
        and out.shape == shape
        and out.dtype == dtype
        and out.flags.c_contiguous
    ):
        # The function returned the block it was given (perhaps changed in place): the
        # result is already in shared memory, where tessera reads it back.
        return reply(ok=True, same=True, dtype=dtype.name, shape=list(shape), nbytes=nbytes)
    if not out.dtype.isnative:
        out = out.astype(out.dtype.newbyteorder("="))
    name = out.dtype.name
    n = out.nbytes
    if n:
        m = mapped("out", _out_fd, n, True)
        view = np.frombuffer(m, dtype=out.dtype, count=out.size).reshape(out.shape)
        np.copyto(view, out, casting="no")
        del view
    reply(ok=True, dtype=name, shape=list(out.shape), nbytes=n)


for line in _proto_in:
    cmd = json.loads(line)
    op = cmd["cmd"]
    if op == "load":
        load(cmd)
    elif op == "call":
        call(cmd)
    elif op == "quit":
        break
