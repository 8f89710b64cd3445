"""The sanitizer of a sandbox's outputs (jupyter_sandbox/outputs.py): active parts go, data stays."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import xml.etree.ElementTree as ET

import pytest
from jupyter_client.session import Session

from jupyter_sandbox.outputs import (
    NOTE,
    OutputPolicy,
    clean_bundle,
    clean_html,
    clean_markdown,
    clean_svg,
    clean_widget_state,
)

ACTIVE_BUNDLES = {
    "javascript": {"application/javascript": "fetch('/api/kernels', {method: 'POST'})"},
    "x-javascript": {"text/x-javascript": "alert(1)"},
    "bokeh exec": {"application/vnd.bokehjs_exec.v0+json": {"id": "x"}, "text/html": "<div>plot</div>"},
    "unknown renderer": {"application/vnd.evil.v1+json": {"a": 1}},
    "html script": {"text/html": "<b>hi</b><script>fetch('/api/kernels')</script>"},
    "html onerror": {"text/html": "<img src=x onerror=\"fetch('/api/kernels')\">"},
    "html javascript url": {"text/html": '<a href="javascript:alert(1)">x</a>'},
    "html iframe": {"text/html": '<iframe srcdoc="<script>alert(1)</script>"></iframe>'},
    "html form": {"text/html": '<form action="/api/kernels" method="post"><button>go</button></form>'},
    "html svg onload": {"text/html": "<svg onload=alert(1)></svg>"},
    "html meta refresh": {"text/html": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'},
    "svg script": {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'},
    "svg foreignObject": {
        "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg"><foreignObject><img xmlns="http://www.w3.org/1999/'
        'xhtml" src="x" onerror="alert(1)"/></foreignObject></svg>'
    },
    "svg onload": {"image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>'},
    "markdown raw html": {"text/markdown": "# Title\n\n<img src=x onerror=alert(1)>\n"},
    "markdown script": {"text/markdown": "text <script>alert(1)</script>"},
    "markdown javascript link": {"text/markdown": "[click](javascript:alert(1))"},
}


def _active_left(bundle: dict) -> list[str]:
    text = re.sub(r"&lt;.*?&gt;", "", json.dumps(bundle).lower())  # markup escaped as text is inert
    return [
        marker
        for marker in ("<script", "onerror", "onload", "javascript:", "<iframe", "<form", "http-equiv", "foreignobject")
        if marker in text.replace(NOTE, "")
    ]


@pytest.mark.parametrize("name", list(ACTIVE_BUNDLES))
def test_active_content_is_removed_with_a_note(name):
    cleaned, removed = clean_bundle(ACTIVE_BUNDLES[name])
    assert removed
    assert not _active_left(cleaned), cleaned
    assert not {"application/javascript", "text/x-javascript"} & set(cleaned)
    assert not any("vnd" in mime for mime in cleaned)
    # the note is in what JupyterLab shows: the HTML if there is some, else Markdown, else plain text
    shown = cleaned.get("text/html") or cleaned.get("text/markdown") or cleaned["text/plain"]
    assert shown.count(NOTE) == 1
    again, removed_again = clean_bundle(cleaned)
    assert (again, removed_again) == (cleaned, []), "cleaning twice changes nothing"


def test_plain_text_note_keeps_the_text():
    cleaned, _ = clean_bundle({"application/javascript": "alert(1)", "text/plain": "<Javascript object>"})
    assert cleaned == {
        "text/plain": f"[{NOTE} active content from this output (application/javascript); to view it, save it to "
        "a file in the sandbox and download it]\n<Javascript object>"
    }


def test_html_note_leads_the_html():
    cleaned, _ = clean_bundle({"text/html": "<p>kept</p><script>x</script>", "text/plain": "t"})
    assert cleaned["text/html"].startswith("<p><small><em>" + NOTE)
    assert cleaned["text/html"].endswith("<p>kept</p>")
    assert cleaned["text/plain"] == "t"


def _png() -> str:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 3, 2])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    svg = io.StringIO()
    fig.savefig(svg, format="svg")
    plt.close(fig)
    _png.svg = svg.getvalue()  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode()


def test_matplotlib_png_and_svg_are_kept():
    png = _png()
    svg = _png.svg  # type: ignore[attr-defined]
    cleaned, removed = clean_bundle({"image/png": png, "text/plain": "<Figure>"})
    assert (cleaned, removed) == ({"image/png": png, "text/plain": "<Figure>"}, [])
    cleaned, removed = clean_bundle({"image/svg+xml": svg, "text/plain": "<Figure>"})
    assert removed == []
    out = cleaned["image/svg+xml"]
    root = ET.fromstring(out)  # still an SVG document
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    # the plot's paths, clip paths and glyph references survive; only the metadata went
    assert out.count("<path") == svg.count("<path") and out.count("clip-path") == svg.count("clip-path")
    assert out.count("xlink:href") == svg.count("xlink:href") > 0
    assert clean_svg(out) == (out, False)


def test_pandas_dataframe_html_is_kept_without_a_note():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x < y", "z"]})
    cleaned, removed = clean_bundle({"text/html": frame._repr_html_(), "text/plain": repr(frame)})
    assert removed == []
    assert '<table border="1" class="dataframe">' in cleaned["text/html"]
    assert "<td>x &lt; y</td>" in cleaned["text/html"]
    assert NOTE not in json.dumps(cleaned)


def test_safe_html_formatting_and_inline_images_are_kept():
    png = _png()
    html = f'<h3>T</h3><b>b</b> <i>i</i> <a href="https://example.org">l</a><img src="data:image/png;base64,{png}">'
    cleaned, active = clean_html(html)
    assert not active
    assert f'src="data:image/png;base64,{png}"' in cleaned and 'href="https://example.org"' in cleaned


def test_plain_markdown_is_unchanged():
    text = "# Title\n\n**bold**, *it*, `code`, [link](https://example.org), ![i](data:image/png;base64,AAAA)\n\n- a\n"
    assert clean_markdown(text) == (text, False)
    assert clean_markdown("a <b>b</b> <em>c</em>") == ("a <b>b</b> <em>c</em>", False)


def test_markdown_raw_html_is_shown_as_text():
    text, changed = clean_markdown('x <img src=x onerror="alert(1)"> y')
    assert changed and text == 'x &lt;img src=x onerror="alert(1)"&gt; y'
    text, changed = clean_markdown("[a](javascript&colon;alert(1)) [b]: JAVASCRIPT:x\n\n[b]: vbscript:x")
    assert changed and "script:" not in text.replace("JAVASCRIPT:x", "")


def test_latex_link_commands_are_made_inert():
    cleaned, removed = clean_bundle({"text/latex": r"$\href{javascript:alert(1)}{x}$"})
    assert removed == ["text/latex"] and "\\href" not in json.dumps(cleaned)


def test_safe_types_are_kept():
    bundle = {
        "text/plain": "x",
        "application/json": {"a": [1, 2]},
        "application/pdf": base64.b64encode(b"%PDF-1.4").decode(),
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
        "application/vnd.dataresource+json": {"schema": {"fields": []}, "data": []},
        "image/jpeg": "/9j/4AAQ",
        "image/gif": "R0lGOD",
    }
    assert clean_bundle(bundle) == (bundle, [])


def test_bad_shapes_do_not_crash():
    for data in (None, [], {"text/html": 5}, {"image/png": "<svg>"}, {"image/svg+xml": "not xml <"}, {3: "x"}):
        cleaned, _ = clean_bundle(data)
        assert isinstance(cleaned, dict)
    assert clean_svg('<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>')[0] is None


def test_config_allows_more_types():
    policy = OutputPolicy(allow_mime_types=["application/vnd.plotly.v1+json"])
    bundle = {"application/vnd.plotly.v1+json": {"data": []}, "text/plain": "fig"}
    assert policy.clean(bundle) == bundle
    assert "application/vnd.plotly.v1+json" not in OutputPolicy().clean(bundle)


# -- messages as the relay sees them --------------------------------------------------------
KEY = b"0123456789abcdef"


def _frames(session: Session, msg_type: str, content: dict, buffers: list[bytes] | None = None) -> list[bytes]:
    msg = session.msg(msg_type, content=content)
    if buffers:
        msg["buffers"] = buffers
    return session.serialize(msg, ident=[f"kernel.x.{msg_type}".encode()])


def _read(session: Session, frames: list[bytes]) -> dict:
    _, rest = session.feed_identities(frames)
    return session.deserialize(rest)  # checks the signature


def test_relay_cleans_and_re_signs_display_data():
    session = Session(key=KEY)
    frames = _frames(session, "display_data", {"data": {"application/javascript": "alert(1)", "text/plain": "x"}})
    out = OutputPolicy().cleaner(KEY).frames(frames)
    assert out and out is not frames
    msg = _read(session, out)
    assert list(msg["content"]["data"]) == ["text/plain"] and NOTE in msg["content"]["data"]["text/plain"]
    assert out[0] == frames[0], "the topic and identities are kept"


def test_relay_passes_quiet_messages_as_they_are():
    session = Session(key=KEY)
    cleaner = OutputPolicy().cleaner(KEY)
    for msg_type, content in (
        ("stream", {"name": "stdout", "text": "<script>alert(1)</script>"}),
        ("status", {"execution_state": "idle"}),
        ("execute_reply", {"status": "ok", "execution_count": 1, "user_expressions": {}, "payload": []}),
        ("execute_result", {"data": {"text/plain": "2"}, "metadata": {}, "execution_count": 1}),
    ):
        frames = _frames(session, msg_type, content)
        assert cleaner.frames(frames) is frames


def test_relay_keeps_a_forged_signature_wrong():
    session, forger = Session(key=KEY), Session(key=b"not the key")
    frames = _frames(forger, "display_data", {"data": {"text/html": "<img src=x onerror=alert(1)>"}})
    out = OutputPolicy().cleaner(KEY).frames(frames)
    assert out and "onerror" not in out[-1].decode()
    with pytest.raises(ValueError, match="Invalid Signature"):
        _read(session, out)


def test_relay_empties_what_it_cannot_read():
    session = Session(key=KEY)
    cleaner = OutputPolicy().cleaner(KEY)
    for content in (b'{"data": {"application/javascript": "\xff alert(1)"}}', b"[" * 100_000, b"[1]"):
        frames = _frames(session, "display_data", {"data": {}})
        frames[-1] = content
        out = cleaner.frames(frames)
        assert out[:-1] == frames[:-1] and out[-1] == b"{}", "the signature is left as it was: now wrong"
        with pytest.raises(ValueError, match="Invalid Signature"):
            _read(session, out)


def test_page_payload_is_cleaned():
    session = Session(key=KEY)
    payload = [{"source": "page", "data": {"text/html": "<script>alert(1)</script>"}, "start": 0}]
    frames = _frames(session, "execute_reply", {"status": "ok", "execution_count": 1, "payload": payload})
    msg = _read(session, OutputPolicy().cleaner(KEY).frames(frames))
    assert "<script" not in json.dumps(msg["content"])


def _comm(session, cleaner, msg_type, content, buffers=None):
    out = cleaner.frames(_frames(session, msg_type, content, buffers))
    return out, (_read(session, out) if out else None)


def test_widgets_html_is_cleaned_and_controls_are_untouched():
    widgets = pytest.importorskip("ipywidgets")
    session = Session(key=KEY)
    cleaner = OutputPolicy().cleaner(KEY)
    slider = widgets.IntSlider(value=5, description="n")
    state = slider.get_state()
    content = {"comm_id": "s1", "target_name": "jupyter.widget", "data": {"state": state, "buffer_paths": []}}
    frames = _frames(session, "comm_open", content)
    assert cleaner.frames(frames) is frames, "a slider passes untouched"
    update = _frames(session, "comm_msg", {"comm_id": "s1", "data": {"method": "update", "state": {"value": 7}}})
    assert cleaner.frames(update) is update

    html = widgets.HTML(value="<img src=x onerror=alert(1)>")
    content = {"comm_id": "h1", "target_name": "jupyter.widget", "data": {"state": html.get_state()}}
    _, msg = _comm(session, cleaner, "comm_open", content)
    assert (
        "onerror" not in msg["content"]["data"]["state"]["value"] and NOTE in msg["content"]["data"]["state"]["value"]
    )
    update = {"comm_id": "h1", "data": {"method": "update", "state": {"value": "<script>alert(1)</script>"}}}
    _, msg = _comm(session, cleaner, "comm_msg", update)
    assert "<script" not in msg["content"]["data"]["state"]["value"]

    button = widgets.Button(description="<img src=x onerror=alert(1)>")
    state = {**button.get_state(), "description_allow_html": True}
    _, msg = _comm(
        session, cleaner, "comm_open", {"comm_id": "b1", "target_name": "jupyter.widget", "data": {"state": state}}
    )
    assert msg["content"]["data"]["state"]["description_allow_html"] is False

    out = widgets.Output()
    state = {**out.get_state(), "outputs": [{"output_type": "display_data", "data": {"application/javascript": "x"}}]}
    _, msg = _comm(
        session, cleaner, "comm_open", {"comm_id": "o1", "target_name": "jupyter.widget", "data": {"state": state}}
    )
    assert msg["content"]["data"]["state"]["outputs"][0]["data"]["text/plain"].startswith("[" + NOTE)


def test_widgets_of_other_modules_and_other_comm_targets_are_dropped():
    session = Session(key=KEY)
    cleaner = OutputPolicy().cleaner(KEY)
    state = {"_model_module": "jupyter-vue", "_model_name": "VueTemplateModel", "template": "<script>x</script>"}
    assert (
        cleaner.frames(
            _frames(session, "comm_open", {"comm_id": "v", "target_name": "jupyter.widget", "data": {"state": state}})
        )
        == []
    )
    assert cleaner.frames(_frames(session, "comm_open", {"comm_id": "k", "target_name": "bokeh", "data": {}})) == []
    allowed = OutputPolicy(allow_widget_modules=["jupyter-vue"]).cleaner(KEY)
    frames = _frames(session, "comm_open", {"comm_id": "v", "target_name": "jupyter.widget", "data": {"state": state}})
    assert allowed.frames(frames) is frames


def test_a_widget_cannot_talk_the_relay_out_of_cleaning_it():
    session = Session(key=KEY)
    cleaner = OutputPolicy().cleaner(KEY)
    bad = "<img src=x onerror=alert(1)>"

    def update(comm_id, state):
        return _comm(session, cleaner, "comm_msg", {"comm_id": comm_id, "data": {"method": "update", "state": state}})[
            1
        ]

    # an HTML widget later claiming to be a slider is still cleaned as HTML (its front-end model stays HTML)
    opened = {"_model_name": "HTMLModel", "_model_module": "@jupyter-widgets/controls", "value": ""}
    _comm(session, cleaner, "comm_open", {"comm_id": "h", "target_name": "jupyter.widget", "data": {"state": opened}})
    update("h", {"_model_name": "IntSliderModel"})
    assert "onerror" not in update("h", {"value": bad})["content"]["data"]["state"]["value"]
    # a slider model shown by the HTML view (which sets innerHTML from the value)
    state = {"_model_name": "IntSliderModel", "_view_name": "HTMLView", "_model_module": "@jupyter-widgets/controls"}
    _comm(session, cleaner, "comm_open", {"comm_id": "v", "target_name": "jupyter.widget", "data": {"state": state}})
    assert "onerror" not in update("v", {"value": bad})["content"]["data"]["state"]["value"]
    # a slider that later says its view is HTML
    state = {
        "_model_name": "IntSliderModel",
        "_view_name": "IntSliderView",
        "_model_module": "@jupyter-widgets/controls",
    }
    _comm(session, cleaner, "comm_open", {"comm_id": "s", "target_name": "jupyter.widget", "data": {"state": state}})
    assert update("s", {"value": 4})["content"]["data"]["state"] == {"value": 4}
    update("s", {"_view_name": "HTMLView"})
    assert "onerror" not in update("s", {"value": bad})["content"]["data"]["state"]["value"]
    # a widget whose opening the relay never saw (e.g. after re-attaching): markup is cleaned
    assert "onerror" not in update("unseen", {"value": bad})["content"]["data"]["state"]["value"]
    # the widget manager's answer with every model's state (it builds models from model_name there)
    states = {"m1": {"model_name": "HTMLModel", "model_module": "@jupyter-widgets/controls", "state": {"value": bad}}}
    _, msg = _comm(
        session, cleaner, "comm_msg", {"comm_id": "ctl", "data": {"method": "update_states", "states": states}}
    )
    assert "onerror" not in msg["content"]["data"]["states"]["m1"]["state"]["value"]
    states = {"m2": {"model_name": "VueModel", "model_module": "jupyter-vue", "state": {}}}
    frames = _frames(session, "comm_msg", {"comm_id": "ctl", "data": {"method": "update_states", "states": states}})
    assert cleaner.frames(frames) == []


def test_help_links_go_only_to_web_pages():
    session = Session(key=KEY)
    links = [{"text": "docs", "url": "https://docs.python.org"}, {"text": "x", "url": "javascript:alert(1)"}]
    frames = _frames(session, "kernel_info_reply", {"status": "ok", "help_links": links, "banner": "b"})
    msg = _read(session, OutputPolicy().cleaner(KEY).frames(frames))
    assert msg["content"]["help_links"] == links[:1]


def test_widget_labels_lose_tex_links():
    state = {
        "_model_name": "LabelModel",
        "value": r"$\href{javascript:alert(1)}{x}$",
        "description": r"\url{javascript:x}",
    }
    assert clean_widget_state(state, False, frozenset())
    assert "\\href" not in state["value"] and "\\url" not in state["description"]
    slider = {"_model_name": "IntSliderModel", "value": 3, "description": "n"}
    assert not clean_widget_state(dict(slider), False, frozenset())


def test_svg_doctype_and_stylesheets_are_not_kept():
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><rect /></svg>'
    attlist = '<!DOCTYPE svg [<!ATTLIST svg onload CDATA "alert(1)">]>' + svg.replace("<rect />", "<rect/>")
    assert clean_svg(attlist) == (svg, True)  # the parser applied the default attribute: removed
    assert clean_svg('<?xml-stylesheet href="x.xsl"?>' + svg) == (svg, False)


def test_cleaning_is_idempotent_on_arbitrary_markup():
    rng = random.Random(27)
    alphabet = "<>/=\"' abcdefghijklmnopqrstuvwxyz!-?:;&#\\{}()[]$\n" + "scriptonerrorsvghrefjavascriptimg"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        for mime in ("text/html", "text/markdown", "image/svg+xml", "text/latex"):
            once, _ = clean_bundle({mime: text})
            assert clean_bundle(once) == (once, []), (mime, text)


def test_the_policy_is_configured_once_and_reached_through_the_backend():
    from traitlets.config import Config

    from jupyter_sandbox.backends.local import LocalBackend

    backend = LocalBackend(config=Config({"OutputPolicy": {"allow_mime_types": ["application/vnd.plotly.v1+json"]}}))
    bundle = {"application/vnd.plotly.v1+json": {"data": []}}
    assert backend.outputs.clean(bundle) == bundle
    frames = _frames(Session(key=KEY), "display_data", {"data": bundle})
    assert backend.outputs.cleaner(KEY).frames(frames) is frames
