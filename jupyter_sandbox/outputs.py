"""What comes out of a sandbox is untrusted: its outputs are made inert before they leave the server.

JupyterLab runs the scripts of outputs from a cell the user ran (they are "trusted"), with the
user's login: a sandbox that could display ``application/javascript``, HTML with an ``onerror``,
an SVG with ``<script>`` or an ``ipywidgets.HTML`` with either would run code on the host. So
every MIME bundle from a sandbox passes :func:`clean_bundle`: an allow-list of MIME types, HTML
cleaned by ``nh3`` (the Rust ``ammonia`` sanitizer), Markdown's raw HTML escaped, SVG cleaned as
XML. Widget messages pass :meth:`MessageCleaner.frames`. Whatever was removed is named in a short
note that starts with :data:`NOTE` and is put where JupyterLab will show it.

Two boundaries use this: the host relay of a sandbox's kernel (backends/kernel_relay.py, which
re-signs a changed message with the kernel's key) and the collector of REST executions
(core/collector.py). Cleaning a clean bundle again changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import xml.etree.ElementTree as ET
from html import escape as html_escape
from html import unescape as html_unescape
from typing import Any

import nh3
from traitlets import List, Unicode
from traitlets.config import LoggingConfigurable

log = logging.getLogger(__name__)

NOTE = "jupyter-sandbox removed"  # the browser tests look for exactly this phrase
HOW = "to view it, save it to a file in the sandbox and download it"

# Types that are data, or that JupyterLab renders without running anything they contain.
SAFE_MIME_TYPES = frozenset(
    {
        "text/plain",
        "text/html",
        "text/markdown",
        "text/latex",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/bmp",
        "image/svg+xml",
        "application/json",
        "application/pdf",
        "application/vnd.jupyter.widget-view+json",
        "application/vnd.dataresource+json",  # pandas' table schema: data for a table viewer
        "e2b/data",  # E2B's DataFrame columns and chart data (backends/programs/e2b_display.py): no
        "e2b/chart",  # renderer in a page runs them, E2B's SDK reads them as data
    }
)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_MODULES = frozenset({"@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"})
WIDGET_TARGETS = ("jupyter.widget", "jupyter.widget.control")


class OutputPolicy(LoggingConfigurable):
    """What a sandbox's outputs may carry into the user's page (config section ``OutputPolicy``)."""

    allow_mime_types = List(
        Unicode(),
        help="MIME types passed through unchanged besides the safe ones (plain text, cleaned HTML/Markdown/"
        "SVG, images, JSON, PDF, widget views). Each one listed lets code in a sandbox run whatever that "
        "type's renderer runs in the user's page (e.g. 'application/vnd.plotly.v1+json'): list only "
        "renderers you trust with untrusted data, never 'application/javascript'.",
    ).tag(config=True)
    allow_widget_modules = List(
        Unicode(),
        help="Widget model/view modules allowed besides ipywidgets' own (@jupyter-widgets/base, "
        "controls, output). A widget of another module is dropped: its front-end code may run what the "
        "sandbox sends it.",
    ).tag(config=True)

    def clean(self, data: Any) -> dict[str, Any]:
        return clean_bundle(data, frozenset(self.allow_mime_types))[0]

    def cleaner(self, signing_key: bytes | str) -> MessageCleaner:
        """A cleaner of one kernel's messages; ``signing_key`` is its HMAC key ('' when unsigned)."""
        return MessageCleaner(
            signing_key, frozenset(self.allow_mime_types), WIDGET_MODULES | set(self.allow_widget_modules)
        )


