"""Plot in a sandbox, show the PNG here. Needs jupyter-sandbox (`pip install -e .`) and, on this side too,
matplotlib (to show the image): pip install -r examples/requirements.txt"""

import base64
import io

try:
    from matplotlib import image as mpimg
    from matplotlib import pyplot as plt
except ImportError:
    raise SystemExit(
        "charts.py shows the chart with matplotlib here: pip install -r examples/requirements.txt"
    ) from None

from jupyter_sandbox import Sandbox

code = """
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 20, 100)
y = np.sin(x)

plt.plot(x, y)
plt.show()
"""

with Sandbox() as sandbox:
    # you can install dependencies in "jupyter notebook style" (the sandbox image has
    # matplotlib already; a sandbox has no network unless created with network=True)
    sandbox.run_code("!pip install matplotlib")

    # plot random graph
    execution = sandbox.run_code(code)

# there's your image
image = execution.results[0].png

# example how to show the image / prove it works
i = base64.b64decode(image)
i = io.BytesIO(i)
i = mpimg.imread(i, format="PNG")

plt.imshow(i, interpolation="nearest")
plt.show()
