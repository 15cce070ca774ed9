#!/usr/bin/env bash
# Installs what PTune needs on a fresh Debian machine with the Swift toolchain:
# Open MPI and oneDNN (Debian packages) when missing, and the pretrained model.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# iproute2: the multi-host test's network namespaces.
if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi-c 2>/dev/null \
    || [[ ! -f /usr/include/oneapi/dnnl/dnnl.h ]] || [[ ! -x /usr/sbin/ip ]]; then
    echo "installing Open MPI, oneDNN and iproute2 ..." >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq libopenmpi-dev openmpi-bin libdnnl-dev pkg-config iproute2 >/dev/null
fi

"$here/fetch-model.sh" >/dev/null