# -- HTML ----------------------------------------------------------------------------------
_TAGS = (set(nh3.ALLOWED_TAGS) - {"map", "area"}) | {"tfoot", "label", "font"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES["*"] = {"title", "style", "class", "id", "dir", "lang", "align", "valign", "width", "height"}
_ATTRIBUTES["font"] = {"color", "size", "face"}
_ATTRIBUTES["table"] = _ATTRIBUTES.get("table", set()) | {"border", "cellpadding", "cellspacing"}
_SCHEMES = {"http", "https", "mailto", "data"}
# layout and colour only: nothing that fetches (url()) or lifts an element over the page
_STYLE = {
    "color", "background-color", "text-align", "vertical-align", "font-weight", "font-style", "font-size",
    "font-family", "text-decoration", "white-space", "width", "height", "max-width", "max-height", "min-width",
    "min-height", "padding", "padding-left", "padding-right", "padding-top", "padding-bottom", "margin",
    "margin-left", "margin-right", "margin-top", "margin-bottom", "border", "border-left", "border-right",
    "border-top", "border-bottom", "border-color", "border-style", "border-width", "border-collapse",
    "border-spacing", "display", "line-height", "opacity",
}  # fmt: skip
# what a browser acts on: only kept by the reference pass, so that removing it is noticed
_ACTIVE_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "form", "input", "button",
                "textarea", "select", "link", "meta", "base", "svg", "math", "template", "portal", "noscript",
                "video", "audio", "source", "track", "map", "area", "xmp", "noembed"}  # fmt: skip
_ACTIVE_ATTRS = {"src", "href", "srcdoc", "action", "formaction", "data", "srcset", "background", "poster",
                 "http-equiv", "content", "xlink:href", "ping", "usemap"}  # fmt: skip
_ACTIVE_SCHEMES = _SCHEMES | {"javascript", "vbscript", "livescript", "file", "blob", "filesystem", "ftp", "about"}
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|bmp|svg\+xml)[;,]", re.I)
_RISKY_CSS = re.compile(r"url|@import|expression|image|behavior|binding|@font|src|\\|position", re.I)
_APP_CLASS = re.compile(r"^(jp|lm|p|mod|bp3)-", re.I)  # JupyterLab's own classes: its code acts on them
_TEX_ACTIVE = re.compile(r"\\(href|url|class|cssId|style|data|unicode|require|html)\b")


def _common_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "id":
        # pandas' Styler names its cells T_...; other ids could clobber names the page's code uses
        return value if re.fullmatch(r"T_[A-Za-z0-9_-]{1,200}", value) else None
    if attr == "class":
        return " ".join(c for c in value.split() if not _APP_CLASS.match(c)) or None
    return value


def _strict_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "src":  # an image's source fetches at once: only inline images
        return value if _DATA_IMAGE.match(value.strip()) else None
    if attr == "href" and value.strip().lower().startswith("data:"):
        return None
    return _common_filter(tag, attr, value)


def _nh3(text: str, strict: bool) -> str:
    if strict:
        return nh3.clean(
            text,
            tags=_TAGS,
            # <style> applies to the whole page (pandas' "scoped" one too): dropped, unnoticed
            clean_content_tags={
                "script",
                "style",
                "iframe",
                "object",
                "embed",
                "noscript",
                "template",
                "textarea",
                "xmp",
            },
            attributes=_ATTRIBUTES,
            attribute_filter=_strict_filter,
            url_schemes=_SCHEMES,
            filter_style_properties=_STYLE,
        )
    return nh3.clean(
        text,
        tags=_TAGS | _ACTIVE_TAGS,
        clean_content_tags={"style"},
        attributes={**_ATTRIBUTES, "*": _ATTRIBUTES["*"] | _ACTIVE_ATTRS},
        generic_attribute_prefixes={"on"},
        attribute_filter=_common_filter,
        url_schemes=_ACTIVE_SCHEMES,
        filter_style_properties=_STYLE,
    )


def _inert_tex(text: str) -> str:
    # MathJax typesets HTML and Markdown too; these commands make links or set classes and styles
    return _TEX_ACTIVE.sub(r"\1", text)


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
# elements that nest nothing or close themselves: not counted in a depth (an overestimate is fine)
_FLAT = {"br", "img", "hr", "wbr", "input", "meta", "link", "col", "area", "base", "source", "track", "embed",
         "param", "p", "li", "td", "th", "tr", "dt", "dd", "option", "thead", "tbody", "tfoot"}  # fmt: skip
MAX_DEPTH = 256


