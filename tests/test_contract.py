"""The backend contract, run through the manager against every backend (docker, docker
with gVisor's runsc, local, kubernetes: the k8s_api fixture's test API server, or $KUBECONFIG's
cluster) with real kernels. What a backend does not promise is skipped
with the reason; Docker itself never skips in CI (see conftest)."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import time

import pytest

from jupyter_sandbox.errors import Conflict, InvalidInput, NotFound

OWNER = "alice"


@pytest.fixture(scope="session")
async def sandbox(manager):
    model = await manager.create(OWNER, spec={"memory": "512M"})
    yield model
    await manager.remove(OWNER, model.id)


async def run(manager, sandbox, code, **kwargs):
    return await manager.execute(OWNER, sandbox.id, code, **kwargs)


async def test_state_is_kept_between_executions(manager, sandbox):
    await run(manager, sandbox, "x = 1")
    execution = await run(manager, sandbox, "x+=1; x")
    assert execution.text == "2"
    assert execution.error is None


async def test_dataframe_result_carries_its_columns_as_data(manager, sandbox):
    # E2B's result.data (e2b/data, made by backends/programs/e2b_display.py in every kernel)
    execution = await run(manager, sandbox, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', None]})")
    assert execution.error is None
    [result] = execution.results
    assert result.data == {"a": [1, 2], "b": ["x", None]}
    assert result.html and "data" in result.formats()
    assert (await run(manager, sandbox, "'_jupyter_sandbox_e2b_display' in dir()")).text == "False"


async def test_matplotlib_plot_gives_a_decodable_png(manager, sandbox):
    from PIL import Image

    code = (
        "import matplotlib.pyplot as plt\nimport numpy as np\n"
        "x = np.linspace(0, 20, 100)\ny = np.sin(x)\nplt.plot(x, y)\nplt.show()\n"
    )
    execution = await run(manager, sandbox, code)
    assert execution.error is None, execution.error
    png = next(r.png for r in execution.results if r.png)
    image = Image.open(io.BytesIO(base64.b64decode(png)))
    image.verify()
    assert image.format == "PNG" and image.size[0] > 100


async def test_streaming_delivers_each_output_as_it_happens(manager, sandbox):
    code = (
        "import time\nimport pandas as pd\n"
        "print('hello')\ntime.sleep(3)\n"
        "data = pd.DataFrame(data=[[1, 2], [3, 4]], columns=['A', 'B'])\ndisplay(data.head(10))\n"
        "time.sleep(3)\nprint('world')\n"
    )
    arrivals = []
    start = time.monotonic()

    def on_event(event):
        arrivals.append((time.monotonic() - start, event))

    execution = await run(manager, sandbox, code, on_event=on_event)
    seen = [(t, e) for t, e in arrivals if e["type"] in ("stdout", "result")]
    kinds = [e["type"] if e["type"] == "result" else e["text"].strip() for _, e in seen]
    assert kinds == ["hello", "result", "world"]
    # The code holds each output back 3 s: delivered as it happens, they arrive seconds apart
    # (a loaded 2-core machine may delay one of them, never by half of that).
    t_hello, t_df, t_world = (t for t, _ in seen)
    assert t_df - t_hello > 1.5 and t_world - t_df > 1.5, arrivals
    df = seen[1][1]
    assert "<table" in df["html"] and "A" in df["text"]
    assert arrivals[-1][1] == {"type": "end_of_execution"}
    assert execution.logs.stdout == ["hello\n", "world\n"]


async def test_error_has_name_value_traceback_and_sandbox_stays_usable(manager, sandbox):
    execution = await run(manager, sandbox, "1/0")
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    # Tracebacks keep the kernel's ANSI colours (notebooks render them).
    assert "ZeroDivisionError" in re.sub(r"\x1b\[[0-9;]*m", "", execution.error.traceback)
    assert (await run(manager, sandbox, "21*2")).text == "42"


async def test_two_contexts_have_separate_variables_and_share_files(manager, sandbox):
    other = await manager.create_context(OWNER, sandbox.id)
    try:
        await run(manager, sandbox, "shared_name = 'default'\nopen('shared.txt', 'w').write('from default')")
        execution = await run(manager, sandbox, "shared_name", context_id=other.id)
        assert execution.error is not None and execution.error.name == "NameError"
        execution = await run(manager, sandbox, "open('shared.txt').read()", context_id=other.id)
        assert execution.text == "'from default'"
        assert {c.id for c in (await manager.list_contexts(OWNER, sandbox.id))} >= {other.id}
    finally:
        await manager.remove_context(OWNER, sandbox.id, other.id)
    assert other.id not in {c.id for c in (await manager.list_contexts(OWNER, sandbox.id))}


async def test_context_cwd_is_used_and_a_missing_one_is_refused(manager, sandbox):
    await run(manager, sandbox, "import os; os.makedirs('work/sub', exist_ok=True)")
    inside = await manager.create_context(OWNER, sandbox.id, cwd="work/sub")
    try:
        assert (await run(manager, sandbox, "import os; os.getcwd()", context_id=inside.id)).text.endswith("/work/sub'")
    finally:
        await manager.remove_context(OWNER, sandbox.id, inside.id)
    before = {c.id for c in (await manager.list_contexts(OWNER, sandbox.id))}
    with pytest.raises(InvalidInput) as info:
        await manager.create_context(OWNER, sandbox.id, cwd="no/such/dir")
    assert info.value.field == "cwd" and "does not exist" in str(info.value)
    assert {c.id for c in (await manager.list_contexts(OWNER, sandbox.id))} == before


async def test_timeout_interrupts_and_keeps_state(manager, sandbox):
    await run(manager, sandbox, "kept = 'still here'")
    start = time.monotonic()
    execution = await run(manager, sandbox, "while True: pass", timeout=2)
    elapsed = time.monotonic() - start
    assert execution.error.name == "TimeoutError"
    assert elapsed < 3.5, elapsed
    assert (await run(manager, sandbox, "kept")).text == "'still here'"


async def test_output_of_threads_all_arrives_with_shared_wake_ups(manager, sandbox):
    """The API's kernels wake ipykernel's IOPub thread once for what is queued before it runs
    (issue 25): four threads printing and displaying at once lose nothing, and each one's own
    lines keep their order."""
    code = (
        "import sys, threading\n"
        "def speak(name):\n"
        "    for i in range(300):\n"
        "        sys.stdout.write(f'{name} {i}\\n')  # one write: print's two may interleave with another's\n"
        "        if i % 50 == 0:\n"
        "            display(f'{name} shows {i}')\n"
        "threads = [threading.Thread(target=speak, args=(f't{n}',)) for n in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "'joined'"
    )
    execution = await run(manager, sandbox, code)
    assert execution.error is None, execution.error
    lines = "".join(execution.logs.stdout).splitlines()
    for n in range(4):
        assert [line for line in lines if line.startswith(f"t{n} ")] == [f"t{n} {i}" for i in range(300)]
    shown = sorted(r.text for r in execution.results if not r.is_main_result)
    assert shown == sorted(f"'t{n} shows {i}'" for n in range(4) for i in range(0, 300, 50))
    assert execution.text == "'joined'" and len(lines) == 4 * 300


async def test_a_cell_awaiting_at_top_level_runs_and_is_interrupted(manager, sandbox):
    """Top-level await runs in the API's kernels, and a timeout interrupts it. They read the shell
    socket on the main thread, without ipykernel 7's subshell thread (issue 25): the main thread
    is the one whose awaiting cells an interrupt cancels."""
    done = await run(manager, sandbox, "import asyncio\nawait asyncio.sleep(0.1)\n'awaited'")
    assert done.text == "'awaited'", done.error
    start = time.monotonic()
    execution = await run(manager, sandbox, "await asyncio.sleep(30)", timeout=2)
    assert execution.error.name == "TimeoutError"
    assert time.monotonic() - start < 10
    features = "get_ipython().kernel.kernel_info['supported_features']"
    assert (await run(manager, sandbox, f"'kernel subshells' in {features}")).text == "False"


async def test_a_forked_child_knows_its_pid_and_its_output_arrives(manager, sandbox):
    """The API's kernels read their pid once (issue 25: each os.getpid() is a system call gVisor
    traps, several per execution in jupyter_client and ipykernel) and again in a forked child:
    the child's pid is its own, and ipykernel sees a child, whose prints come over its pipe."""
    code = (
        "import os, multiprocessing\n"
        "parent = os.getpid()\n"
        "def child():\n"
        "    print('child', os.getpid() != parent, os.getpid() == int(os.readlink('/proc/self')), flush=True)\n"
        "p = multiprocessing.get_context('fork').Process(target=child)\n"
        "p.start(); p.join()\n"
        "print('parent', parent == int(os.readlink('/proc/self')), p.exitcode)"
    )
    execution = await run(manager, sandbox, code)
    assert execution.error is None, execution.error
    assert "".join(execution.logs.stdout).split("\n")[:2] == ["child True True", "parent True 0"]


