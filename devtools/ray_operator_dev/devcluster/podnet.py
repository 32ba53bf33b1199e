"""The pod network of the real node: one Linux bridge, its CNI config, and the host
rules that keep every packet on this machine.

NETWORK RULE. Pod and node addresses live only in 198.18.0.0/15 (RFC 2544, reserved
for benchmarking, never routed on the internet), only in network namespaces this code
creates (through containerd's CNI call) plus the host end of its own bridge:

- the bridge `rayop0` holds 198.18.0.1/24, the node's address and the pods' gateway;
  the API server, the kubelet and CoreDNS listen there, nowhere else but loopback;
- pods get 198.18.0.16-254 and exactly one route, 198.18.0.0/15 via the bridge: no
  default route, so a pod has no way to address anything off this machine;
- Service IPs are 198.19.0.0/24 (kube-proxy rewrites them to pod or bridge addresses);
  on the host that range goes to the bridge and the rest of 198.18.0.0/15 is
  `unreachable`, so no packet for these ranges follows the host's default route;
- forwarding is switched on for the bridge only (never the host-wide `ip_forward`),
  and two FORWARD rules drop anything entering from the bridge for another interface or
  leaving to it from another one;
- no masquerade: our CNI config sets none, and kube-proxy's own rule (KUBE-POSTROUTING
  masquerades the packets it marked, e.g. hairpin traffic) never sees a packet of the
  range: `forbid_masquerade()` puts a RETURN for 198.18.0.0/15 first in nat POSTROUTING,
  above kube-proxy's jump, once kube-proxy made it (kube-proxy only adds its jump when
  it is missing, so the order holds). The price: a pod cannot reach itself through a
  ClusterIP Service (hairpin needs the rewrite); Ray pods reach themselves on
  localhost, and the head Service is headless.

One real-node cluster per machine: the bridge name is fixed and kube-proxy owns the
host's KUBE-* iptables chains. Creating the bridge is the lock (it fails if it exists).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

BRIDGE = "rayop0"
NODE_CIDR = "198.18.0.0/24"
HOST_IP = "198.18.0.1"  # the node's address, the pods' gateway, the API server's
POD_RANGE = ("198.18.0.16", "198.18.0.254")
RULE_RANGE = "198.18.0.0/15"  # everything the rule allows; pods route only this
SERVICE_CIDR = "198.19.0.0/24"
KUBERNETES_SERVICE_IP = "198.19.0.1"  # the first address of SERVICE_CIDR
CLUSTER_DNS_IP = HOST_IP  # CoreDNS runs on the host, bound to the bridge address
COMMENT = "ray-operator-devcluster"
FORWARD_RULES = (
    ["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP"],
    ["-o", BRIDGE, "!", "-i", BRIDGE, "-j", "DROP"],
)
HOST_ROUTES = (["unreachable", RULE_RANGE], [SERVICE_CIDR, "dev", BRIDGE])
NO_MASQUERADE = ["-s", RULE_RANGE, "-m", "comment", "--comment", COMMENT, "-j", "RETURN"]
KUBE_PROXY_JUMP = [
    "-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING",
]  # fmt: skip


class PodNetworkError(RuntimeError):
    pass


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise PodNetworkError(f"$ {' '.join(args)}: {result.stderr.strip()}")
    return result


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def kube_proxy_jump_installed() -> bool:
    """kube-proxy's jump from nat POSTROUTING to its masquerade chain exists."""
    return _run("iptables", "-t", "nat", "-C", "POSTROUTING", *KUBE_PROXY_JUMP,
                check=False).returncode == 0  # fmt: skip


def forbid_masquerade() -> None:
    """The RETURN for the whole range, first in nat POSTROUTING (see NETWORK RULE)."""
    if _run("iptables", "-t", "nat", "-C", "POSTROUTING", *NO_MASQUERADE,
            check=False).returncode != 0:  # fmt: skip
        _run("iptables", "-t", "nat", "-I", "POSTROUTING", "1", *NO_MASQUERADE)