def _too_deep(text: str) -> bool:
    """Whether the markup nests deeper than MAX_DEPTH: the HTML parser's time grows with depth
    times size (100,000 nested <div>s, 600 KB, took 45 s), and no table or plot nests that deep."""
    depth = 0
    for close, tag in _TAG.findall(text):
        if tag.lower() in _FLAT:
            continue
        depth = max(0, depth - 1) if close else depth + 1
        if depth > MAX_DEPTH:
            return True
    return False


def clean_html(text: str) -> tuple[str, bool]:
    """The HTML without anything a browser would run or fetch; True if something active was removed."""
    if _too_deep(text):
        return "", True
    try:
        cleaned = _nh3(text, strict=True)
        # a second, permissive pass keeps what is active: a difference is something removed
        active = cleaned != _nh3(text, strict=False)
    except BaseException as e:  # ammonia's panics arrive as pyo3's PanicException, a BaseException
        if type(e).__name__ != "PanicException":
            raise
        return "", True
    return _inert_tex(cleaned), active or _TEX_ACTIVE.search(text) is not None


# -- Markdown ------------------------------------------------------------------------------
_MD_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>?")
_MD_START = re.compile(
    r"<([A-Za-z][A-Za-z0-9]*)((?:\s+[A-Za-z_:][-A-Za-z0-9_:.]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*/?>"
)
_MD_END = re.compile(r"</([A-Za-z][A-Za-z0-9]*)\s*>")
_MD_ATTR = re.compile(r"([A-Za-z_:][-A-Za-z0-9_:.]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?")
_MD_LINK = re.compile(r"(\]\(\s*)(<[^>\n]*>|[^\s)]+)")
_MD_REF = re.compile(r"^( {0,3}\[[^\]\n]+\]:\s*)(<[^>\n]*>|\S+)", re.M)
_MD_TAGS = _TAGS


def _safe_url(url: str) -> bool:
    url = re.sub(r"[\x00-\x20]", "", html_unescape(url)).lower()
    scheme = re.match(r"^([a-z][a-z0-9+.-]*):", url)
    return scheme is None or scheme.group(1) in ("http", "https", "mailto") or bool(_DATA_IMAGE.match(url))


def _md_tag_ok(token: str) -> bool:
    end = _MD_END.fullmatch(token)
    if end:
        return end.group(1).lower() in _MD_TAGS
    start = _MD_START.fullmatch(token)
    if not start or start.group(1).lower() not in _MD_TAGS:
        return False
    tag = start.group(1).lower()
    for name, value in _MD_ATTR.findall(start.group(2)):
        name = name.lower()
        if name not in _ATTRIBUTES["*"] | _ATTRIBUTES.get(tag, set()) or name in ("style", "id", "class"):
            return False
        value = value.strip("\"'")
        if name in ("href", "src", "cite") and (
            not _safe_url(value) or (name == "src" and not _DATA_IMAGE.match(value))
        ):
            return False
    return True


def clean_markdown(text: str) -> tuple[str, bool]:
    """Markdown whose raw HTML is shown as text unless it is a plain tag with plain attributes, and
    whose links go nowhere but http(s)/mailto; plain Markdown comes back unchanged."""
    changed = False

    def tag(match: re.Match[str]) -> str:
        nonlocal changed
        token: str = match.group(0)
        if _md_tag_ok(token):
            return token
        changed = True
        return html_escape(token, quote=False)

    def link(match: re.Match[str]) -> str:
        nonlocal changed
        label: str = match.group(1)
        whole: str = match.group(0)
        if _safe_url(match.group(2).strip("<>")):
            return whole
        changed = True
        return label + "#"

    text = _MD_TAG.sub(tag, text)
    text = _MD_REF.sub(link, _MD_LINK.sub(link, text))
    if _TEX_ACTIVE.search(text):
        text, changed = _inert_tex(text), True
    return text, changed