async def test_input_fails_clearly_instead_of_hanging(manager, sandbox):
    execution = await asyncio.wait_for(run(manager, sandbox, "input('name? ')"), timeout=20)
    # plainly, in our words: not ipykernel's "this frontend does not support input requests"
    assert execution.error.name == "InputNotAvailable"
    assert "nobody can answer" in execution.error.value and "on_input" in execution.error.value
    assert "frontend" not in execution.error.value and "ipykernel" not in execution.error.traceback


async def test_input_and_getpass_are_answered_through_the_context(manager, sandbox):
    asked = []

    def answer(event):
        if event["type"] == "input_request":
            asked.append((event["prompt"], event["password"], event["context_id"]))
            value = "s3cret" if event["password"] else "Ada"
            manager.answer_input(OWNER, sandbox.id, event["context_id"], value=value)

    code = "import getpass\nname = input('name? ')\npw = getpass.getpass('pw? ')\nprint(name, len(pw))"
    execution = await asyncio.wait_for(run(manager, sandbox, code, on_event=answer, allow_stdin=True), timeout=60)
    context_id = manager.get(OWNER, sandbox.id).contexts[0].id
    assert asked == [("name? ", False, context_id), ("pw? ", True, context_id)]
    assert execution.error is None and execution.logs.stdout == ["Ada 6\n"]

    # nobody can answer: the code fails with that reason, and the context stays usable
    def refuse(event):
        if event["type"] == "input_request":
            manager.answer_input(OWNER, sandbox.id, event["context_id"], error="nobody is at the keyboard")

    refused = await asyncio.wait_for(
        run(manager, sandbox, "input('? ')", on_event=refuse, allow_stdin=True), timeout=60
    )
    assert (refused.error.name, refused.error.value) == ("InputNotAvailable", "nobody is at the keyboard")
    assert (await run(manager, sandbox, "name")).text == "'Ada'"
    with pytest.raises(Conflict, match="no input"):  # nothing waits now
        manager.answer_input(OWNER, sandbox.id, context_id, value="late")
    with pytest.raises(InvalidInput):
        manager.answer_input(OWNER, sandbox.id, context_id)


