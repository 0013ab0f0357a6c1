#!/usr/bin/env bash
# Prints the path of a working kubeconform or kube-score (the Kubernetes manifest checkers of
# tests/unit/deploy/test_k8s.py), building it first when missing:
#   "$(deploy/local/k8s-tools.sh kubeconform)" -strict ...
#   "$(deploy/local/k8s-tools.sh kube-score)" score deploy/k8s/deployment.yaml ...
#
# Where the tool comes from, first match wins:
#   1. $KUBECONFORM or $KUBE_SCORE, when set (nothing is built);
#   2. .cache/<tool>-<version>/<tool>, built by an earlier run;
#   3. `go install <module>@<version>`: the Go module proxy serves the source (checked against the
#      checksum database), the machine's Go builds it (about 20 s per tool), and only the binary is
#      kept in .cache/. Go's module and build caches stay where `go env` puts them.
# Concurrent runs take turns (a lock file per tool in the cache directory).
set -euo pipefail

# The versions, in one place. kubeconform v0.7.0 needs Go >= 1.24, kube-score v1.20.0 Go >= 1.23.
KUBECONFORM_VERSION=v0.7.0
KUBE_SCORE_VERSION=v1.20.0

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${ROI_K8S_TOOLS_CACHE:-$ROOT/.cache}

die() {
    echo "k8s-tools.sh: $*" >&2
    exit 1
}

case ${1:-} in
    kubeconform)
        override=${KUBECONFORM:-}
        version=$KUBECONFORM_VERSION
        package=github.com/yannh/kubeconform/cmd/kubeconform
        probe=(-v)
        ;;
    kube-score)
        override=${KUBE_SCORE:-}
        version=$KUBE_SCORE_VERSION
        package=github.com/zegl/kube-score/cmd/kube-score
        probe=(version)
        ;;
    *) die "usage: $0 kubeconform|kube-score" ;;
esac
tool=$1

works() {
    [[ -x $1 ]] && "$1" "${probe[@]}" >/dev/null 2>&1
}

if [[ -n $override ]]; then
    works "$override" || die "$override (from the environment) does not run"
    echo "$override"
    exit 0
fi

target=$CACHE/$tool-$version
if works "$target/$tool"; then
    echo "$target/$tool"
    exit 0
fi

command -v go >/dev/null \
    || die "no $tool in $target and no Go to build it: install Go (>= 1.24) or set" \
        "$(tr a-z- A-Z_ <<<"$tool")=/path/to/$tool"

mkdir -p "$CACHE"
exec 9>"$CACHE/$tool.lock"
flock 9
# Another run may have built it while this one waited for the lock.
if works "$target/$tool"; then
    echo "$target/$tool"
    exit 0
fi

work=$(mktemp -d "$CACHE/$tool-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "k8s-tools.sh: building $tool $version with $(go version) (go install $package@$version)" >&2
if ! GOBIN=$work go install "$package@$version" >"$work/go.log" 2>&1; then
    cat "$work/go.log" >&2
    die "go install $package@$version failed"
fi
mkdir -p "$target"
mv "$work/$tool" "$target/$tool"
works "$target/$tool" || die "$target/$tool does not run"
echo "k8s-tools.sh: $tool $version is in $target" >&2
echo "$target/$tool"