# -- SVG -----------------------------------------------------------------------------------
SVG_NS, XLINK_NS, XML_NS = (
    "http://www.w3.org/2000/svg",
    "http://www.w3.org/1999/xlink",
    "http://www.w3.org/XML/1998/namespace",
)
ET.register_namespace("", SVG_NS)  # serialized as the default namespace, as SVG files are
ET.register_namespace("xlink", XLINK_NS)
_SVG_TAGS = {
    "svg", "g", "defs", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "textPath", "title", "desc", "use", "symbol", "clipPath", "mask", "pattern", "marker", "linearGradient",
    "radialGradient", "stop", "image", "style", "filter", "feGaussianBlur", "feOffset", "feBlend",
    "feColorMatrix", "feFlood", "feComposite", "feMerge", "feMergeNode", "feMorphology", "feComponentTransfer",
    "feFuncR", "feFuncG", "feFuncB", "feFuncA", "feDropShadow", "switch",
}  # fmt: skip
_SVG_QUIET = {"metadata"}  # dropped without a note: nothing active, and not drawn
_URL_REF = re.compile(r"url\s*\(\s*(?!['\"]?#)", re.I)


def _svg_attr_ok(tag: str, name: str, value: str) -> bool:
    local = name.rsplit("}", 1)[-1].lower()
    if local.startswith("on"):
        return False
    if local == "href":
        value = value.strip()
        return value.startswith("#") or (tag == "image" and bool(_DATA_IMAGE.match(value)) and "svg" not in value[:20])
    squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
    return (
        "javascript:" not in squeezed
        and not _URL_REF.search(value)
        and not (local == "style" and _RISKY_CSS.search(value.replace("url(#", "")))
    )


def clean_svg(text: str) -> tuple[str | None, bool]:
    """The SVG without script, foreignObject, event handlers, animations or links out of the
    document; None if it is not an SVG document."""
    if "<!ENTITY" in text:
        return None, True
    try:
        root = ET.fromstring(text.encode("utf-8", "surrogatepass"))
    except (ET.ParseError, ValueError):
        return None, True
    namespaced = root.tag.startswith("{")
    if root.tag.rsplit("}", 1)[-1] != "svg" or (namespaced and root.tag != f"{{{SVG_NS}}}svg"):
        return None, True
    active = quiet = False

    def walk(element: ET.Element) -> None:
        nonlocal active, quiet
        for child in list(element):
            ns, _, local = child.tag.rpartition("}")
            if (ns.lstrip("{") != SVG_NS if namespaced else ns) or local not in _SVG_TAGS:
                element.remove(child)
                if local in _SVG_QUIET or not isinstance(child.tag, str):
                    quiet = True
                else:
                    active = True
                continue
            if local == "style" and _RISKY_CSS.search(child.text or ""):
                element.remove(child)
                active = True
                continue
            attributes(child, local)
            walk(child)

    def attributes(element: ET.Element, local: str) -> None:
        nonlocal active, quiet
        for name, value in list(element.attrib.items()):
            if not _svg_attr_ok(local, name, value):
                del element.attrib[name]
                active = True
            elif name.startswith("{") and name[1:].split("}")[0] not in (XLINK_NS, XML_NS):
                del element.attrib[name]  # an editor's own (inkscape:label): not drawn
                quiet = True

    # a DOCTYPE (its ATTLIST can add attributes) or a processing instruction (a stylesheet) is not kept
    quiet = re.search(r"<!DOCTYPE|<\?(?!xml\s)", text, re.I) is not None
    attributes(root, "svg")
    try:
        walk(root)
        if not (active or quiet):
            return text, False  # untouched: byte for byte what the sandbox sent
        out = ET.tostring(root, encoding="unicode")
    except RecursionError:  # nested deeper than any drawing
        return None, True
    return out, active


# -- bundles -------------------------------------------------------------------------------
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def _text(value: Any) -> str | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)  # nbformat's multiline strings
    return value if isinstance(value, str) else None


MAX_CHECKED = 4 << 20  # characters of markup checked per output; a bigger one is removed (time grows with size)


