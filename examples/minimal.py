"""State kept between run_code calls. Needs only jupyter-sandbox (`pip install -e .` from this checkout)."""

from jupyter_sandbox import Sandbox

with Sandbox() as sandbox:
    sandbox.run_code("x = 1")

    execution = sandbox.run_code("x+=1; x")
    print(execution.text)  # outputs 2
