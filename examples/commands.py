"""Commands and the filesystem with a watch, as E2B's `e2b` SDK has them (changed in the import
line). Needs only jupyter-sandbox (`pip install -e .` from this checkout)."""

import time

from jupyter_sandbox import Sandbox

with Sandbox.create() as sandbox:
    sandbox.files.write("/home/user/notes/hello.txt", "hello world")
    print(sandbox.commands.run("cat /home/user/notes/hello.txt").stdout)  # hello world

    events = []
    watch = sandbox.files.watch_dir("/home/user/notes", on_event=events.append)
    sandbox.commands.run("echo hi > /home/user/notes/new.txt")
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:  # a watch polls a few times a second
        time.sleep(0.1)
    watch.stop()
    print(events[0].type.value, events[0].name)  # create new.txt

    print([entry.name for entry in sandbox.files.list("/home/user/notes")])  # ['hello.txt', 'new.txt']
