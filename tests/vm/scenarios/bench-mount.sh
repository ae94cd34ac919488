# Mount-time benchmark (bench/run-mount-time.sh): per round, the sidecar from start to "all
# mounted" (its ready file), then a baseline in the same boot: download the whole image, open it
# with cryptsetup and the known key, mount. Prints "@@BENCH" lines the host script summarises.
. /lib/vm/e2e.sh
set -e

now_ms() {
	# busybox ash: $EPOCHREALTIME is seconds.microseconds
	echo "$EPOCHREALTIME" | awk '{ printf "%.1f", $1 * 1000 }'
}
log_ms() { # pattern: the number before " ms" on the first matching log line
	grep -m1 "$1" "$SIDECAR_LOG" | sed -n 's/.* \([0-9][0-9.]*\) ms.*/\1/p'
}

i=1
while [ "$i" -le "$BENCH_ROUNDS" ]; do
	step "round $i: sidecar"
	t0=$(now_ms)
	sidecar_start bench
	n=0
	while [ ! -e /run/sidecar-ready ]; do
		kill -0 "$sidecar_pid" 2>/dev/null || { sidecar_dump; fail "the sidecar exited"; }
		[ "$n" -lt 6000 ] || { sidecar_dump; fail "not mounted after 120 s"; }
		usleep 20000
		n=$((n + 1))
	done
	t1=$(now_ms)
	expect_same /mnt/remote/bench/data.bin "$DATA_SHA256" "data.bin through the sidecar"
	image=$(log_ms 'image .* in ')
	attest=$(log_ms 'release: MAA token after')
	key=$(log_ms 'key obtained in')
	luks=$(log_ms 'LUKS .* opened')
	mnt=$(log_ms 'mounted .* in ')
	echo "@@BENCH sidecar $i total=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
		"image=${image:-?} attest=${attest:-?} key=${key:-?} open=${luks:-?} mount=${mnt:-?}"
	sidecar_stop || { sidecar_dump; fail "the sidecar exited with $? after SIGTERM"; }
	expect_clean "after SIGTERM"

	step "round $i: baseline (download + cryptsetup open + mount)"
	mkdir -p /mnt/baseline
	t0=$(now_ms)
	wget -q -O /tmp/bench.img "$BENCH_URL"
	t1=$(now_ms)
	cryptsetup open --readonly --key-file /etc/bench/key.bin /tmp/bench.img baseline
	t2=$(now_ms)
	mount -t ext4 -o ro,noload /dev/mapper/baseline /mnt/baseline
	t3=$(now_ms)
	expect_same /mnt/baseline/data.bin "$DATA_SHA256" "data.bin through the baseline"
	echo "@@BENCH baseline $i total=$(awk -v a="$t0" -v b="$t3" 'BEGIN{printf "%.1f", b-a}')" \
		"download=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')" \
		"open=$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.1f", b-a}')" \
		"mount=$(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.1f", b-a}')"
	umount /mnt/baseline
	cryptsetup close baseline
	rm -f /tmp/bench.img
	expect_clean "after the baseline"
	i=$((i + 1))
done
