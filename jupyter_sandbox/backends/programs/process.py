"""Runs INSIDE a sandbox, from a root exec: starts one command of the process service.

Started as ``python -I -c <this source> uid gid cwd env-json rows cols command...``. It becomes the
sandbox's user first, unless it is that user already (on Kubernetes) (no supplementary groups, then the gid and uid, with which every capability
goes), then leads a session of its own (so a signal reaches everything the command starts, by its
process group), enters ``cwd``, sizes its terminal when it has one (``rows``/``cols`` > 0), writes its
pid as the first line of stdout (the server's own protocol: the pid inside the sandbox, which the
server signals) and becomes the command, with ``env-json`` added to its environment. Exit codes
before the pid line: 72 no such working directory. After it: 127 no such command, 126 not runnable.

Standard library only, Python 3.8+.
"""

import fcntl
import json
import os
import struct
import sys
import termios

NO_CWD, NOT_RUNNABLE, NO_COMMAND = 72, 126, 127

uid, gid, cwd, env, rows, cols = sys.argv[1:7]
command = sys.argv[7:]
if os.getresuid() != (int(uid),) * 3 or int(uid) == 0:
    # (a Kubernetes pod's exec is that user already and could not change it: it stays as it is)
    os.setgroups([])
    os.setresgid(int(gid), int(gid), int(gid))
    os.setresuid(int(uid), int(uid), int(uid))
try:
    os.setsid()
except OSError:
    pass  # a terminal's exec leads its session already
try:
    os.chdir(cwd)
except OSError as e:
    sys.stderr.write(f"cannot enter the working directory {cwd}: {e.strerror}\n")
    sys.exit(NO_CWD)
if int(rows) > 0 and os.isatty(0):
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", int(rows), int(cols), 0, 0))
os.environ.update(json.loads(env))
os.write(1, b"%d\n" % os.getpid())
try:
    os.execvp(command[0], command)
except FileNotFoundError:
    sys.stderr.write(f"{command[0]}: command not found\n")
    sys.exit(NO_COMMAND)
except OSError as e:
    sys.stderr.write(f"{command[0]}: {e.strerror}\n")
    sys.exit(NOT_RUNNABLE)
