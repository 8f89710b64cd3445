"""Output arrives as it happens (callbacks). Needs only jupyter-sandbox (`pip install -e .` from this checkout)."""

from jupyter_sandbox import Sandbox

code = """
import time
import pandas as pd

print("hello")
time.sleep(3)
data = pd.DataFrame(data=[[1, 2], [3, 4]], columns=["A", "B"])
display(data.head(10))
time.sleep(3)
print("world")
"""

with Sandbox() as sandbox:
    sandbox.run_code(code, on_stdout=print, on_stderr=print, on_result=(lambda result: print(result.text)))
