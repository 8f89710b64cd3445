"""The default image's scientific stack: each package imports and works in a sandbox without
network (sandboxes have none by default), so the image holds them and nothing is fetched."""

from __future__ import annotations

from jupyter_sandbox.backends.docker_images import DEFAULT_PACKAGES

from servers import IMAGE, JupyterServer

STACK = ("scipy", "scikit-learn", "seaborn", "requests", "pyarrow")


def test_the_default_packages_hold_the_scientific_stack():
    assert set(STACK) <= set(DEFAULT_PACKAGES)


def test_the_image_runs_the_stack_offline(docker_ready, tmp_path):
    code = (
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
    config = {"DockerBackend": {"default_image": IMAGE}}
    with JupyterServer(tmp_path, config=config) as server:
        made = server.api("POST", "sandboxes", json={"name": "stack"})
        assert made.status_code == 201 and made.json()["spec"]["network"] is False, made.text
        events = server.execute("stack", code, timeout=300)
    assert not [e for e in events if e["type"] == "error"], events
    assert "".join(e["text"] for e in events if e["type"] == "stdout").splitlines() == [
        "network: none",
        "sklearn 2.0",
        "scipy 0.5",
        "pyarrow 2",
        "seaborn function requests requests",
    ], events
