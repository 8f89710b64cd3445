"""The code interpreter as E2B gives it, through the real, unmodified ``e2b_code_interpreter`` SDK
(no E2B_DEBUG: only E2B_API_URL, E2B_SANDBOX_URL and E2B_API_KEY): charts and DataFrame data,
results' text, env vars per execution, contexts with cwd and language.

Charts need ``e2b-charts`` in the sandbox image (the default image's packages list it): run with
JUPYTER_SANDBOX_TEST_IMAGE naming an image built with it.
"""

from __future__ import annotations

import pytest
from e2b.exceptions import SandboxException
from e2b_code_interpreter import Sandbox
from e2b_code_interpreter.charts import (
    BarChart,
    BoxAndWhiskerChart,
    ChartType,
    LineChart,
    PieChart,
    ScaleType,
    ScatterChart,
    SuperChart,
)

from jupyter_sandbox.backends import programs
from jupyter_sandbox.backends.base import kernel_extras
from jupyter_sandbox.models import Result
from jupyter_sandbox.server.e2b_code import e2b_text

from servers import JupyterServer, result_text

pytestmark = pytest.mark.usefixtures("docker_ready")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("e2b-code")) as server:
        yield server


@pytest.fixture(scope="module")
def e2b_key(server):
    r = server.api("POST", "keys", json={"name": "code-interpreter tests"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


@pytest.fixture
def e2b_env(server, e2b_key, monkeypatch):
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    monkeypatch.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
    monkeypatch.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
    monkeypatch.setenv("E2B_API_KEY", e2b_key)
    return server


@pytest.fixture(scope="module")
def sbx(server, e2b_key):
    """One sandbox for the tests that only run code in it (made with the module's key)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("E2B_DEBUG", raising=False)
        mp.setenv("E2B_API_URL", server.url + "sandbox/e2b/api")
        mp.setenv("E2B_SANDBOX_URL", server.url + "sandbox/e2b/plane")
        mp.setenv("E2B_API_KEY", e2b_key)
        sandbox = Sandbox.create(timeout=600)
        try:
            yield sandbox
        finally:
            sandbox.kill()


def only_chart(sbx: Sandbox, code: str):
    execution = sbx.run_code("import matplotlib.pyplot as plt\n" + code + "\nplt.show()")
    assert execution.error is None, execution.error
    charts = [r.chart for r in execution.results if r.chart is not None]
    assert len(charts) == 1, execution.results
    assert execution.results[0].png  # the image is still there beside the chart's data
    return charts[0]


# -- data and charts ------------------------------------------------------------------------


def test_dataframe_gives_its_columns_as_data(sbx):
    execution = sbx.run_code(
        "import pandas as pd, numpy as np\n"
        "pd.DataFrame({'a': [1, 2, 3], 'f': [0.5, np.nan, 2.0],"
        " 'when': pd.date_range('2024-01-01', periods=3), 'name': ['x', 'y', 'z']})"
    )
    assert execution.error is None
    result = execution.results[0]
    assert result.is_main_result and result.html  # the table as usual too
    assert result.data == {
        "a": [1, 2, 3],
        "f": [0.5, None, 2.0],
        "when": ["2024-01-01T00:00:00", "2024-01-02T00:00:00", "2024-01-03T00:00:00"],
        "name": ["x", "y", "z"],
    }
    assert "data" in result.formats()
    # what is not a DataFrame has no data, nor has a frame too big to carry whole
    assert sbx.run_code("[1, 2]").results[0].data is None
    big = sbx.run_code("pd.DataFrame({'n': range(100_001)})").results[0]
    assert big.data is None and big.html


def test_line_chart_with_datetime_scale(sbx):
    chart = only_chart(
        sbx,
        "import datetime\n"
        "days = [datetime.date(2024, 1, d) for d in (1, 2, 3)]\n"
        "plt.plot(days, [1, 4, 9], label='squares'); plt.title('Growth')\n"
        "plt.xlabel('day'); plt.ylabel('value (m)')",
    )
    assert isinstance(chart, LineChart) and chart.type == ChartType.LINE
    assert chart.title == "Growth" and chart.x_label == "day" and chart.y_label == "value (m)"
    assert chart.y_unit == "m"
    assert chart.x_scale == ScaleType.DATETIME and chart.y_scale == ScaleType.LINEAR
    [line] = chart.elements
    assert line.label == "squares"
    assert [y for _, y in line.points] == [1, 4, 9]
    assert line.points[0][0].startswith("2024-01-01")


def test_scatter_chart_with_log_scale(sbx):
    chart = only_chart(sbx, "plt.scatter([1, 10, 100], [2, 3, 4], label='s'); plt.xscale('log')")
    assert isinstance(chart, ScatterChart) and chart.type == ChartType.SCATTER
    assert chart.x_scale == ScaleType.LOG
    assert chart.elements[0].points == [(1, 2), (10, 3), (100, 4)]


def test_bar_chart_with_categorical_scale(sbx):
    chart = only_chart(sbx, "plt.bar(['apples', 'pears'], [3, 5]); plt.title('Fruit')")
    assert isinstance(chart, BarChart) and chart.type == ChartType.BAR
    assert chart.title == "Fruit"
    assert [(bar.label, bar.value) for bar in chart.elements] == [("apples", 3), ("pears", 5)]


def test_pie_chart(sbx):
    chart = only_chart(sbx, "plt.pie([1, 3], labels=['one', 'three'])")
    assert isinstance(chart, PieChart) and chart.type == ChartType.PIE
    assert [wedge.label for wedge in chart.elements] == ["one", "three"]
    assert [round(wedge.angle) for wedge in chart.elements] == [90, 270]


def test_box_and_whisker_chart(sbx):
    chart = only_chart(
        sbx, "plt.boxplot([[1, 2, 3, 4, 5], [2, 4, 6, 8, 10, 30]], tick_labels=['A', 'B'], patch_artist=True)"
    )
    assert isinstance(chart, BoxAndWhiskerChart) and chart.type == ChartType.BOX_AND_WHISKER
    assert [(box.label, box.min, box.median, box.max) for box in chart.elements] == [("A", 1, 3, 5), ("B", 2, 7, 10)]
    assert [box.outliers for box in chart.elements] == [[], [30]]


def test_supergraph_of_two_axes(sbx):
    chart = only_chart(
        sbx,
        "fig, (left, right) = plt.subplots(1, 2); fig.suptitle('Both')\n"
        "left.plot([1, 2], [3, 4]); right.bar(['a', 'b'], [1, 2])",
    )
    assert isinstance(chart, SuperChart) and chart.type == ChartType.SUPERCHART
    assert chart.title == "Both"
    assert [type(element) for element in chart.elements] == [LineChart, BarChart]


def test_a_figure_without_data_has_no_chart(sbx):
    execution = sbx.run_code("import matplotlib.pyplot as plt\nplt.figure(); plt.show()")
    assert execution.error is None
    assert all(r.chart is None for r in execution.results)


def test_a_pil_image_saved_to_a_file_is_shown(sbx):
    execution = sbx.run_code(
        "from PIL import Image\nImage.new('RGB', (4, 4), 'red').save('red.png')\nimport os; os.path.getsize('red.png') > 0"
    )
    assert execution.error is None
    assert execution.results[0].png and not execution.results[0].is_main_result
    assert execution.text == "True"


# -- text, env vars, contexts ---------------------------------------------------------------


def test_text_of_a_string_result_has_no_quotes_on_e2b_routes_only(sbx, server):
    assert sbx.run_code("'bar'").text == "bar"
    assert sbx.run_code('"it\'s"').text == "it's"
    assert sbx.run_code("1 + 1").text == "2"
    # the Jupyter API keeps the repr as the kernel gave it
    assert result_text(server.execute(sbx.sandbox_id, "'bar'")) == "'bar'"


def test_env_vars_per_execution_are_restored_after_it(e2b_env):
    sandbox = Sandbox.create(envs={"SANDBOX_WIDE": "sandbox"}, timeout=120)
    try:
        assert sandbox.run_code("import os; os.getenv('FOO')", envs={"FOO": "bar"}).text == "bar"
        assert sandbox.run_code("os.getenv('FOO', 'default')").text == "default"
        assert sandbox.run_code("os.getenv('SANDBOX_WIDE')", envs={"SANDBOX_WIDE": "run"}).text == "run"
        assert sandbox.run_code("os.getenv('SANDBOX_WIDE')").text == "sandbox"
        # restored even when the code fails
        failed = sandbox.run_code("raise ValueError(os.environ['FOO'])", envs={"FOO": "gone after"})
        assert failed.error is not None and failed.error.value == "gone after"
        assert sandbox.run_code("os.getenv('FOO', 'default')").text == "default"
    finally:
        sandbox.kill()


def test_contexts_with_cwd_and_language_listed_restarted_removed(sbx):
    assert sbx.run_code("import os; os.makedirs('/home/user/work', exist_ok=True)").error is None
    context = sbx.create_code_context(cwd="/home/user/work", language="python")
    assert (context.language, context.cwd) == ("python", "/home/user/work")
    listed = {c.id: c for c in sbx.list_code_contexts()}
    assert listed[context.id].cwd == "/home/user/work"
    assert "python" in {c.language for c in listed.values()}
    assert sbx.run_code("import os; os.getcwd()", context=context).text == "/home/user/work"
    sbx.run_code("x = 1", context=context)
    assert sbx.run_code("x", context=context).text == "1"
    assert sbx.run_code("'x' in globals()").text == "False"  # the default context is another kernel
    sbx.restart_code_context(context)
    after = sbx.run_code("x", context=context)
    assert after.error is not None and after.error.name == "NameError"
    sbx.remove_code_context(context.id)
    assert context.id not in {c.id for c in sbx.list_code_contexts()}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"language": "cobol"}, "language 'cobol' is not available"),
        ({"cwd": "/etc"}, "outside the sandbox's working directory"),
        ({"cwd": "/home/user/nowhere"}, "does not exist"),
    ],
)
def test_bad_context_options_are_a_clear_400(sbx, options, message):
    with pytest.raises(SandboxException, match="400") as raised:
        sbx.create_code_context(**options)
    assert message in str(raised.value)


def test_run_code_in_an_unknown_language_is_a_clear_400(sbx):
    with pytest.raises(SandboxException, match="400") as raised:
        sbx.run_code("puts 1", language="ruby")
    assert "language 'ruby' is not available" in str(raised.value)


# -- the models, without a sandbox -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, shown", [("'bar'", "bar"), ('"it\'s"', "it's"), ("'", "'"), ("''", ""), ("'a\"", "'a\""), ("1", "1")]
)
def test_e2b_text_drops_only_a_pair_of_enclosing_quotes(text, shown):
    assert e2b_text(text) == shown


def test_result_model_reads_e2b_formats():
    chart = {"type": "pie", "title": "t", "elements": []}
    result = Result.from_bundle({"text/plain": "df", "e2b/data": {"a": [1]}, "e2b/chart": chart})
    assert result.data == {"a": [1]} and result.chart == chart and result.extra == {}
    assert Result.from_dict(result.to_dict()) == result
    # a display (magics, a notebook) leaves them out: nbformat allows only text under those types
    assert result.bundle() == {"text/plain": "df"}
    # a sandbox sending something else than an object under those types: kept as it came, in extra
    odd = Result.from_bundle({"e2b/data": "not an object"})
    assert odd.data is None and odd.extra == {"e2b/data": "not an object"}


def test_a_notebooks_kernel_gets_no_e2b_formats():
    """A notebook's kernel (started with the debugger) shows no e2b/* outputs: a notebook that held
    them would fail nbformat's validation; the API's kernels get them."""
    display = f"--IPKernelApp.exec_lines={programs.source('e2b_display')}"
    assert display in kernel_extras(offline=False)[0]
    assert display not in kernel_extras(offline=False, e2b_formats=False)[0]
    assert display not in kernel_extras(offline=True, e2b_formats=False)[0]
