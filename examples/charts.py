import base64
import io

from matplotlib import image as mpimg
from matplotlib import pyplot as plt

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
    # you can install dependencies in "jupyter notebook style"
    sandbox.run_code("!pip install matplotlib")

    # plot random graph
    execution = sandbox.run_code(code)

# there's your image
image = execution.results[0].png

# example how to show the image / prove it works
i = base64.b64decode(image)
i = io.BytesIO(i)
i = mpimg.imread(i, format='PNG')

plt.imshow(i, interpolation='nearest')
plt.show()