def _clean_value(mime: str, value: Any) -> tuple[Any, bool]:
    """(the value to keep or None, whether something active was taken out of it)."""
    if mime in ("text/html", "text/markdown", "image/svg+xml") and len(_text(value) or "") > MAX_CHECKED:
        return None, True
    if mime in ("text/plain", "text/latex"):
        text = _text(value)
        if text is not None and mime == "text/latex" and _TEX_ACTIVE.search(text):
            return _inert_tex(text), True
        return text, False
    if mime == "text/html":
        text = _text(value)
        return clean_html(text) if text is not None else (None, True)
    if mime == "text/markdown":
        text = _text(value)
        return clean_markdown(text) if text is not None else (None, True)
    if mime == "image/svg+xml":
        text = _text(value)
        return clean_svg(text) if text is not None else (None, True)
    if mime in IMAGE_TYPES or mime == "application/pdf":
        text = _text(value)
        ok = text is not None and _BASE64.fullmatch(text) is not None
        return (text, False) if ok else (None, True)
    if mime == WIDGET_VIEW:
        if not isinstance(value, dict) or not isinstance(value.get("model_id"), str):
            return None, True
        view = {"model_id": value["model_id"][:200]}
        view.update({k: value[k] for k in ("version_major", "version_minor") if isinstance(value.get(k), int)})
        return view, view != value
    return value, False  # JSON data: shown by a viewer, never run


def _note(removed: list[str]) -> str:
    return f"{NOTE} active content from this output ({', '.join(sorted(set(removed)))}); {HOW}"


def clean_bundle(data: Any, allow: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[str]]:
    """A MIME bundle whose renderers run nothing from it, and the types whose active parts were
    removed (named, with how to see them, in a note JupyterLab will show)."""
    if not isinstance(data, dict):
        return {"text/plain": _note(["a malformed bundle"])}, ["a malformed bundle"]
    out: dict[str, Any] = {}
    removed: list[str] = []
    for mime, value in data.items():
        if not isinstance(mime, str):
            continue
        if mime in allow:
            out[mime] = value
            continue
        if mime not in SAFE_MIME_TYPES:
            removed.append(mime[:100])
            continue
        kept, active = _clean_value(mime, value)
        if active:
            removed.append(mime)
        if kept is not None:
            out[mime] = kept
    if removed:
        _add_note(out, _note(removed))
    return out, removed


def _add_note(out: dict[str, Any], note: str) -> None:
    """The note goes into the type JupyterLab will show (it shows the richest one)."""
    small = f"<p><small><em>{html_escape(note)}</em></small></p>\n"
    if "text/html" in out:
        out["text/html"] = small + out["text/html"]
    elif "text/markdown" in out:
        out["text/markdown"] = f"*{note}*\n\n" + out["text/markdown"]
    elif "text/latex" in out:
        out["text/latex"] = f"{note}\n" + out["text/latex"]  # text outside $...$ is shown as text
    else:
        image = next((m for m in (*IMAGE_TYPES, "image/svg+xml") if m in out), None)
        if image == "image/svg+xml":
            svg = base64.b64encode(out[image].encode("utf-8", "surrogatepass")).decode()
            out["text/html"] = f'{small}<img src="data:image/svg+xml;base64,{svg}">'
        elif image is not None:
            out["text/html"] = f'{small}<img src="data:{image};base64,{"".join(out[image].split())}">'
        plain = out.get("text/plain")
        out["text/plain"] = f"[{note}]\n" + (plain if isinstance(plain, str) else "")


# -- widgets -------------------------------------------------------------------------------
HTML_MODELS = ("HTMLModel", "HTMLMathModel")
HTML_VIEWS = ("HTMLView", "HTMLMathView")  # their update() sets innerHTML from the model's value


def renders_html(state: dict[str, Any]) -> bool:
    """Whether a widget state says its value may be shown as HTML (by its model's or view's name)."""
    return state.get("_model_name") in HTML_MODELS or state.get("_view_name") in HTML_VIEWS