async def test_env_vars_apply_to_one_execution_only(manager, sandbox):
    execution = await run(manager, sandbox, "import os; os.environ.get('GREETING')", env_vars={"GREETING": "hi"})
    assert execution.text == "'hi'"
    assert (await run(manager, sandbox, "repr(os.environ.get('GREETING'))")).text == "'None'"


async def test_pip_without_network_fails_at_once_with_a_hint(manager, sandbox):
    """Issue 15: `!pip install` and `%pip install` in a sandbox without network fail in well under
    pip's ~8 s of retries (it tries no index at all) and end with one line saying what to do."""
    if "network NOT isolated" in manager.backend.isolation:
        pytest.skip("this local backend cannot take the network away here (no empty network namespace)")
    for code in ("!pip install no-such-package-jsbx", "%pip install no-such-package-jsbx"):
        started = time.monotonic()
        execution = await run(manager, sandbox, code)
        elapsed = time.monotonic() - started
        output = "".join(execution.logs.stdout + execution.logs.stderr)
        assert "No matching distribution found for no-such-package-jsbx" in output, output
        assert "Retrying" not in output, output  # pip did not try to reach an index
        hints = [line for line in "".join(execution.logs.stderr).splitlines() if "has no network" in line]
        assert len(hints) == 1, execution.logs
        assert "%%sandbox --network" in hints[0] and "Sandbox(network=True)" in hints[0], hints[0]
        assert elapsed < 5, f"{code} took {elapsed:.1f} s"
    # a pip install that succeeds (already installed, no index needed) gets no hint
    execution = await run(manager, sandbox, "%pip install --no-deps ipykernel")
    assert "Requirement already satisfied" in "".join(execution.logs.stdout), execution.logs
    assert not any("has no network" in line for line in execution.logs.stderr), execution.logs.stderr


