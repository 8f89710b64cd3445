"""The Kubernetes deployment files (deploy/kubernetes/) and the backend's manifests, without a cluster:
valid against the API's OpenAPI schemas (kubernetes-validate, strict, its newest Kubernetes version),
Pod Security "restricted" (tests/k8s/pod_security.py), the Role granting exactly the backend's calls,
the z2jh snippet agreeing with the manifests and with the Hub example (docs/jupyterhub.md), and
docs/kubernetes.md showing the Role and the pod spec as they are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from traitlets.config import Config, Configurable

from jupyter_sandbox.backends import backend_class
from jupyter_sandbox.backends.base import LABEL_PREFIX, labels
from jupyter_sandbox.backends.kubernetes_doctor import DOCTOR_CALLS
from jupyter_sandbox.backends.kubernetes_pods import API_CALLS, PodSettings, sandbox_network_policy, sandbox_pod
from jupyter_sandbox.core.manager import SandboxManager
from jupyter_sandbox.models import SandboxSpec
from jupyter_sandbox.server.app import SandboxApp
from jupyter_sandbox.service import ADMIN_SCOPE

from k8s.pod_security import violations

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"
NOT_MANIFESTS = {"kustomization.yaml", "z2jh-config.yaml"}
VERSION = kubernetes_validate.latest_version()
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}

MAXIMAL = PodSettings(
    namespace="jupyter-sandbox-pods",
    runtime_class_name="gvisor",
    runtime_classes={"runc": "", "runsc": "gvisor", "kata": "kata"},
    node_selector={"sandbox.jupyter.org/node": "true"},
    tolerations=[{"key": "sandbox", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
    affinity={
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "jupyter-sandbox"}},
                    },
                }
            ]
        },
    },
    image_pull_secrets=["registry-key"],
    priority_class_name="sandbox-low",
    extra_labels={"team": "data"},
)
SPEC = SandboxSpec(memory=512 * 1024**2, disk=128 * 1024**2, cpus=1.0, env={"A": "1"})


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(DEPLOY.glob("*.yaml"))
        if path.name not in NOT_MANIFESTS
        for doc in documents(path.name)
    ]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for _, doc in manifests() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {DEPLOY}"
    return found[0]


def backend_manifests() -> list[tuple[str, dict[str, Any]]]:
    owner = labels("server1", "alice", sandbox="abc123")
    return [
        ("pod default", sandbox_pod("abc123", SandboxSpec(), owner, PodSettings())),
        ("pod maximal", sandbox_pod("abc123", SPEC, owner, MAXIMAL)),
        ("pod maximal, kata", sandbox_pod("abc123", SandboxSpec(runtime="kata"), owner, MAXIMAL)),
        ("policy default", sandbox_network_policy("abc123", SandboxSpec(), PodSettings())),
        ("policy network", sandbox_network_policy("abc123", SandboxSpec(network=True), MAXIMAL, owner_uid="u-1")),
    ]


def test_the_newest_kubernetes_version_is_the_one_checked() -> None:
    assert [int(part) for part in VERSION.split(".")[:2]] >= [1, 33], VERSION


ALL = manifests() + backend_manifests()
PODS = [m for m in ALL if m[1]["kind"] in POD_KINDS]


def ids(items: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [f"{where}:{doc['kind']}:{doc['metadata'].get('name')}" for where, doc in items]


@pytest.mark.parametrize(("where", "manifest"), ALL, ids=ids(ALL))
def test_manifest_is_valid_against_the_api_schema(where: str, manifest: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(manifest, VERSION, strict=True) == ".".join(VERSION.split(".")[:2])


def test_strict_validation_can_fail() -> None:
    """The schema check sees an unknown field and a wrong type (else the test above proves nothing)."""
    pod = backend_manifests()[0][1]
    pod["spec"]["containers"][0]["securityContext"]["runAsNonroot"] = True  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, VERSION, strict=True)
    role = find("Role")
    role["rules"][0]["verbs"] = "get"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, VERSION, strict=True)


@pytest.mark.parametrize(("where", "manifest"), PODS, ids=ids(PODS))
def test_every_pod_passes_pod_security_restricted(where: str, manifest: dict[str, Any]) -> None:
    assert violations(manifest, "restricted") == []


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    shipped = {p.name for p in DEPLOY.glob("*.yaml")} - NOT_MANIFESTS
    assert sorted(kustomization["resources"]) == sorted(shipped)


def test_both_namespaces_enforce_restricted() -> None:
    namespaces = {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "Namespace"}
    for namespace in namespaces.values():
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # everything namespaced lands in one of them
    for name, doc in manifests():
        if doc["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] in namespaces, (name, doc["kind"])


def rules_as_calls(rules: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    out = []
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, no nonResourceURLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                main, _, sub = resource.partition("/")
                out += [(group, main, sub, verb) for verb in rule["verbs"]]
    assert "*" not in {part for call in out for part in call}, out
    return out


def test_the_role_grants_exactly_the_backends_calls() -> None:
    role = find("Role", "jupyter-sandbox")
    granted = rules_as_calls(role["rules"])
    assert len(granted) == len(set(granted)), "a call granted twice"
    assert sorted(granted) == sorted(API_CALLS)
    # in the sandboxes' namespace, the one the service is configured with, bound to its account
    config = service_config()
    assert role["metadata"]["namespace"] == config.KubernetesBackend.namespace
    binding = find("RoleBinding")
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "jupyter-sandbox"}
    account = find("ServiceAccount")
    subject = {
        "kind": "ServiceAccount",
        "name": account["metadata"]["name"],
        "namespace": account["metadata"]["namespace"],
    }
    assert binding["subjects"] == [subject]
    assert find("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == subject["name"]


def test_the_cluster_role_grants_only_the_doctors_runtime_class_read() -> None:
    assert sorted(rules_as_calls(find("ClusterRole")["rules"])) == sorted(DOCTOR_CALLS)
    binding = find("ClusterRoleBinding")
    assert binding["roleRef"]["name"] == find("ClusterRole")["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == [find("ServiceAccount")["metadata"]["name"]]


def service_config() -> Config:
    """The ConfigMap's jupyter_sandbox_service_config.py, run as Jupyter runs a config file."""
    source = find("ConfigMap")["data"]["jupyter_sandbox_service_config.py"]
    config = Config()
    exec(compile(source, "jupyter_sandbox_service_config.py", "exec"), {"get_config": lambda: config})
    return config


