#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test (XCTest;
# the multi-rank tests start `mpirun -np 2` themselves), ending with one "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
swift build --build-tests
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --skip-build --disable-swift-testing 2>&1 | tee "$log" || status=$?
summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -1 || true)
executed=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<< "$summary")
failed=$(sed -E 's/.*with ([0-9]+) failures?.*/\1/' <<< "$summary")
if [[ -z "$summary" ]]; then
    echo "no test summary found" >&2
    exit 1
fi
echo "$(( executed - failed )) passed, $failed failed"
exit "$status"
