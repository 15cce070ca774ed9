#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (AddressSanitizer on, every module instrumented) and runs
# each for a bounded time on a copy of its seed corpus in Fuzz/corpus/: FUZZ_SECONDS each
# (default 60). A crash, a sanitizer report or a failed precondition fails the script and leaves
# the input that caused it in .build/fuzz/<target>-crashes/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-60}"
build=.build/fuzz
mkdir -p "$build"
flags=(-sanitize=fuzzer,address -parse-as-library -Onone -g -I "$build" -I Sources/CDNNL)

# The modules a reader needs, each a static library the targets link (dependency order).
modules=(Kernels Model Tuning Tasks)
for module in "${modules[@]}"; do
    swiftc "${flags[@]}" -module-name "$module" -emit-library -static -emit-module \
        -emit-module-path "$build/$module.swiftmodule" -o "$build/lib$module.a" $(find Sources/"$module" -name '*.swift' | sort)
done

status=0
for target in SafeTensors Tokenizer TaskData Adapter; do
    binary="$build/fuzz-$target"
    swiftc "${flags[@]}" -module-name "${target}Fuzz" Fuzz/"$target"Fuzz.swift Fuzz/Scratch.swift -L "$build" \
        -lTasks -lTuning -lModel -lKernels -ldnnl -lgomp -o "$binary" 2> >(grep -v "Cannot export local symbol" >&2)
    corpus="$build/$target-corpus" crashes="$build/$target-crashes"
    rm -rf "$corpus" && mkdir -p "$corpus" "$crashes"
    cp Fuzz/corpus/"$target"/* "$corpus"/
    echo "fuzzing $target for ${seconds}s" >&2
    # Leaks are not what this looks for (process-lifetime caches); -rss_limit_mb bounds a
    # reader that would allocate what a header claims.
    if ! ASAN_OPTIONS=detect_leaks=0 "$binary" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
        -artifact_prefix="$crashes/" -print_final_stats=1 "$corpus" 2> "$build/$target.log"; then
        status=1
        tail -40 "$build/$target.log" >&2
    fi
    grep -E "^stat::number_of_executed_units|^Done|^#[0-9]+.*DONE" "$build/$target.log" | sed "s/^/$target: /" >&2 || true
done
exit "$status"
