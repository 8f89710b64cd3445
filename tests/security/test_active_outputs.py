"""Issue 27 (critical): code in a sandbox displays something JupyterLab would run (JavaScript, HTML with
a script or an event handler, SVG with script, Markdown with raw HTML, a widget setting HTML, a
renderer type that executes code). Lab runs the outputs of a cell the user ran with the user's login,
so the script could start a host kernel. Each route is tried as alice (the attacker), on runc and
runsc: a REST execution, the "Python 3 (sandboxed)" kernel over the server's kernel websocket (the
JSON protocol, where the server checks each message's signature, and the v1 protocol JupyterLab
uses, which passes the frames on unread), and ``%%sandbox`` in a real notebook kernel. Each time
the active part is gone and the note "jupyter-sandbox removed" says so; bob's sandbox still works.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

from attacks import ATTACKER, assert_whole, create, guarded  # noqa: F401 (guarded is a fixture)
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1
from test_kernel import KernelSocket, start_kernel
from test_magics import notebook_kernel
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

NOTE = "jupyter-sandbox removed"
FETCH = "fetch('/api/kernels', {method: 'POST', body: JSON.stringify({name: 'python3'})})"
D = "from IPython.display import display, HTML, SVG, Markdown, Javascript, Latex\n"
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'

# what sandbox code displays, by kind; each one would run FETCH (or a script) in a trusted output
ACTIVE = {
    "javascript": D + f"display(Javascript({FETCH!r}))",
    "html script": D + f"display(HTML({'<b>kept</b><script>' + FETCH + '</script>'!r}))",
    "html onerror": D + f"display(HTML({'<img src=x onerror=' + json.dumps(FETCH) + '>'!r}))",
    "html javascript link": D + "display(HTML('<a href=\"javascript:alert(1)\">click</a>'))",
    "html iframe srcdoc": D + "display(HTML('<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>'))",
    "svg script": D + f'display(SVG(\'<svg {SVG_NS}><script>alert(1)</script><rect width="5" height="5"/></svg>\'))',
    "svg onload": D + f'display(SVG(\'<svg {SVG_NS} onload="alert(1)"><rect width="5" height="5"/></svg>\'))',
    "markdown raw html": D + "display(Markdown('# hi\\n\\n<img src=x onerror=\"alert(1)\">'))",
    "latex href": D + "display(Latex(r'$\\href{javascript:alert(1)}{x}$'))",
    "bokeh exec": "display({'application/vnd.bokehjs_exec.v0+json': {'id': '1'}, 'text/plain': 'bokeh'}, raw=True)",
    "unknown renderer": "display({'application/vnd.evil.v1+json': {'code': 'alert(1)'}, 'text/plain': 'x'}, raw=True)",
    "text/x-javascript": "display({'text/x-javascript': 'alert(1)', 'text/plain': 'x'}, raw=True)",
}
MARKERS = ("<script", "onerror", "onload", "javascript:", "<iframe", "srcdoc", "bokehjs_exec", "evil", "\\href")


def active_left(value) -> list[str]:
    """The markers of active content still in a bundle: escaped markup is text (inert), the note
    names what it removed, and a TeX command without its backslash is text too."""
    text = re.sub(r"&lt;.*?&gt;", "", json.dumps(value))
    text = re.sub(NOTE + r" active content from this output \([^)]*\)", "", text)
    text = re.sub(r"(?<!\\)href\{javascript:", "", text).lower()
    return [m for m in MARKERS if m in text]


def shown(bundle: dict) -> str:
    """What JupyterLab renders of a bundle: the richest type it has."""
    for mime in ("text/html", "text/markdown", "text/latex", "text/plain"):
        if mime in bundle:
            return bundle[mime]
    return ""


def test_rest_executions_return_active_outputs_neutralised(guarded):
    server, bystander = guarded
    sandbox = create(server)
    for kind, code in ACTIVE.items():
        events = server.execute(sandbox, code, user=ATTACKER)
        results = [e for e in events if e["type"] == "result"]
        assert len(results) == 1, (kind, events)
        assert not active_left(results[0]), (kind, results[0])
        assert NOTE in json.dumps(results[0]), (kind, results[0])
        assert events[-1] == {"type": "end_of_execution"}
    # plots, tables and plain HTML come through whole, without a note
    events = server.execute(
        sandbox,
        "import pandas as pd\npd.DataFrame({'a': [1, 2]})",
        user=ATTACKER,
    )
    (table,) = [e for e in events if e["type"] == "result"]
    assert '<table border="1" class="dataframe">' in table["html"] and NOTE not in json.dumps(table)
    events = server.execute(sandbox, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()", user=ATTACKER)
    (plot,) = [e for e in events if e["type"] == "result"]
    assert plot["png"] and NOTE not in json.dumps(plot)
    assert_whole(server, bystander)


async def open_v1(server, kernel_id: str):
    """The kernel websocket with the v1 protocol, as JupyterLab opens it."""
    url = server.url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
    request = HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    return await websocket_connect(request, subprotocols=["v1.kernel.websocket.jupyter.org"])


async def execute_v1(ws, code: str, timeout: float = 120) -> list[tuple[str, dict, dict]]:
    """(msg_type, content, header) of every message the v1 websocket delivers for one execution."""
    session = Session(username="test")
    msg = session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
    )
    await ws.write_message(serialize_msg_to_ws_v1(msg, "shell", session.pack), binary=True)
    out, replied, idle = [], False, False
    deadline = time.monotonic() + timeout
    while not (replied and idle):
        raw = await asyncio.wait_for(ws.read_message(), max(deadline - time.monotonic(), 0.1))
        assert raw is not None, "the server closed the kernel websocket"
        _, parts = deserialize_msg_from_ws_v1(raw)
        header, parent, content = json.loads(parts[0]), json.loads(parts[1]), json.loads(parts[3])
        if parent.get("msg_id") != msg["header"]["msg_id"]:
            continue
        out.append((header["msg_type"], content, header))
        replied = replied or header["msg_type"] == "execute_reply"
        idle = idle or (header["msg_type"] == "status" and content.get("execution_state") == "idle")
    return out


async def test_the_sandboxed_kernel_gets_neutralised_and_signed_outputs(guarded):
    server, bystander = guarded
    kernel_id = await start_kernel(server)
    ks = await KernelSocket.open(server, kernel_id)
    try:
        for kind, code in ACTIVE.items():
            # The JSON protocol: the server deserializes each message with the kernel's key, so a
            # display that arrives was signed right after the relay changed it.
            reply, outputs = await ks.execute(code)
            assert reply["content"]["status"] == "ok", (kind, reply["content"])
            displays = [m for m in outputs if m["msg_type"] == "display_data"]
            assert len(displays) == 1, (kind, [m["msg_type"] for m in outputs])
            data = displays[0]["content"]["data"]
            assert not active_left(data), (kind, data)
            assert NOTE in shown(data), (kind, data)

        # a widget that sets HTML, and one whose description may be HTML; a slider keeps working
        code = (
            "import ipywidgets as w\n"
            "h = w.HTML(value='<img src=x onerror=\"alert(1)\">')\n"
            "s = w.IntSlider(value=3, description='<img src=x onerror=\"alert(2)\">', description_allow_html=True)\n"
            "display(h, s)"
        )
        reply, outputs = await ks.execute(code)
        assert reply["content"]["status"] == "ok", reply["content"]
        states = {
            m["content"]["data"]["state"].get("_model_name"): (m["content"]["comm_id"], m["content"]["data"]["state"])
            for m in outputs
            if m["msg_type"] == "comm_open"
        }
        html_state = states["HTMLModel"][1]
        assert "onerror" not in html_state["value"] and NOTE in html_state["value"]
        _, slider_state = states["IntSliderModel"]
        assert slider_state["description_allow_html"] is False and slider_state["value"] == 3
        reply, outputs = await ks.execute("h.value = '<svg onload=alert(3)>'; s.value = 9")
        updates = [m["content"]["data"]["state"] for m in outputs if m["msg_type"] == "comm_msg"]
        assert {"value": 9} in updates, updates  # the slider's update passes as it was
        assert updates and not any("onload" in json.dumps(u) for u in updates), updates

        # a "page" payload (JupyterLab shows it as an output of the cell)
        reply, _ = await ks.execute(
            "get_ipython().payload_manager.write_payload({'source': 'page', 'start': 0, "
            "'data': {'text/html': '<script>alert(4)</script>', 'text/plain': 'p'}})"
        )
        assert reply["content"]["payload"], reply["content"]
        assert not active_left(reply["content"]["payload"]) and NOTE in json.dumps(reply["content"]["payload"])
    finally:
        ks.close()

    # The v1 protocol (JupyterLab's): the server passes the frames on without reading them.
    ws = await open_v1(server, kernel_id)
    try:
        for kind in ("javascript", "html onerror", "svg script"):
            messages = await execute_v1(ws, ACTIVE[kind])
            (data,) = [content["data"] for msg_type, content, _ in messages if msg_type == "display_data"]
            assert not active_left(data) and NOTE in shown(data), (kind, data)
    finally:
        ws.close()
    assert "Invalid Signature" not in server.log(200_000)
    r = await asyncio.to_thread(server.request, "DELETE", f"api/kernels/{kernel_id}")
    assert r.status_code == 204
    await asyncio.to_thread(assert_whole, server, bystander)


def test_sandbox_magic_republishes_only_the_neutralised_bundle(guarded):
    server, bystander = guarded
    with notebook_kernel((server.url, server.token)) as (_km, kc):
        reply = kc.execute_interactive("%load_ext jupyter_sandbox", timeout=60, output_hook=lambda m: None)
        assert reply["content"]["status"] == "ok"
        for kind in ("javascript", "html onerror", "markdown raw html", "bokeh exec"):
            shown_here: list[dict] = []

            def hook(msg, into=shown_here):
                if msg["msg_type"] in ("display_data", "execute_result"):
                    into.append(msg["content"]["data"])

            reply = kc.execute_interactive("%%sandbox\n" + ACTIVE[kind], timeout=120, output_hook=hook)
            assert reply["content"]["status"] == "ok", (kind, reply["content"])
            assert len(shown_here) == 1, (kind, shown_here)
            assert not active_left(shown_here[0]) and NOTE in shown(shown_here[0]), (kind, shown_here[0])
    assert_whole(server, bystander)


def test_markup_built_to_slow_the_sanitizer_is_refused_at_once(guarded):
    # The HTML parser's time grows with nesting depth times size: 100,000 nested <div>s (600 KB) took
    # it 45 s, all of it on the server's event loop. Deeper than any table or plot is removed unparsed.
    server, bystander = guarded
    sandbox = create(server)
    svg = "'<svg xmlns=\"http://www.w3.org/2000/svg\">' + '<g>' * 50_000 + '</g>' * 50_000 + '</svg>'"
    code = D + f"display(HTML('<div>' * 200_000 + 'x'))\ndisplay({{'image/svg+xml': {svg}}}, raw=True)"
    started = time.monotonic()
    events = server.execute(sandbox, code, user=ATTACKER)
    took = time.monotonic() - started
    results = [e for e in events if e["type"] == "result"]
    assert len(results) == 2 and all(NOTE in json.dumps(r) for r in results), events
    assert "<div><div>" not in json.dumps(results) and "<g><g>" not in json.dumps(results)
    assert took < 15, f"the execution took {took:.1f} s"
    assert_whole(server, bystander)
