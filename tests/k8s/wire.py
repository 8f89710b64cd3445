"""The Kubernetes API's wire rules the test server follows (pure functions, no I/O): request
attributes from a path (as the API server's RequestInfo), Status objects, quantities, label and
field selectors, RBAC rule matching. Written from the API reference
(https://kubernetes.io/docs/reference/using-api/api-concepts/) and the RBAC document."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """Answered as a Status object with this HTTP code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A metav1.Status of a failed request."""
    out: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        out["details"] = details
    return out


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        404, "NotFound", f'{qualified} "{name}" not found', {"name": name, "group": group, "kind": resource}
    )


def invalid(kind: str, name: str, field: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {field}: {message}',
        {"name": name, "kind": kind, "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}]},
    )


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)


def check_labels(kind: str, name: str, labels: Any, field: str = "metadata.labels") -> None:
    """422 unless ``labels`` is a map of valid label keys to valid values (as the API validates:
    63 characters at most, a DNS-subdomain prefix before a slash)."""
    if not isinstance(labels, dict):
        raise invalid(kind, name, field, "Invalid value: must be a map of strings")
    for key, value in labels.items():
        prefix, _, short = key.rpartition("/")
        if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
            raise invalid(
                kind,
                name,
                field,
                f'Invalid value: "{key}": a label key\'s prefix must be a lowercase RFC 1123 subdomain',
            )
        if len(short) > 63 or not _LABEL_NAME.match(short):
            raise invalid(
                kind, name, field, f'Invalid value: "{key}": a label key (63 characters at most) {_LABEL_RULE}'
            )
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            raise invalid(
                kind,
                name,
                field,
                f'Invalid value: "{value}": a label value must be empty or 63 characters at most and {_LABEL_RULE}',
            )


@dataclass(frozen=True)
class RequestInfo:
    """What a request is about, in RBAC's terms."""

    resource_request: bool
    verb: str
    path: str
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_info(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    """Parse ``/api/v1/namespaces/NS/pods/NAME/exec`` (and the /apis/GROUP/VERSION form) the way
    the API server does: the verb comes from the method, and for GET from name and ``watch``."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(False, method.lower(), path)
    if not rest:  # /api/v1, /apis/group/version: discovery
        return RequestInfo(False, method.lower(), path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[0] == "namespaces" and len(rest) == 2:
        namespace = rest[1]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        watching = query.get("watch", "").lower() in ("1", "true")
        verb = "watch" if watching else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return RequestInfo(True, verb, path, group, version, namespace, resource, subresource, name)


def rule_allows(
    rules: list[dict[str, Any]], group: str, resource: str, subresource: str, verb: str, name: str = ""
) -> bool:
    """Whether a Role's rules grant ``verb`` on ``resource[/subresource]`` of API ``group``."""
    full = f"{resource}/{subresource}" if subresource else resource
    for rule in rules:
        if not _match(rule.get("verbs", []), verb):
            continue
        if not _match(rule.get("apiGroups", []), group):
            continue
        if not _match(rule.get("resources", []), full):
            continue
        names = rule.get("resourceNames") or []
        if names and name not in names:
            continue
        return True
    return False


def _match(allowed: list[str], value: str) -> bool:
    return "*" in allowed or value in allowed


# Quantities: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
_SUFFIX = {
    "": 1,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|n|u|m|k|M|G|T)?$")


def quantity(value: str | int | float, field: str = "quantity") -> float:
    """A Kubernetes quantity (``512Mi``, ``500m``, ``1.5``) as a number."""
    if isinstance(value, (int, float)):
        return float(value)
    found = _QUANTITY.match(str(value).strip())
    if not found:
        raise invalid(
            "Pod", "", field, f'quantities must match the regular expression {_QUANTITY.pattern!r}: "{value}"'
        )
    return float(found.group(1)) * _SUFFIX[found.group(2) or ""]


# Label selectors: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/
_SET_OP = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a selector string (equality- and set-based terms)."""
    for term in _split_selector(selector):
        found = _SET_OP.match(term)
        if found:
            key, op, values = found.group(1), found.group(2), {v.strip() for v in found.group(3).split(",")}
            if (op == "in") != (key in labels and labels[key] in values):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_labels(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector object (matchLabels, matchExpressions) against ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def field_value(obj: dict[str, Any], field: str) -> str:
    value: Any = obj
    for part in field.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value)


FIELDS = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName"}


def field_selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    for term in _split_selector(selector):
        negate = "!=" in term
        key, value = (s.strip() for s in term.replace("==", "=").split("!=" if negate else "=", 1))
        if key not in FIELDS:
            raise ApiError(
                400, "BadRequest", f'"{key}" is not a known field selector: only "{", ".join(sorted(FIELDS))}"'
            )
        if (field_value(obj, key) == value) == negate:
            return False
    return True