def postrouting_counters() -> list[tuple[int, str]]:
    """(packets, rule) of nat POSTROUTING and KUBE-POSTROUTING, in order, for tests."""
    rows = []
    for chain in ("POSTROUTING", "KUBE-POSTROUTING"):
        out = _run("iptables", "-t", "nat", "-L", chain, "-v", "-x", "-n", check=False).stdout
        for line in out.splitlines()[2:]:
            fields = line.split()
            if fields and fields[0].isdigit():
                rows.append((int(fields[0]), f"{chain}: {' '.join(fields[2:])}"))
    return rows


@dataclass
class PodNetwork:
    root: Path  # CNI config and IPAM state live here

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.root / "ipam"

    def setup(self) -> None:
        if _run("ip", "link", "add", BRIDGE, "type", "bridge", check=False).returncode:
            raise PodNetworkError(
                f"bridge {BRIDGE} exists: another real-node control plane runs on this "
                "machine (one at a time: `make cluster-down` stops the one from `make "
                "cluster-up`)"
            )
        try:
            _run("ip", "addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
            _run("ip", "link", "set", BRIDGE, "up")
            Path(f"/proc/sys/net/ipv4/conf/{BRIDGE}/forwarding").write_text("1")
            for route in HOST_ROUTES:
                _run("ip", "route", "replace", *route)
            for rule in FORWARD_RULES:
                _run("iptables", "-I", "FORWARD", "1", *rule, "-m", "comment",
                     "--comment", COMMENT)  # fmt: skip
            self._write_cni_config()
        except BaseException:
            self.teardown()
            raise

    def _write_cni_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        ipam = {
            "type": "host-local",
            "dataDir": str(self.ipam_dir),
            "ranges": [
                [
                    {
                        "subnet": NODE_CIDR,
                        "rangeStart": POD_RANGE[0],
                        "rangeEnd": POD_RANGE[1],
                        "gateway": HOST_IP,
                    }
                ]
            ],
            # The only route a pod gets (see NETWORK RULE): no default route.
            "routes": [{"dst": RULE_RANGE, "gw": HOST_IP}],
        }
        bridge = {
            "type": "bridge",
            "bridge": BRIDGE,
            # isGateway would switch on the host-wide ip_forward; the bridge already
            # holds the gateway address and forwards on its own (setup()).
            "isGateway": False,
            "ipMasq": False,
            "hairpinMode": False,  # no hairpin without masquerade (NETWORK RULE)
            "ipam": ipam,
        }
        conflist = {"cniVersion": "0.4.0", "name": COMMENT, "plugins": [bridge]}
        (self.conf_dir / "10-ray-operator.conflist").write_text(json.dumps(conflist, indent=2))

    def teardown(self) -> list[str]:
        """Remove what setup() added, each piece by name; returns what it removed.
        Veths still on the bridge (their pod's netns was not torn down) go first."""
        removed = []
        if bridge_exists():
            links = json.loads(_run("ip", "-j", "link", "show", "master", BRIDGE).stdout or "[]")
            for link in links:
                if _run("ip", "link", "del", link["ifname"], check=False).returncode == 0:
                    removed.append(f"veth {link['ifname']}")
        for rule in FORWARD_RULES:
            args = ["FORWARD", *rule, "-m", "comment", "--comment", COMMENT]
            while _run("iptables", "-C", *args, check=False).returncode == 0:
                _run("iptables", "-D", *args)
                removed.append(f"iptables FORWARD {' '.join(rule)}")
        while _run("iptables", "-t", "nat", "-C", "POSTROUTING", *NO_MASQUERADE,
                   check=False).returncode == 0:  # fmt: skip
            _run("iptables", "-t", "nat", "-D", "POSTROUTING", *NO_MASQUERADE)
            removed.append("iptables nat POSTROUTING no-masquerade RETURN")
        for route in HOST_ROUTES:
            if _run("ip", "route", "del", *route, check=False).returncode == 0:
                removed.append(f"route {' '.join(route)}")
        if bridge_exists():
            _run("ip", "link", "del", BRIDGE)
            removed.append(f"bridge {BRIDGE}")
        return removed
