#!/usr/bin/env bash
# Starts PTune the way users do: installs what is missing, builds the release binary,
# and runs `ptune` with the given arguments, under mpirun when --np N (N > 1) is given.
#
#   ./launch.sh encode < sentences.txt           # one process (the debug mode)
#   ./launch.sh --np 2 encode < sentences.txt    # two MPI ranks
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

ranks=1
if [[ "${1:-}" == "--np" ]]; then
    ranks="$2"
    shift 2
fi

scripts/setup.sh
swift build -c release --product ptune >&2
binary="$(swift build -c release --show-bin-path)/ptune"

if (( ranks > 1 )); then
    [[ $(id -u) -eq 0 ]] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    exec mpirun -np "$ranks" --bind-to none "$binary" "$@"
fi
exec "$binary" "$@"