def clean_widget_state(state: dict[str, Any], html: bool | None, allow: frozenset[str]) -> bool:
    """Make one widget model's state inert in place; True if something changed. ``html``: whether the
    model's value is shown as HTML (None: not known, so a string value with markup is cleaned)."""
    changed = False
    if state.get("description_allow_html"):
        state["description_allow_html"] = False  # the description is then shown as text
        changed = True
    value = state.get("value")
    if isinstance(value, str) and (html or renders_html(state) or (html is None and "<" in value)):
        cleaned, active = clean_html(value)
        if active:
            cleaned = f"<p><small><em>{html_escape(_note(['widget HTML']))}</em></small></p>\n{cleaned}"
        if cleaned != value:
            state["value"], changed = cleaned, True
    for key in ("description", "value"):  # labels and descriptions are typeset by MathJax
        text = state.get(key)
        if isinstance(text, str) and _TEX_ACTIVE.search(text):
            state[key], changed = _inert_tex(text), True
    # tooltip / description_tooltip need nothing: ipywidgets sets them as a title attribute (text)
    outputs = state.get("outputs")  # an Output widget's outputs: bundles like any other
    if isinstance(outputs, list):
        for output in outputs:
            if isinstance(output, dict) and "data" in output:
                cleaned_data, removed = clean_bundle(output["data"], allow)
                if removed or cleaned_data != output["data"]:
                    output["data"], changed = cleaned_data, True
    return changed


def _blank(parts: list[bytes]) -> list[bytes]:
    """A message whose content could not be read, with its content emptied: a browser's decoder may
    read what ours refused. Its signature is left as it was, so a reader that checks it (jupyter_client)
    refuses the message as it would have, and the execution ends with that error."""
    i = parts.index(b"<IDS|MSG>")
    return [*parts[: i + 5], b"{}", *parts[i + 6 :]]


_MAY_HOLD_BUNDLE = re.compile(rb"[/\\\\]")  # every MIME type has a "/" (or hides it in an escape)