def test_the_service_config_selects_the_kubernetes_backend() -> None:
    config = service_config()
    assert config.SandboxApp.backend == "kubernetes"
    deployment = find("Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in deployment["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["volumes"]}
    # the config file is where the service's Jupyter config path looks, and its state dir is writable
    assert volumes["config"]["configMap"]["name"] == find("ConfigMap")["metadata"]["name"]
    assert mounts["config"] == "/etc/jupyter"
    assert config.SandboxApp.state_dir in mounts.values()


def configurables() -> dict[str, type[Configurable]]:
    return {cls.__name__: cls for cls in (SandboxApp, SandboxManager, backend_class("kubernetes"))}


def test_the_service_config_and_the_docs_name_only_settings_that_exist() -> None:
    classes = configurables()
    for section, values in service_config().items():
        traits = classes[section].class_traits(config=True)
        assert set(values) <= set(traits), (section, set(values) - set(traits))
    named = set(re.findall(r"\bc\.(\w+)\.(\w+)", (ROOT / "docs" / "kubernetes.md").read_text()))
    assert named, "docs/kubernetes.md names no setting"
    for section, name in named:
        assert name in classes[section].class_traits(config=True), f"c.{section}.{name}"


def env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def example_hub_config() -> Config:
    """examples/jupyterhub/jupyterhub_config.py as the Hub loads it."""
    path = ROOT / "examples" / "jupyterhub" / "jupyterhub_config.py"
    config = Config()
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: config, "__file__": str(path)})
    return config


