"""Runs INSIDE a sandbox: prints the kernels its image has for languages other than Python, as
JSON ``{language: {"argv": [...], "env": {...}}}`` (argv with ``{connection_file}``), read from the kernelspecs in
``$JUPYTER_PATH`` and the usual share/jupyter folders (the first found of a language wins).
Standard library only."""

import glob
import json
import os
import sys


def main():
    folders = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    folders += [os.path.join(sys.prefix, "share", "jupyter"), "/usr/local/share/jupyter", "/usr/share/jupyter"]
    found = {}
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "kernels", "*", "kernel.json"))):
            try:
                with open(path, encoding="utf-8") as f:
                    spec = json.load(f)
                language = str(spec.get("language", "")).lower()
                argv = [str(a) for a in spec["argv"]]
                env = {str(k): str(v) for k, v in (spec.get("env") or {}).items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # a broken kernelspec is not a language
            if language and language != "python" and argv:
                found.setdefault(language, {"argv": argv, "env": env})
    print(json.dumps(found))


main()