class MessageCleaner:
    """Cleans one kernel's messages as ZMQ frames on their way from the sandbox to the host.

    Messages of other types pass as the same list, after a look at the header's bytes: a status
    or a stream decodes no JSON here. A changed message is signed again with the kernel's key
    when its signature was right; a forged one is cleaned all the same and keeps its wrong
    signature (JupyterLab's v1 websocket protocol passes frames on without checking it).
    """

    RISKY = (b"display_data", b"execute_result", b"comm_open", b"comm_msg", b"execute_reply", b"inspect_reply",
             b"debug_reply", b"kernel_info_reply")  # fmt: skip
    TYPES = ("display_data", "execute_result", "update_display_data", "comm_open", "comm_msg", "execute_reply",
             "inspect_reply", "debug_reply", "kernel_info_reply")  # fmt: skip
    MAX_COMMS = 10_000

    def __init__(
        self, signing_key: bytes | str, allow: frozenset[str] = frozenset(), modules: frozenset[str] = WIDGET_MODULES
    ):
        self.signing_key = signing_key.encode() if isinstance(signing_key, str) else signing_key
        self.allow = allow
        self.modules = frozenset(modules)
        self._html: dict[str, bool] = {}  # widget comm id -> whether its value may be shown as HTML

    def frames(self, parts: list[bytes]) -> list[bytes]:
        """The frames to pass on: the same list when nothing changed, none to drop the message (a comm
        of a front end that is not allowed)."""
        try:
            return self._frames(parts)
        except Exception as e:  # e.g. JSON nested past the recursion limit: never an error in the relay
            log.debug("kernel message the output cleaner could not read: %r", e)
            return _blank(parts)

    def _frames(self, parts: list[bytes]) -> list[bytes]:
        try:
            i = parts.index(b"<IDS|MSG>")
        except ValueError:
            return parts  # not a Jupyter message: no consumer will read it as one
        if len(parts) < i + 6:
            return parts
        header, content_frame = parts[i + 2], parts[i + 5]
        risky = [name for name in self.RISKY if name in header]
        if b"\\" not in header and (
            not risky or (risky == [b"execute_reply"] and not _MAY_HOLD_BUNDLE.search(content_frame))
        ):
            return parts  # the hot path: a status, a stream, a reply with no MIME type in it
        try:
            msg_type = json.loads(header).get("msg_type")
            content = json.loads(content_frame) if msg_type in self.TYPES else None
        except (ValueError, AttributeError):
            return _blank(parts)
        if msg_type not in self.TYPES:
            return parts
        if not isinstance(content, dict):
            return _blank(parts)
        outcome = self.content(msg_type, content)
        if outcome is None:
            return []
        if not outcome:
            return parts
        new = [*parts[: i + 5], json.dumps(content, ensure_ascii=True).encode(), *parts[i + 6 :]]
        if hmac.compare_digest(self._sign(parts[i + 2 : i + 6]), parts[i + 1]):
            new[i + 1] = self._sign(new[i + 2 : i + 6])
        # else: a forged message keeps its wrong signature (the sandbox gets no valid one from us),
        # and is cleaned all the same for a reader that does not check it
        return new

    def _sign(self, frames: list[bytes]) -> bytes:
        if not self.signing_key:
            return b""
        mac = hmac.new(self.signing_key, digestmod=hashlib.sha256)
        for frame in frames:
            mac.update(frame)
        return mac.hexdigest().encode()

    def content(self, msg_type: str, content: dict[str, Any]) -> bool | None:
        """Clean a message's content in place: True if it changed, None to drop the message."""
        if msg_type in ("display_data", "execute_result", "update_display_data", "inspect_reply"):
            if "data" not in content:
                return False
            data, removed = clean_bundle(content["data"], self.allow)
            changed = bool(removed) or data != content["data"]
            content["data"] = data
            return changed
        if msg_type == "kernel_info_reply":
            # JupyterLab's Help menu opens these with window.open: a javascript: one runs in the page
            links = content.get("help_links")
            if not isinstance(links, list):
                return False
            kept = [
                link
                for link in links
                if isinstance(link, dict)
                and isinstance(link.get("url"), str)
                and re.match(r"https?://", link["url"].strip(), re.I)
            ]
            content["help_links"] = kept
            return kept != links
        if msg_type in ("execute_reply", "debug_reply"):
            # a "page" payload is shown as an output; the debugger shows a variable's rich view
            body = content.get("body")
            holders = [
                *(content.get("payload") or []),
                *(content.get("user_expressions") or {}).values(),
                *([body] if isinstance(body, dict) else []),
            ]
            changed = False
            for item in holders:
                if isinstance(item, dict) and "data" in item:
                    data, removed = clean_bundle(item["data"], self.allow)
                    changed = changed or bool(removed) or data != item["data"]
                    item["data"] = data
            return changed
        return self._comm(msg_type, content)

    def _comm(self, msg_type: str, content: dict[str, Any]) -> bool | None:
        comm_id = content.get("comm_id")
        data = content.get("data")
        if not isinstance(comm_id, str) or not isinstance(data, dict):
            return False
        if msg_type == "comm_open":
            if content.get("target_name") not in WIDGET_TARGETS:
                return None  # another front-end's comm (e.g. a plotting library's) may run what it gets
            self._html.pop(comm_id, None)  # a new comm under this id: a new model
        changed = False
        state = data.get("state")
        if isinstance(state, dict):
            if not self._module_ok(state):
                return None
            changed = clean_widget_state(state, self._claim(comm_id, state, msg_type == "comm_open"), self.allow)
        states = data.get("states")  # jupyter.widget.control's answer: every model's state, by model id
        if isinstance(states, dict):
            for model_id, one in states.items():
                inner = one.get("state") if isinstance(one, dict) else None
                if not isinstance(inner, dict):
                    continue
                # the front end makes the model from model_name/model_module here, not from the state
                named = {"_model_name": one.get("model_name"), "_model_module": one.get("model_module")}
                if not self._module_ok(inner) or not self._module_ok(named):
                    return None
                html = self._claim(str(model_id), {**inner, **named}, False) or renders_html(named)
                changed = clean_widget_state(inner, html, self.allow) or changed
        return changed

    def _claim(self, comm_id: str, state: dict[str, Any], opened: bool) -> bool | None:
        """Whether this widget may show its value as HTML: once any message says so, it stays so
        (a later state cannot talk the relay out of it); None for a widget whose opening was not seen."""
        html = renders_html(state)
        if opened:
            if len(self._html) < self.MAX_COMMS:
                self._html[comm_id] = html
            return html
        if html and comm_id in self._html:
            self._html[comm_id] = True
        return True if html else self._html.get(comm_id)

    def _module_ok(self, state: dict[str, Any]) -> bool:
        return all(
            not isinstance(state.get(key), str) or state[key] in self.modules
            for key in ("_model_module", "_view_module")
        )


DEFAULT = OutputPolicy()
