#!/usr/bin/env bash
# Install, build and run every test: the suite with gcc, the suite again under ASan/UBSan (clang),
# every libFuzzer target for a bounded time, and the clang-format check. Ends with one line
# "N passed, N failed".
#
#   bash tests/run.sh            everything
#   FUZZ_SECONDS=5 bash tests/run.sh
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fuzz_seconds=${FUZZ_SECONDS:-30}
passed=0
failed=0
failures=()

step() { printf '\n==== %s ====\n' "$*"; }

record() { # name, exit code
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$1")
	fi
}

# Count individual meson tests from the machine-readable log of a run.
count_meson() { # build dir, label
	local log="$1/meson-logs/testlog.json" p f
	[ -f "$log" ] || { record "$2: no test log" 1; return; }
	p=$(grep -c '"result": "OK"' "$log" || true)
	f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" || true)
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$f" -gt 0 ]; then
		failures+=("$2: $(grep -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" |
			sed -E 's/.*"name": "([^"]*)".*/\1/' | tr '\n' ' ')")
	fi
}

step "dependencies"
bash tools/install-deps.sh || { echo "dependency installation failed"; exit 1; }

step "build (gcc, -Werror)"
rm -rf build-ci
if meson setup build-ci >/dev/null && ninja -C build-ci; then
	step "tests (gcc)"
	meson test -C build-ci --print-errorlogs --num-processes 2
	count_meson build-ci "gcc"
else
	record "gcc build" 1
fi

step "build (clang, ASan+UBSan)"
rm -rf build-ci-san
if CC=clang meson setup build-ci-san -Db_sanitize=address,undefined -Db_lundef=false \
	-Dbuildtype=debug >/dev/null && ninja -C build-ci-san; then
	step "tests (ASan+UBSan)"
	# The Dockerfile check builds its own release binaries: once, in the gcc run, is enough.
	meson test -C build-ci-san --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
		--no-suite container
	count_meson build-ci-san "sanitizers"
else
	record "sanitizer build" 1
fi

step "fuzz targets (libFuzzer, ${fuzz_seconds}s each)"
rm -rf build-ci-fuzz
if CC=clang meson setup build-ci-fuzz -Dfuzz=true \
	-Db_sanitize=address,undefined -Db_lundef=false >/dev/null && ninja -C build-ci-fuzz; then
	for exe in build-ci-fuzz/tests/fuzz/fuzz_*; do
		[ -f "$exe" ] && [ -x "$exe" ] || continue
		name=${exe##*/fuzz_}
		corpus=$(mktemp -d)
		[ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
		echo "fuzz $name"
		"$exe" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 "$corpus" 2>"$corpus.log"
		rc=$?
		grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' "$corpus.log" | head -5
		[ $rc -eq 0 ] || tail -40 "$corpus.log"
		record "fuzz $name" $rc
		rm -rf "$corpus" "$corpus.log"
	done
else
	record "fuzz build" 1
fi

step "clang-format"
if git ls-files '*.c' '*.h' | xargs -r clang-format --dry-run --Werror; then
	record "clang-format" 0
else
	record "clang-format" 1
fi

step "summary"
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
