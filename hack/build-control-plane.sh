#!/usr/bin/env bash
# Builds a pinned Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and the
# peers kubemeter is compared with (metrics-server, the VPA recommender) from the Go module proxy, into DIR/bin.
#
# k8s.io/kubernetes and etcd's server cannot be `go install`ed: their go.mod files carry `replace` directives (the
# staging modules). So each gets a small wrapper module of ours, generated here from the release's own go.mod: the
# release's requirements, every `k8s.io/<staging> => ./staging/...` replace turned into the published
# `k8s.io/<staging> v0.<minor>.<patch>`, and `tool` lines for the commands. Built as upstream does
# (CGO_ENABLED=0, -trimpath, tags selinux,notest, the version stamped into component-base).
#
# With `peers`, it builds instead the peers only benchmarks run (kube-state-metrics, `make peers`), so that the
# cold build `make test` needs stays as it is.
#
# Idempotent: stamps name the versions (one for the control plane and metrics-server, one for the VPA recommender,
# so adding or bumping the recommender does not rebuild Kubernetes, one for the peers), so a second run takes well
# under a second.
# Usage: bash hack/build-control-plane.sh DIR [peers]
set -euo pipefail

readonly KUBERNETES_VERSION=v1.37.2
readonly ETCD_VERSION=v3.6.16
readonly METRICS_SERVER_VERSION=v0.8.0
# The newest release on the module proxy (v1.7.0 .. v1.8.1); it builds with the machine's Go (its go.mod: go 1.26.0).
readonly VPA_VERSION=v1.8.1
# v2.17.0 is refused by the module proxy here; v2.16.0 is served.
readonly KUBE_STATE_METRICS_VERSION=v2.16.0

die() { echo "build-control-plane: $*" >&2; exit 1; }

