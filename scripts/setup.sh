#!/usr/bin/env bash
# Installs what PTune needs on a fresh Debian machine with the Swift toolchain:
# Open MPI and OpenBLAS (Debian packages) when missing, and the pretrained model.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c openblas 2>/dev/null; then
    echo "installing Open MPI and OpenBLAS ..." >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev pkg-config >/dev/null
fi

"$here/fetch-model.sh" >/dev/null
