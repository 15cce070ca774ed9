#!/usr/bin/env bash
# Prints the ptune binary the scripts run: $PTUNE_BINARY as it is (a build made elsewhere, such
# as the tests' own, or a copy kept so runs that outlast an edit use one build), else the release
# build of this checkout, built first (its output on stderr).
set -euo pipefail
if [[ -n "${PTUNE_BINARY:-}" ]]; then
    echo "$PTUNE_BINARY"
    exit
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
swift build -c release --product ptune >&2
echo "$(swift build -c release --show-bin-path)/ptune"
