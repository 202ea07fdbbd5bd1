# strata: the build's live output (shipped in the ansible toolbox as
# ansible/module_utils/strata_live.py). /.strata/tmp/live is a FIFO strata's callback copies
# to its own stdout. Modules' run_command (`command`, `shell`) writes each chunk of output it reads
# here; the local connection does the same for what `raw` and `script` run (see `streamed`),
# and for nothing else it runs (module payloads answer JSON, which stays out of the output).
import fcntl
import os
import threading

from ansible.module_utils.compat import selectors

LIVE = '/.strata/tmp/live'
_sink = []


def live(chunk):
    """Copies command output to the build's output as it comes."""
    if not _sink:
        try:
            # Non-blocking: a FIFO without its reader (no callback) fails instead of waiting.
            fd = os.open(LIVE, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            _sink.append(fd)
        except OSError:
            _sink.append(None)
    if _sink[0] is not None:
        try:
            os.write(_sink[0], chunk)
        except OSError:
            pass


class streamed(object):
    """Within it, the local connection `connection` copies the output of the commands it runs
    to the live output (as `communicate` does)."""

    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.connection._strata_live = True

    def __exit__(self, *exc):
        self.connection._strata_live = False


def communicate(connection, p, in_data):
    """`p.communicate(in_data)`, copying p's stdout and stderr to the live output as they come
    when `connection` is `streamed`."""
    if not getattr(connection, '_strata_live', False):
        return p.communicate(in_data)
    if p.stdin is not None:
        def feed():
            try:
                if in_data:
                    p.stdin.write(in_data)
            except OSError:
                pass
            finally:
                p.stdin.close()
        threading.Thread(target=feed, daemon=True).start()
    out = {p.stdout.fileno(): [], p.stderr.fileno(): []}
    selector = selectors.DefaultSelector()
    for fd in out:
        selector.register(fd, selectors.EVENT_READ)
    try:
        while selector.get_map():
            for key, _ in selector.select():
                chunk = os.read(key.fd, 65536)
                if chunk:
                    out[key.fd].append(chunk)
                    live(chunk)
                else:
                    selector.unregister(key.fd)
    finally:
        selector.close()
    p.wait()
    return b''.join(out[p.stdout.fileno()]), b''.join(out[p.stderr.fileno()])