async def test_files_put_get_list_remove_and_confinement(manager, sandbox):
    await manager.write_file(OWNER, sandbox.id, "data/in.bin", b"\x00\x01payload")
    assert await manager.read_file(OWNER, sandbox.id, "data/in.bin") == b"\x00\x01payload"
    assert (await run(manager, sandbox, "open('data/in.bin','rb').read()[2:]")).text == "b'payload'"
    listing = await manager.list_files(OWNER, sandbox.id, "data")
    assert [(e["name"], e["type"], e["size"]) for e in listing] == [("in.bin", "file", 9)]
    await manager.remove_file(OWNER, sandbox.id, "data/in.bin")
    with pytest.raises(NotFound):
        await manager.read_file(OWNER, sandbox.id, "data/in.bin")
    for bad in ("../etc/passwd", "/etc/passwd", "data/../../x"):
        with pytest.raises(InvalidInput):
            await manager.read_file(OWNER, sandbox.id, bad)


async def test_stats_report_cpu_and_memory(manager, sandbox):
    stats = await manager.stats(OWNER, sandbox.id)
    assert stats["memory_limit"] == manager.backend.memory_limit(manager.get(OWNER, sandbox.id).spec) >= 512 * 1024**2
    assert 0 < stats["memory_used"] < stats["memory_limit"]
    assert stats["cpu_percent"] >= 0


async def test_other_owner_cannot_see_or_use_the_sandbox(manager, sandbox):
    assert sandbox.id not in {m.id for m in manager.list("mallory")}
    with pytest.raises(NotFound):
        await manager.execute("mallory", sandbox.id, "1")
    with pytest.raises(NotFound):
        await manager.remove("mallory", sandbox.id)


async def test_restart_context_loses_variables(manager, sandbox):
    await run(manager, sandbox, "gone = 1")
    await manager.restart_context(OWNER, sandbox.id)
    execution = await run(manager, sandbox, "gone")
    assert execution.error.name == "NameError"


async def test_api_kernels_start_without_the_debugger_and_notebook_kernels_with_it(manager, sandbox):
    """ipykernel's debugger (debugpy) serves JupyterLab's debugger panel only: kernels for code sent
    through the API start without it (faster), and their code can still import debugpy."""
    code = (
        "import sys\n"
        "loaded = 'debugpy' in sys.modules\n"
        "import debugpy\n"
        "print('debugger' in get_ipython().kernel.kernel_info['supported_features'], loaded, debugpy.__name__)"
    )
    assert (await run(manager, sandbox, code)).logs.stdout == ["False False debugpy\n"]

    from jupyter_client.asynchronous import AsyncKernelClient

    model = await manager.create(OWNER, kind="kernel")
    client = AsyncKernelClient()
    try:
        client.load_connection_info(manager.kernel_connection(OWNER, model.id))
        client.start_channels()
        reply = await client.kernel_info(reply=True, timeout=60)
        assert "debugger" in reply["content"]["supported_features"]
    finally:
        client.stop_channels()
        await manager.remove(OWNER, model.id)


async def test_api_kernels_write_history_in_batches_and_keep_the_sessions_whole(manager, sandbox):
    """The API's kernels write IPython's history file every 20 cells and build no debug record their
    log's handler would drop (programs/kernel_without_debugger.py, issue 25): the running session's
    history is whole, and the log shows what it showed."""
    await run(manager, sandbox, "first_cell = 1")
    code = (
        "import logging\n"
        "shell = get_ipython()\n"
        "log = shell.kernel.log\n"
        "print(shell.history_manager.db_cache_size, log.level == min(h.level for h in log.handlers) > logging.DEBUG,\n"
        "      'first_cell = 1' in shell.history_manager.input_hist_raw, _ih[-1].startswith('import logging'),\n"
        "      shell.kernel._execute_sleep)"
    )
    # (and no sleep of ipykernel's between the last output and the reply: the collector waits for both)
    assert (await run(manager, sandbox, code)).logs.stdout == ["20 True True True 0.0\n"]