def test_the_z2jh_snippet_agrees_with_the_manifests() -> None:
    z2jh = yaml.safe_load((DEPLOY / "z2jh-config.yaml").read_text())
    deployment, service, secret = find("Deployment"), find("Service"), find("Secret")
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local:{port}"
    sandbox = z2jh["hub"]["services"]["sandbox"]
    assert sandbox["url"] == url
    assert sandbox["apiToken"] == next(iter(secret["stringData"].values()))
    variables = env(deployment)
    assert variables["JUPYTERHUB_SERVICE_NAME"] == "sandbox"
    prefix = variables["JUPYTERHUB_SERVICE_PREFIX"]
    assert prefix == "/services/sandbox/"
    assert z2jh["singleuser"]["extraEnv"]["JUPYTER_SANDBOX_SERVICE_URL"] == url + prefix
    assert variables["JUPYTERHUB_API_TOKEN"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    # the service listens on the container port its Service targets
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    target = {p["name"]: p["containerPort"] for p in container["ports"]}[service["spec"]["ports"][0]["targetPort"]]
    assert variables["JUPYTERHUB_SERVICE_URL"] == f"http://0.0.0.0:{target}"
    # the Hub's namespace: where the API URL points and where the service's NetworkPolicy admits from
    hub_namespace = re.match(r"http://hub\.([a-z0-9-]+)\.svc", variables["JUPYTERHUB_API_URL"])
    assert hub_namespace is not None
    policy = find("NetworkPolicy", "jupyter-sandbox-service")
    source = policy["spec"]["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == hub_namespace.group(1)
    # the selectors of the policies (ours and z2jh's egress rules) pick the service's pods
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    for rule in (z2jh["singleuser"]["networkPolicy"]["egress"][0], z2jh["proxy"]["chp"]["networkPolicy"]["egress"][0]):
        to = rule["to"][0]
        assert to["podSelector"]["matchLabels"].items() <= pod_labels.items()
        assert (
            to["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == deployment["metadata"]["namespace"]
        )
        assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
    # z2jh's hub admits the service's pod from its namespace by label
    assert z2jh["hub"]["networkPolicy"]["interNamespaceAccessLabels"] == "accept"
    namespace = find("Namespace", deployment["metadata"]["namespace"])
    assert namespace["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    assert pod_labels["hub.jupyter.org/network-access-hub"] == "true"


def test_the_z2jh_snippet_grants_what_the_hub_example_grants() -> None:
    """Roles, scopes and the admin scope as in examples/jupyterhub/jupyterhub_config.py (docs/jupyterhub.md)."""
    z2jh = yaml.safe_load((DEPLOY / "z2jh-config.yaml").read_text())
    example = example_hub_config()
    example_roles = {role["name"]: role for role in example.JupyterHub.load_roles}
    for name, role in z2jh["hub"]["loadRoles"].items():
        assert sorted(role["scopes"]) == sorted(example_roles[name]["scopes"]), name
        assert role.get("services", []) == example_roles[name].get("services", []), name
    assert set(z2jh["hub"]["loadRoles"]) == set(example_roles)
    hub_config = z2jh["hub"]["config"]
    assert hub_config["Spawner"]["server_token_scopes"] == example.Spawner.server_token_scopes
    assert set(hub_config["JupyterHub"]["custom_scopes"]) == {ADMIN_SCOPE} == set(example.JupyterHub.custom_scopes)
    (service,) = example.JupyterHub.services
    assert z2jh["hub"]["services"]["sandbox"]["oauth_no_confirm"] is service["oauth_no_confirm"] is True
    access = f"access:services!service={service['name']}"
    assert json.loads(env(find("Deployment"))["JUPYTERHUB_OAUTH_ACCESS_SCOPES"]) == [access]


# -- docs/kubernetes.md shows these as they are -------------------------------------------------
DOC = ROOT / "docs" / "kubernetes.md"
DOC_SANDBOX = "3f9c2a7e"
DOC_SETTINGS = PodSettings(namespace="jupyter-sandbox-pods", runtime_class_name="gvisor")
DOC_LABELS = {
    f"{LABEL_PREFIX}.managed": "true",
    f"{LABEL_PREFIX}.server": "service-1",
    f"{LABEL_PREFIX}.owner": "alice",
    f"{LABEL_PREFIX}.uid": "1000",
    f"{LABEL_PREFIX}.host": "jupyter-sandbox-5d8f7",
    f"{LABEL_PREFIX}.sandbox": DOC_SANDBOX,
}


class DocDumper(yaml.SafeDumper):
    """Block style, but a list of plain values on one line (as kubectl users write verbs)."""

    def represent_list(self, data: list[Any]) -> yaml.Node:
        flow = bool(data) and all(
            isinstance(item, (int, float)) or (isinstance(item, str) and "\n" not in item) for item in data
        )
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    def represent_text(self, data: str) -> yaml.Node:
        """A program (the pod's PID 1) as its lines."""
        return self.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


DocDumper.add_representer(list, DocDumper.represent_list)
DocDumper.add_representer(str, DocDumper.represent_text)


def doc_blocks() -> dict[str, str]:
    """What each generated block of docs/kubernetes.md holds (``<!-- generated: NAME -->``)."""

    def dump(manifest: dict[str, Any]) -> str:
        return yaml.dump(manifest, Dumper=DocDumper, sort_keys=False, width=100)

    return {
        "role": dump(find("Role", "jupyter-sandbox")),
        "pod": dump(sandbox_pod(DOC_SANDBOX, SandboxSpec(), DOC_LABELS, DOC_SETTINGS)),
        "network-policy": dump(sandbox_network_policy(DOC_SANDBOX, SandboxSpec(network=True), DOC_SETTINGS)),
    }


BLOCK = re.compile(r"<!-- generated: ([a-z-]+) -->\n```yaml\n(.*?)```\n", re.S)


def write_doc_blocks() -> None:
    """Rewrite the generated blocks of docs/kubernetes.md (``python tests/test_k8s_manifests.py``)."""
    blocks = doc_blocks()
    text = BLOCK.sub(lambda m: f"<!-- generated: {m[1]} -->\n```yaml\n{blocks[m[1]]}```\n", DOC.read_text())
    DOC.write_text(text)


def test_the_docs_show_the_role_and_the_pod_spec_as_they_are() -> None:
    shown = dict(BLOCK.findall(DOC.read_text()))
    expected = doc_blocks()
    assert set(shown) == set(expected)
    for name, text in expected.items():
        assert shown[name] == text, f"docs/kubernetes.md's {name} is stale: python tests/test_k8s_manifests.py"
    # what a reader copies is the manifest itself
    assert yaml.safe_load(shown["pod"]) == sandbox_pod(DOC_SANDBOX, SandboxSpec(), DOC_LABELS, DOC_SETTINGS)
    assert yaml.safe_load(shown["role"]) == find("Role", "jupyter-sandbox")


if __name__ == "__main__":
    write_doc_blocks()


def test_the_service_image_runs_as_the_deployment_says() -> None:
    """deploy/kubernetes/Dockerfile: the uid, port and command the Deployment relies on."""
    lines = [
        line.split(None, 1) for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line and line[0] != "#"
    ]
    final = lines[max(i for i, (word, _) in enumerate(lines) if word == "FROM") :]
    instructions = {word: rest.strip() for word, rest in final if word in ("USER", "EXPOSE", "CMD")}
    pod = find("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert instructions["USER"] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    assert int(instructions["EXPOSE"]) == container["ports"][0]["containerPort"]
    assert json.loads(instructions["CMD"]) == container["command"]
    # the extras it installs: the Hub service and the backend's client
    assert "[hub,kubernetes]" in (DEPLOY / "Dockerfile").read_text()
