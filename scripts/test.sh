#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test (XCTest; the
# multi-rank tests start `mpirun -np 2` themselves, the multi-host ones two network namespaces),
# then the fuzz targets for a bounded time (FUZZ_SECONDS each, default 30) and the whole suite
# again under AddressSanitizer. Ends with one "N passed, N failed" line for each suite.
# `--quick` runs the first suite only; so does a failing first suite (the rest would take half
# an hour to say the same run is red).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
scripts/setup.sh

# Runs the XCTest suite of the build in $1 (extra swift flags after it); prints its summary line.
suite() {
    local path="$1" label="$2"
    shift 2
    swift build --build-tests --build-path "$path" "$@"
    local log status=0
    log=$(mktemp)
    swift test --skip-build --build-path "$path" --disable-swift-testing 2>&1 | tee "$log" || status=$?
    local summary executed failed skipped
    # XCTest writes "with N tests skipped and M failures" when some were skipped.
    summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" \
        "$log" | tail -1 || true)
    rm -f "$log"
    if [[ -z "$summary" ]]; then
        echo "$label: no test summary found" >&2
        return 1
    fi
    executed=$(sed -E 's/.*Executed ([0-9]+) tests?.*/\1/' <<< "$summary")
    failed=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<< "$summary")
    skipped=0
    [[ "$summary" =~ ([0-9]+)\ tests?\ skipped ]] && skipped="${BASH_REMATCH[1]}"
    results+=("$label: $(( executed - failed - skipped )) passed, $failed failed, $skipped skipped")
    return "$status"
}

results=()
status=0
suite .build tests || status=$?
if (( !quick && status != 0 )); then
    results+=("fuzz and AddressSanitizer: not run, the tests failed")
elif (( !quick )); then
    FUZZ_SECONDS="${FUZZ_SECONDS:-30}" scripts/fuzz.sh && results+=("fuzz: no crash") \
        || { status=1; results+=("fuzz: a crash, see .build/fuzz/*-crashes/"); }
    # Leak reports are off: process-lifetime caches (oneDNN's primitives, MPI) are not leaks.
    ASAN_OPTIONS=detect_leaks=0 suite .build/asan "tests under AddressSanitizer" -Xswiftc -sanitize=address \
        || status=$?
fi
printf '%s\n' "${results[@]}"
exit "$status"
