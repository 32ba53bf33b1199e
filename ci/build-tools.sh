#!/usr/bin/env bash
# Builds the control-plane and chart tools from the Go module proxy into a cache outside
# the repo, one folder per tool and version, so a machine pays each cold build once.
#   ci/build-tools.sh              build whatever is missing, print the bin directory
#   ci/build-tools.sh --real-nodes also kubelet, kube-proxy and CoreDNS (real nodes)
# Env: RAY_OPERATOR_TOOLS (cache root, default ~/.cache/ray-operator-tools).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${RAY_OPERATOR_TOOLS:-$HOME/.cache/ray-operator-tools}
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

log() { printf '[build-tools] %s\n' "$*" >&2; }

# build_once NAME VERSION FUNCTION: runs FUNCTION into $cache/NAME-VERSION unless a
# previous run completed (marked by .done), then links its binaries into $bin.
build_once() {
  local name=$1 version=$2 fn=$3 dest="$cache/$1-$2"
  if [[ ! -f "$dest/.done" ]]; then
    log "building $name $version (cold build, cached in $dest)"
    local start=$SECONDS work
    rm -rf "$dest"
    mkdir -p "$dest/bin"
    work=$(mktemp -d)
    (cd "$work" && "$fn" "$dest" "$version")
    rm -rf "$work"
    log "built $name $version in $((SECONDS - start))s"
    touch "$dest/.done"
  fi
  for f in "$dest"/bin/*; do
    if [[ -e "$f" ]]; then ln -sf "$f" "$bin/$(basename "$f")"; fi
  done
}

# k8s.io/kubernetes requires its staging modules at v0.0.0 through local replace lines
# that do not apply to dependents; a wrapper module pins them to the matching v0.x.y.
# kubernetes_build DEST VERSION PKG...: builds PKGs from such a wrapper module.
kubernetes_build() {
  local dest=$1 version=$2 minor patch
  shift 2
  minor=$(echo "$version" | cut -d. -f2)
  patch=$(echo "$version" | cut -d. -f3)
  local staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission
    sample-apiserver"
  {
    echo "module ray-operator/k8s-tools"
    echo
    echo "go 1.25.0"
    echo
    echo "godebug default=go1.25"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    for m in $staging; do echo "	k8s.io/$m => k8s.io/$m v0.$minor.$patch"; done
    echo ")"
  } > go.mod
  # shellcheck disable=SC2068
  go get $(for p in "$@"; do echo "$p@$version"; done)
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  go build -trimpath -ldflags "-s -w $ld" -o "$dest/bin/" "$@"
}

build_kubernetes() {
  kubernetes_build "$1" "$2" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
}

# The node components of the same Kubernetes release, for real nodes (opt-in): a separate
# cache folder, so machines that only run the control plane never pay for them.
build_kubernetes_node() {
  kubernetes_build "$1" "$2" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

# The pod sandbox's `pause` process, from the pinned Kubernetes module's own source
# (build/pause/linux/pause.c), linked statically so it runs in an image with no files.
build_pause() {
  local dest=$1 version=$2 mod
  printf 'module ray-operator/pause-src\n\ngo 1.25.0\n' > go.mod
  mod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  gcc -Os -static -Wall -Werror -DVERSION="$version" -o "$dest/bin/pause" \
    "$mod/build/pause/linux/pause.c"
  strip "$dest/bin/pause"
}

# Cluster DNS for real nodes: CoreDNS with only the plugins the pods need. Upstream's
# main links every plugin (cloud SDKs included); this wrapper links the kubernetes
# plugin and a few local ones (`bind`: it listens on the bridge address only), and
# deliberately no `forward`: names outside the cluster never leave this machine.
build_coredns() {
  local dest=$1 version=$2
  printf 'module ray-operator/coredns-tools\n\ngo 1.26.0\n' > go.mod
  cat > main.go <<'SRC'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// Plugin order matters in CoreDNS; this is upstream's order for these plugins.
	dnsserver.Directives = []string{
		"bind", "ready", "health", "errors", "log", "cache", "kubernetes",
	}
}

func main() { coremain.Run() }
SRC
  go get "github.com/coredns/coredns@$version"
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$dest/bin/coredns" .
}

# etcd's own go.mod has replace lines, so `go install` refuses it: wrap its main.
build_etcd() {
  local dest=$1 version=$2
  cat > go.mod <<MOD
module ray-operator/etcd-tools

go 1.26.0
MOD
  cat > main.go <<'SRC'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
SRC
  go get "go.etcd.io/etcd/server/v3@$version"
  go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$dest/bin/etcd" .
}

build_kwok() {
  GOBIN="$1/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$2"
}

# A plain helm build tells charts it talks to Kubernetes 1.20; report the pinned one.
build_helm() {
  local minor
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  GOBIN="$1/bin" go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=$2 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$2"
}

# Helm 4 derives the Kubernetes version it reports from the client-go version it was
# built with (1.37 for v4.3), with no variable to set: the build copies the module and
# replaces that one function, so `helm4` reports the pinned Kubernetes version like
# `helm` does. The binary is `helm4`, next to Helm 3's `helm`.
build_helm4() {
  local dest=$1 version=$2 minor
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  go mod download "helm.sh/helm/v4@$version"
  cp -r "$(go env GOMODCACHE)/helm.sh/helm/v4@$version" helm
  chmod -R u+w helm
  cat > helm/internal/version/clientgo.go <<'SRC'
package version

// K8sIOClientGoModVersion reports the client-go version matching the Kubernetes
// version set at link time (ray-operator tool build), instead of the one linked in.
func K8sIOClientGoModVersion() (string, error) { return k8sClientGoVersion, nil }

var k8sClientGoVersion = "v0.0.0"
SRC
  (cd helm && go build -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v4/internal/version.version=$version \
    -X helm.sh/helm/v4/internal/version.k8sClientGoVersion=v0.$minor.0" \
    -o "$dest/bin/helm4" ./cmd/helm)
}

# ct reads etc/chart_schema.yaml and etc/lintconf.yaml; ship them from the module zip.
# `go install ct@version` asks the proxy for the module's version list (refused here),
# so build through a wrapper module instead.
build_ct() {
  local dest=$1 version=$2 mod
  printf 'module ray-operator/ct-tools\n\ngo 1.25.0\n' > go.mod
  go get "github.com/helm/chart-testing/v3/ct@$version"
  go build -trimpath -ldflags "-s -w \
    -X github.com/helm/chart-testing/v3/ct/cmd.Version=$version" \
    -o "$dest/bin/ct" github.com/helm/chart-testing/v3/ct
  mod=$(go env GOMODCACHE)/github.com/helm/chart-testing/v3@$version
  mkdir -p "$dest/etc"
  cp "$mod/etc/chart_schema.yaml" "$mod/etc/lintconf.yaml" "$dest/etc/"
  chmod -R u+w "$dest/etc"
}

# KubeRay's operator (a test peer, not part of the product): the module root is its
# main package. The binary is renamed so it never shadows our `ray-operator` script, and
# the module's own CRDs are kept beside it for tests that run it.
build_kuberay() {
  local dest=$1 version=$2 mod
  GOBIN="$dest/bin" go install -trimpath -ldflags "-s -w" \
    "github.com/ray-project/kuberay/ray-operator@$version"
  mv "$dest/bin/ray-operator" "$dest/bin/kuberay-operator"
  mod=$(go env GOMODCACHE)/github.com/ray-project/kuberay/ray-operator@$version
  mkdir -p "$dest/crds"
  cp "$mod"/config/crd/bases/*.yaml "$dest/crds/"
  chmod -R u+w "$dest/crds"
}

# The Prometheus Operator's own CRDs, as its module ships them (test data, no build).
fetch_prometheus_crds() {
  local dest=$1 version=$2 dir kind
  dir=$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$dest/crds"
  for kind in servicemonitors podmonitors prometheusrules; do
    cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$dest/crds/"
  done
  chmod -R u+w "$dest/crds"
}

build_once kubernetes "$KUBERNETES_VERSION" build_kubernetes
build_once etcd "$ETCD_VERSION" build_etcd
build_once kwok "$KWOK_VERSION" build_kwok
build_once helm "$HELM_VERSION" build_helm
build_once helm4 "$HELM4_VERSION" build_helm4
build_once ct "$CT_VERSION" build_ct
build_once kuberay "$KUBERAY_VERSION" build_kuberay
build_once prometheus-crds "$PROMETHEUS_OPERATOR_VERSION" fetch_prometheus_crds
# Real nodes (opt-in, `ci/build-tools.sh --real-nodes` or `make real-node-deps`).
if [[ "${1:-}" == "--real-nodes" ]]; then
  build_once kubernetes-node "$KUBERNETES_VERSION" build_kubernetes_node
  build_once coredns "$COREDNS_VERSION" build_coredns
  build_once pause "$KUBERNETES_VERSION" build_pause
fi
echo "$bin"