[[ $# -eq 1 || ( $# -eq 2 && $2 == peers ) ]] || die "usage: $0 DIR [peers]"
mkdir -p "$1/bin"
OUT=$(cd "$1" && pwd)
BIN="$OUT/bin"
STAMP="$BIN/.built-kubernetes-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-metrics-server-$METRICS_SERVER_VERSION"
VPA_STAMP="$BIN/.built-vpa-recommender-$VPA_VERSION"
PEERS_STAMP="$BIN/.peers-kube-state-metrics-$KUBE_STATE_METRICS_VERSION"
built() { if [[ $# -eq 2 ]]; then [[ -f "$PEERS_STAMP" ]]; else [[ -f "$STAMP" && -f "$VPA_STAMP" ]]; fi; }
built "$@" && exit 0

command -v go >/dev/null || die "go not found on PATH (the machine's Go builds the control plane)"
exec 9>"$OUT/.build.lock"
flock 9
built "$@" && exit 0

# Module and build caches under DIR, so `make clean` removes them and nothing outside the checkout is touched.
export GOMODCACHE="$OUT/go/mod" GOCACHE="$OUT/go/build" GOPATH="$OUT/go/path"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
START=$(date +%s)

# wrapper_module DIR MODULE VERSION: a module that requires MODULE@VERSION with its own requirements and with its
# local `replace` directives pointed at the published modules of the same release.
wrapper_module() {
    local dir=$1 module=$2 version=$3
    mkdir -p "$dir"
    (cd "$dir" && go mod download -json "$module@$version" >download.json) \
        || die "the module proxy did not serve $module@$version"
    python3 - "$dir" "$module" "$version" <<'PY'
import json, pathlib, re, sys
out, module, version = sys.argv[1:]
gomod = pathlib.Path(json.loads(pathlib.Path(out, "download.json").read_text())["GoMod"]).read_text()
go_directive = re.search(r"^go (\S+)$", gomod, re.M).group(1)
requires = [line.strip() for block in re.findall(r"^require \((.*?)^\)", gomod, re.M | re.S)
            for line in block.splitlines() if line.strip() and not line.strip().startswith("//")]
requires = [r.split("//")[0].strip() for r in requires]
# A replace to a local directory (./staging/src/k8s.io/api, ../api) names a module published at the release's
# matching version: k8s.io/kubernetes v1.37.2 -> k8s.io/api v0.37.2; etcd v3.6.16 -> go.etcd.io/etcd/api/v3 v3.6.16.
published = "v0" + version[2:] if module == "k8s.io/kubernetes" else version
replaces = [f"{m} => {m} {published}" for m, target in re.findall(r"^\s*(\S+)\s+=>\s+(\.\.?/\S+)\s*$", gomod, re.M)]
lines = ["module kubemeter.local/build", "", f"go {go_directive}", "", "require (", f"\t{module} {version}"]
lines += [f"\t{r}" for r in requires if r.split()[0] != module] + [")", "", "replace ("]
lines += [f"\t{r}" for r in replaces] + [")", ""]
pathlib.Path(out, "go.mod").write_text("\n".join(lines))
PY
}

build() {  # DIR VERSION LDFLAGS PACKAGE...: the packages are of one module, at VERSION (never @latest)
    local dir=$1 version=$2 ldflags=$3
    shift 3
    (cd "$dir" && for pkg in "$@"; do go get -tool "$pkg@$version"; done \
        && go build -trimpath -tags selinux,notest -ldflags "-s -w $ldflags" -o "$BIN/" "$@") \
        || die "building $* failed"
}

# go_tool NAME PACKAGE VERSION: a Go command whose module has no local replaces, built as a tool requirement of a
# module of ours (the version stamped where Kubernetes components keep it; ignored by the others).
go_tool() {
    local name=$1 package=$2 version=$3
    mkdir -p "$OUT/src/$name"
    (cd "$OUT/src/$name" && { [[ -f go.mod ]] || go mod init "kubemeter.local/$name" >/dev/null 2>&1; } \
        && go get -tool "$package@$version" >/dev/null \
        && go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version" \
            -o "$BIN/$name" "$package") \
        || die "building $name $version failed"
}

build_core() {  # the control plane and metrics-server
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
wrapper_module "$OUT/src/kubernetes" k8s.io/kubernetes "$KUBERNETES_VERSION"
build "$OUT/src/kubernetes" "$KUBERNETES_VERSION" "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
-X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler

wrapper_module "$OUT/src/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
build "$OUT/src/etcd" "$ETCD_VERSION" "" go.etcd.io/etcd/server/v3
mv "$BIN/server" "$BIN/etcd"  # go names the binary after the package path: go.etcd.io/etcd/server/v3

go_tool metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION"

for tool in etcd kube-apiserver kube-controller-manager kube-scheduler metrics-server; do
    [[ -x "$BIN/$tool" ]] || die "$tool was not built"
done
rm -f "$BIN"/.built-kubernetes-*
touch "$STAMP"
echo "build-control-plane: Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, metrics-server $METRICS_SERVER_VERSION" \
    "built in $(( $(date +%s) - START )) s" >&2
}

# The VPA recommender (its main package is pkg/recommender; no local replaces, so a plain tool requirement builds
# it, as metrics-server), and from the same module's source in the module cache, not from the network: the
# VerticalPodAutoscaler and VerticalPodAutoscalerCheckpoint CRDs it needs (deploy/vpa-v1-crd-gen.yaml) and
# upstream's RBAC (deploy/vpa-rbac.yaml), which the test bed binds to the recommender's user.
# Cold: about 5 min on 2 cores (measured 299 s with an empty module and build cache).
build_vpa() {
    local started dir manifest
    started=$(date +%s)
    go_tool vpa-recommender k8s.io/autoscaler/vertical-pod-autoscaler/pkg/recommender "$VPA_VERSION"
    dir=$(cd "$OUT/src/vpa-recommender" \
        && go list -m -f '{{.Dir}}' "k8s.io/autoscaler/vertical-pod-autoscaler") \
        || die "the module cache has no k8s.io/autoscaler/vertical-pod-autoscaler@$VPA_VERSION"
    for manifest in vpa-v1-crd-gen.yaml vpa-rbac.yaml; do
        [[ -f "$dir/deploy/$manifest" ]] || die "no deploy/$manifest in $dir"
        install -m 0644 "$dir/deploy/$manifest" "$BIN/$manifest"
    done
    [[ -x "$BIN/vpa-recommender" ]] || die "vpa-recommender was not built"
    rm -f "$BIN"/.built-vpa-recommender-*
    touch "$VPA_STAMP"
    echo "build-control-plane: the VPA recommender $VPA_VERSION built in $(( $(date +%s) - started )) s" >&2
}

if [[ $# -eq 2 ]]; then
    go_tool kube-state-metrics k8s.io/kube-state-metrics/v2 "$KUBE_STATE_METRICS_VERSION"
    rm -f "$BIN"/.peers-* && touch "$PEERS_STAMP"
else
    [[ -f "$STAMP" ]] || build_core
    [[ -f "$VPA_STAMP" ]] || build_vpa
fi
# The build cache (about 5 GB) only speeds up a rebuild of other versions; the module cache (1.3 GB) stays.
rm -rf "$GOCACHE"
echo "build-control-plane: done in $(( $(date +%s) - START )) s into $BIN ($(du -sh "$OUT" | cut -f1) with caches)" >&2
