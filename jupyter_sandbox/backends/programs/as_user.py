"""Runs INSIDE a sandbox, from a root exec: runs a command as the sandbox's user (argv: uid gid command...).

Started as ``python -I -c <this source> uid gid command...``. It drops every supplementary group,
then takes the gid and uid: with the uid change go all capabilities, and ``execvp`` drops any it
had left (under gVisor an exec's first process would keep the container's capabilities, so the
server never runs a file command as root). Standard library only, Python 3.8+.
"""

import os
import sys

uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([])
os.setresgid(gid, gid, gid)
os.setresuid(uid, uid, uid)
os.execvp(sys.argv[3], sys.argv[3:])
