#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS seconds (and at most RUNS inputs, if
# given), printing each target's execution count. Fails if any target crashes, leaks, times out
# or runs out of memory; the failing input is left in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh SECONDS [RUNS]
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags (the AddressSanitizer
# runtime ships with the x86_64 Linux toolchain). FUZZ_SANITIZER=none skips ASan (faster, no
# -Zsanitizer). New inputs go to fuzz/target/corpus-work/<target>/; the committed seeds in
# fuzz/corpus/<target>/ are read but never written.
set -euo pipefail

seconds=${1:?usage: fuzz/run.sh SECONDS [RUNS]}
runs=${2:-}
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
# Known false positives of the leak check (a thread still running when it looks): see the file.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
sanitizer=${FUZZ_SANITIZER:-address}
# The pack targets write a small file per input: a memory file system spares the disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

# Cargo caches rustc's answers in .rustc_info.json without keying them on RUSTC_BOOTSTRAP, so
# one build attempted without it leaves "-Z is only accepted on nightly" cached: drop the cache.
rm -f fuzz/target/.rustc_info.json

build_flags=(--release --debug-assertions --sanitizer "$sanitizer")
cargo fuzz build "${build_flags[@]}"

libfuzzer_flags=(-max_total_time="$seconds" -rss_limit_mb=4096 -timeout=60 -print_final_stats=1)
if [ -n "$runs" ]; then
    libfuzzer_flags+=(-runs="$runs")
fi

failed=0
mkdir -p fuzz/target/logs
for target in $(cargo fuzz list); do
    work=fuzz/target/corpus-work/$target
    log=fuzz/target/logs/$target.log
    mkdir -p "$work"
    if cargo fuzz run "${build_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
        "${libfuzzer_flags[@]}" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed=1
    fi
    executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$target: ${executions:-?} executions in at most ${seconds}s: $status (log: $log)"
    if [ "$status" = FAILED ]; then
        grep -E "ERROR|panicked|SUMMARY|Test unit written" "$log" | head -n 20 || true
    fi
done
exit "$failed"