async def test_outputs_keep_their_order_when_empty_flushes_are_skipped(manager, sandbox):
    """The API's kernels skip a flush of stdout/stderr with nothing written and none under way
    (programs/kernel_without_debugger.py, issue 25): what is printed, to either stream, still
    arrives before what is displayed or returned after it."""
    code = (
        "import sys, time\n"
        "for i in range(250):\n"
        "    print(f'p{i}', file=sys.stderr if i % 2 else sys.stdout)\n"
        "    display(f'd{i}')\n"
        "    time.sleep(0.01)\n"
        "print('last')\n"
        "(type(sys.stdout).flush.__name__, 'done')"
    )
    order = []

    def on_event(event):
        if event["type"] in ("stdout", "stderr"):
            order.extend(line for line in event["text"].split("\n") if line)
        elif event["type"] == "result":
            order.append(event["text"].strip("'"))

    execution = await run(manager, sandbox, code, on_event=on_event)
    assert execution.error is None, execution.error
    expected = [x for i in range(250) for x in (f"p{i}", f"d{i}")] + ["last", "('quiet_flush', 'done')"]
    assert order == expected


def test_null_fields_mean_the_server_defaults(manager):
    nulls = {"image": None, "memory": None, "cpus": None, "pids": None, "disk": None, "timeout": None, "runtime": None}
    assert manager.resolve_spec(nulls) == manager.resolve_spec({}) == manager.resolve_spec(None)
    assert manager.resolve_spec(nulls).timeout == manager.default_timeout


async def test_limits_above_maximum_are_refused(manager):
    with pytest.raises(InvalidInput) as info:
        await manager.create(OWNER, spec={"memory": "64G"})
    assert info.value.field == "memory"
    with pytest.raises(InvalidInput) as info:
        await manager.create(OWNER, spec={"image": "not-allowed:latest"})
    assert info.value.field == "image"


async def test_idle_sandboxes_are_culled_and_busy_ones_are_not(backend_name):
    from conftest import make_manager

    culling = make_manager(backend_name, cull_idle_timeout=1.5, cull_interval=0.3, reap_on_start=False)
    await culling.start()
    try:
        idle = await culling.create(OWNER)
        busy = await culling.create(OWNER)
        long_run = asyncio.ensure_future(culling.execute(OWNER, busy.id, "import time; time.sleep(4); 'done'"))
        queued = asyncio.ensure_future(culling.execute(OWNER, busy.id, "'queued'"))
        await asyncio.sleep(3.5)
        assert idle.id not in {s.id for s in culling.list()}
        with pytest.raises(NotFound):
            culling.get(OWNER, idle.id)
        assert busy.id in {s.id for s in culling.list()}, "a sandbox running code is never culled"
        assert (await long_run).text == "'done'"
        assert (await queued).text == "'queued'"
        deadline = time.monotonic() + 30
        while culling.list():
            assert time.monotonic() < deadline, "once idle, it goes too"
            await asyncio.sleep(0.2)
    finally:
        await culling.shutdown()


async def test_pool_hands_out_started_sandboxes_and_refills(backend_name):
    from conftest import make_manager

    pooled = make_manager(backend_name, pool_size=1, reap_on_start=False)
    await pooled.start()
    try:

        async def waiting() -> list[str]:
            for _ in range(600):
                if pooled.pool.ready:
                    return [s.model.id for s in pooled.pool.ready]
                await asyncio.sleep(0.1)
            raise AssertionError("the pool did not fill")

        first_pooled = await waiting()
        assert pooled.list() == [], "pooled sandboxes belong to nobody yet"
        model = await pooled.create(OWNER, name="from-pool")
        assert [model.id] == first_pooled
        assert (model.owner, model.name, model.status) == (OWNER, "from-pool", "running")
        execution = await pooled.execute(OWNER, "from-pool", "x = 41; x + 1")
        assert execution.text == "42" and execution.execution_count == 1, "a fresh kernel"
        with pytest.raises(NotFound):
            pooled.get("someone-else", model.id)
        refilled = await waiting()
        assert refilled != first_pooled, "the pool refilled"
        custom = await pooled.create(OWNER, spec={"memory": "384M"})
        assert custom.id not in first_pooled + refilled, "a custom spec starts its own"
        # Two creates with one name at once, one of them served from the pool: exactly one wins.
        twins = await asyncio.gather(
            pooled.create(OWNER, name="twin"), pooled.create(OWNER, name="twin"), return_exceptions=True
        )
        won = [t for t in twins if not isinstance(t, BaseException)]
        assert len(won) == 1 and isinstance(next(t for t in twins if t not in won), Conflict), twins
        ours = {*first_pooled, *refilled, custom.id, won[0].id}
    finally:
        await pooled.shutdown()
    left = await pooled.backend.list_existing({"org.jupyter-sandbox.server": pooled.server_id})
    assert not ours & {labels["org.jupyter-sandbox.sandbox"] for labels in left}, "shutdown removes the pool too"
