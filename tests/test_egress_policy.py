"""What a sandbox's ``network`` may say (issue 23): the allow-list's shape, the server's defaults and
maxima (c.SandboxManager.network_allow_max and friends), and E2B's network rules mapped onto it."""

from __future__ import annotations

import pytest

from jupyter_sandbox.backends.docker import DockerBackend
from jupyter_sandbox.backends.local import LocalBackend
from jupyter_sandbox.core.spec_policy import SpecPolicy
from jupyter_sandbox.errors import InvalidInput
from jupyter_sandbox.models import SandboxSpec, egress_covers
from jupyter_sandbox.server.e2b_api import e2b_network


def policy(backend=None, **config) -> SpecPolicy:
    return SpecPolicy(backend=backend or DockerBackend(), allow_network=True, **config)


def test_true_and_false_are_as_before_and_a_dict_is_an_allow_list():
    p = policy()
    assert (p.resolve_spec({"network": True}).network, p.resolve_spec({"network": True}).egress) == (True, None)
    assert (p.resolve_spec({"network": False}).network, p.resolve_spec({}).egress) == (False, None)
    spec = p.resolve_spec({"network": {"allow": ["PyPI.org", "*.pythonhosted.org", "pypi.org"]}})
    assert spec.network and spec.egress == {"allow": ["pypi.org", "*.pythonhosted.org"], "deny": []}
    # a spec goes round (records, a pool's spec) unchanged
    assert p.resolve_spec(spec) == spec and SandboxSpec(**spec.to_dict()) == spec


@pytest.mark.parametrize(
    "bad", ["1.2.3.4", "10.0.0.0/8", "http://pypi.org", "pypi.org:443", "a..b", "*pypi.org", "*.*"]
)
def test_patterns_are_names(bad):
    with pytest.raises(InvalidInput, match="host names"):
        policy().resolve_spec({"network": {"allow": [bad]}})


def test_the_servers_maxima_and_defaults():
    most = ["pypi.org", "*.pythonhosted.org"]
    p = policy(network_allow_max=most)
    # `network: true` is filtered once there is a maximum: the maximum itself (or the default)
    assert p.resolve_spec({"network": True}).egress == {"allow": most, "deny": []}
    assert policy(network_allow_max=most, network_allow_default=["pypi.org"]).resolve_spec(
        {"network": True}
    ).egress == {
        "allow": ["pypi.org"],
        "deny": [],
    }
    assert p.resolve_spec({"network": {"allow": ["files.pythonhosted.org"]}}).egress["allow"] == [
        "files.pythonhosted.org"
    ]
    for beyond in (["github.com"], ["*"], ["pythonhosted.org"], ["*.org"]):
        with pytest.raises(InvalidInput, match="beyond what this server allows") as info:
            p.resolve_spec({"network": {"allow": beyond}})
        assert info.value.field == "network.allow"
    always = policy(network_deny_always=["evil.example"]).resolve_spec({"network": True}).egress
    assert always == {"allow": ["*"], "deny": ["evil.example"]}
    assert p.describe(1024).network_allow_max == most
    with pytest.raises(InvalidInput, match="does not allow sandboxes with network"):
        SpecPolicy(backend=DockerBackend(), network_allow_max=most).resolve_spec({"network": {"allow": ["pypi.org"]}})


def test_covers():
    assert egress_covers("*", "*") and egress_covers("*.a.org", "*.b.a.org") and egress_covers("*.a.org", "x.a.org")
    assert not egress_covers("*.a.org", "a.org") and not egress_covers("*.a.org", "*") and not egress_covers("a", "b")


def test_a_backend_without_a_proxy_refuses_an_allow_list():
    with pytest.raises(InvalidInput, match="cannot filter"):
        policy(LocalBackend()).resolve_spec({"network": {"allow": ["pypi.org"]}})
    assert policy(LocalBackend()).resolve_spec({"network": True}).egress is None


def test_e2b_network_rules():
    assert e2b_network(None, None) is None and e2b_network(True, None) is True and e2b_network(False, None) is False
    assert e2b_network(True, {"allowPublicTraffic": False}) is True
    assert e2b_network(True, {"allowOut": ["pypi.org"], "denyOut": ["0.0.0.0/0"]}) == {
        "allow": ["pypi.org"],
        "deny": [],
    }
    assert e2b_network(True, {"denyOut": ["0.0.0.0/0"]}) == {"allow": [], "deny": []}  # no way out
    assert e2b_network(True, {"allowOut": ["pypi.org"]}) is True  # nothing denied: everything, as E2B does
    assert e2b_network(False, {"allowOut": ["pypi.org"], "denyOut": ["0.0.0.0/0"]}) is False
    for rules, message in (
        ({"allowOut": ["8.8.8.8"]}, "is an address"),
        ({"denyOut": ["10.0.0.0/8"]}, "is an address"),
        ({"allowPublicTraffic": True}, "allow_public_traffic=False"),
        ({"maskRequestHost": "x"}, "network.maskRequestHost is not supported"),
        ({"allowOut": "pypi.org"}, "must be a list"),
    ):
        with pytest.raises(InvalidInput, match=message):
            e2b_network(True, rules)


def test_a_kernelspec_may_ask_for_an_allow_list():
    from jupyter_sandbox.kernel.provisioner import SandboxProvisioner
    from jupyter_sandbox.models import NetworkRules

    assert SandboxProvisioner(network={"allow": ["pypi.org"]})._spec().network == NetworkRules(allow=["pypi.org"])
    assert SandboxProvisioner(network=True)._spec().network is True
    assert SandboxProvisioner()._spec().network is None
    with pytest.raises(InvalidInput, match="unknown field"):
        SandboxProvisioner(network={"allowed": ["pypi.org"]})._spec()


def test_the_clis_allow_option_asks_for_an_allow_list(tmp_path):
    from test_cli import jupyter_sandbox

    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    env = {"JUPYTER_RUNTIME_DIR": str(tmp_path / "no-servers")}  # no server: an in-process manager answers
    answer = jupyter_sandbox("exec", "--allow", "pypi.org", "--allow", "10.0.0.1", str(script), env=env)
    assert answer.returncode != 0 and "network.allow takes host names" in answer.stderr, answer.stderr
    assert "'10.0.0.1'" in answer.stderr


def test_the_lists_network_column():
    from jupyter_sandbox.cli_list import network_text

    assert network_text({}) is None and network_text({"network": False}) == "none"
    assert network_text({"network": True, "egress": None}) == "on"
    assert network_text({"network": True, "egress": {"allow": ["pypi.org"], "deny": []}}) == "only pypi.org"
    assert network_text({"network": True, "egress": {"allow": [], "deny": ["x.org"]}}) == "only nothing; not x.org"
