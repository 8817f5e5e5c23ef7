#!/bin/sh
# Installs the Debian 12 packages ptl needs, skipping what is already installed.
#   tools/install-deps.sh          build and run ptl
#   tools/install-deps.sh --test   also what the test suite uses (PyTorch oracle, valgrind)
# Runs apt-get as root, or through sudo for another user.
set -e

BUILD_PKGS="build-essential autoconf automake libtool pkg-config libopenmpi-dev openmpi-bin
libblis-dev libhdf5-openmpi-dev hdf5-tools libcriterion-dev libjpeg62-turbo-dev zlib1g-dev
libpng-dev libyaml-dev libcairo2-dev dataset-fashion-mnist"
TEST_PKGS="python3-torch python3-torchvision python3-pil python3-h5py python3-numpy python3-sklearn
valgrind munge slurm-wlm"

pkgs=$BUILD_PKGS
for arg in "$@"; do
    case $arg in
    --test) pkgs="$pkgs $TEST_PKGS" ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --test or nothing)" >&2; exit 64 ;;
    esac
done

missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "install-deps.sh: need root (or sudo) to install:$missing" >&2
    exit 1
fi
echo "install-deps.sh: installing$missing"
$as_root apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q --no-install-recommends $missing
