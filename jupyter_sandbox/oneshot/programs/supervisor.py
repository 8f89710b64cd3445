"""The one-shot supervisor: the only command of a one-shot container (stdlib only, Python 3.8+).

The server does not import it: it runs this file's source with ``python -I -c`` in the
container and sends, on stdin, one JSON header line (sizes, steps, limits), then the tar of
the user's files, then the user's stdin. The supervisor extracts the files into the working
directory, runs the steps (pre-commands, pip install, the program) one after another under one
deadline, keeps the first ``cap`` bytes of stdout and stderr (draining the rest, so a writer
never blocks), and writes one JSON report line to its own stdout: the last thing it writes
there, so the server takes the run as over when that line ends (it need not wait for the
container to stop).

It may be started long before its job arrives (a pool of waiting containers): everything
that does not depend on the job is done before it reads stdin.
"""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time

STDIN_PATH = "/tmp/.jsbx-stdin"
# How many processes the kernel killed at the container's memory limit (cgroup v1, then v2).
# Absent under gVisor: the report then says null and the server asks the engine.
OOM_FILES = ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events")


def read_job():
    """The header (a dict) and the bytes that follow it: the archive, then the user's stdin."""
    buf = bytearray()
    while b"\n" not in buf:
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit("jupyter-sandbox supervisor: no job on stdin")
        buf += chunk
    end = buf.index(b"\n")
    job = json.loads(bytes(buf[:end]))
    payload = bytearray(buf[end + 1 :])
    need = job["tar_size"] + job["stdin_size"]
    while len(payload) < need:
        chunk = os.read(0, max(65536, need - len(payload)))
        if not chunk:
            break
        payload += chunk
    return job, payload


def drain(stream, slot, cap):
    """Keep the first ``cap`` bytes; count (and drop) the rest so the writer never blocks."""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        kept = slot[0]
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
        slot[1] += len(chunk)


def oom_kills():
    """Processes killed in this container at its memory limit so far, or None when unknown."""
    for path in OOM_FILES:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
    return None


def run_steps(job, out):
    """Run the steps in order until one fails or the deadline passes: (exit code, timed out)."""
    deadline = time.monotonic() + job["timeout"]
    exit_code, timed_out = 0, False
    for step in job["steps"]:
        env = dict(os.environ, **job.get("env", {}), **step.get("env", {}))
        stdin = open(STDIN_PATH, "rb") if step.get("stdin") else subprocess.DEVNULL  # noqa: SIM115 (the step's, for its life)
        try:
            proc = subprocess.Popen(
                step["argv"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            out["stderr"][0] += ("cannot run {!r}: {}\n".format(step["argv"][0], e)).encode()
            return 127, False
        readers = [
            threading.Thread(target=drain, args=(proc.stdout, out["stdout"], job["cap"]), daemon=True),
            threading.Thread(target=drain, args=(proc.stderr, out["stderr"], job["cap"]), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            timed_out = True
        try:  # the whole process group: nothing the step started outlives it
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        for reader in readers:
            reader.join(5)
        code = proc.returncode
        exit_code = 128 - code if code < 0 else code
        if timed_out or exit_code != 0:
            break
    return exit_code, timed_out


def main():
    job, payload = read_job()
    os.chdir(job["workdir"])
    with tarfile.open(fileobj=io.BytesIO(bytes(payload[: job["tar_size"]]))) as tf:
        # The server already refused unsafe members; the data filter (3.12+) is a second check.
        tf.extractall(job["workdir"], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    with open(STDIN_PATH, "wb") as f:
        f.write(payload[job["tar_size"] :])
    del payload
    for path, text in job["files"].items():
        with open(path, "w") as f:
            f.write(text)
    out = {"stdout": [bytearray(), 0], "stderr": [bytearray(), 0]}
    exit_code, timed_out = run_steps(job, out)
    result = None
    try:
        with open(job["result_path"], "rb") as f:
            result = f.read(job["cap"] + 1).decode("utf-8", "replace")
    except OSError:
        pass
    report = {"exit_code": exit_code, "timed_out": timed_out, "result": result, "oom_kills": oom_kills()}
    for name, (kept, total) in out.items():
        report[name] = kept.decode("utf-8", "replace")
        report[name + "_size"] = total
    os.write(1, (json.dumps(report) + "\n").encode())


if __name__ == "__main__":
    main()
