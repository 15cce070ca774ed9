#!/usr/bin/env bash
# Installs what PTune needs on a fresh Debian machine with the Swift toolchain:
# Open MPI and oneDNN (Debian packages) when missing, and the pretrained model.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c 2>/dev/null \
    || [[ ! -f /usr/include/oneapi/dnnl/dnnl.h ]]; then
    echo "installing Open MPI and oneDNN ..." >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin libdnnl-dev pkg-config >/dev/null
fi

"$here/fetch-model.sh" >/dev/null
