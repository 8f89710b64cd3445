"""The default image's scientific stack: each package imports and works in a sandbox without
network (sandboxes have none by default), so the image holds them and nothing is fetched."""

from __future__ import annotations

from test_cli import jupyter_sandbox

from jupyter_sandbox.backends.docker_images import DEFAULT_PACKAGES

from servers import IMAGE

STACK = ("scipy", "scikit-learn", "seaborn", "requests", "pyarrow")


def test_the_default_packages_hold_the_scientific_stack():
    assert set(STACK) <= set(DEFAULT_PACKAGES)


def test_the_image_runs_the_stack_offline(docker_ready, tmp_path):
    script = tmp_path / "stack.py"
    script.write_text(
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('pypi.org', 443)\n"
        "    print('network: yes')\n"
        "except OSError:\n"
        "    print('network: none')\n"
        "import numpy as np, pandas as pd, pyarrow as pa, requests, scipy.stats, seaborn, sklearn\n"
        "from sklearn.linear_model import LinearRegression\n"
        "x = np.arange(10.0).reshape(-1, 1)\n"
        "print('sklearn', round(float(LinearRegression().fit(x, 2 * x.ravel() + 1).coef_[0]), 6))\n"
        "print('scipy', round(float(scipy.stats.norm.cdf(0)), 3))\n"
        "print('pyarrow', pa.Table.from_pandas(pd.DataFrame({'a': [1, 2]})).num_rows)\n"
        "print('seaborn', type(seaborn.load_dataset).__name__, 'requests', requests.__name__)\n"
    )
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-servers"), "JUPYTER_SANDBOX_TEST_IMAGE": IMAGE}
    answer = jupyter_sandbox("exec", str(script), env=env)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines() == [
        "network: none",
        "sklearn 2.0",
        "scipy 0.5",
        "pyarrow 2",
        "seaborn function requests requests",
    ], answer.stdout
