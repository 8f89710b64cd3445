"""Issue 23 in a real browser: the panel's Volumes section makes a volume, shows its usage (used of
limit) after a sandbox writes there, and removes it (labextension/ui-tests/tests/volumes.spec.ts)."""

from __future__ import annotations

import pytest
from test_labextension_ui import ARTIFACTS, lab_server, need_chromium, playwright  # noqa: F401

from jupyter_sandbox.backends.volume_images import VolumeImages, volumes_problem

from test_labextension import node_modules  # noqa: F401  (a fixture)


@pytest.mark.timeout(600)
def test_volume_made_measured_and_removed_in_the_panel(lab_server, node_modules, tmp_path):  # noqa: F811
    if volumes_problem():
        pytest.skip(volumes_problem())
    need_chromium()
    try:
        stdout = playwright(lab_server, ["--grep", "@volumes"], {}, timeout=540)
    finally:  # the lab fixture's data dir holds the volumes (no loop device may stay attached)
        VolumeImages(str(tmp_path / "data" / "jupyter_sandbox" / "volumes")).detach_all(only_here=False)
    assert "1 passed" in stdout, stdout
    assert (ARTIFACTS / "labextension-80-volume-usage.png").stat().st_size > 10_000
