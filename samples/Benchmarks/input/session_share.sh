#!/usr/bin/env bash
# Does nice order other work that runs in another session? A 2-thread PyTorch loop (an MLP's forward and backward)
# timed alone and beside two busy loops: in this session or each in its own (setsid), at nice 0 and 19; ROUNDS rounds.
# With autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled = 1) the cores are shared between sessions first.
# Usage: samples/Benchmarks/input/session_share.sh [ROUNDS=2] [SECONDS=8]    (needs python3-torch; docs/benchmarks.md)
set -euo pipefail
rounds=${1:-2}; seconds=${2:-8}; py=/usr/bin/python3
loop='while :; do :; done'
step=$(mktemp --suffix .py); trap 'rm -f "$step"; pkill -f "$loop" || true' EXIT
cat > "$step" <<'PY'
import sys, time, torch
torch.set_num_threads(2)
m = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(6)]); x = torch.randn(512, 256)
def rate(s):
    n, t = 0, time.time()
    while time.time() - t < s: m(x).sum().backward(); n += 1
    return n / (time.time() - t)
rate(2); print(f"{rate(float(sys.argv[1])):.2f}")
PY
measure() {   # $1: prefix for each busy loop ("" = none started)
  if [ "$1" != none ]; then for _ in 1 2; do $1 sh -c "$loop" & done; sleep 1; fi
  "$py" "$step" "$seconds"
  if [ "$1" != none ]; then pkill -f "$loop" || true; wait 2>/dev/null || true; sleep 1; fi
}
echo "autogroup scheduling: $(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo absent); $(nproc) CPUs"
echo "| round | alone, steps/s | this session, nice 0 | this session, nice 19 | own sessions, nice 0 | own sessions, nice 19 |"
echo "|---:|---:|---:|---:|---:|---:|"
for r in $(seq "$rounds"); do
  a=$(measure none); s0=$(measure ""); s19=$(measure "nice -n 19"); o0=$(measure setsid); o19=$(measure "setsid nice -n 19")
  rel() { awk -v x="$1" -v a="$a" 'BEGIN { printf "%s (%.2f×)", x, x / a }'; }
  echo "| $r | $a | $(rel "$s0") | $(rel "$s19") | $(rel "$o0") | $(rel "$o19") |"
done
echo "command: samples/Benchmarks/input/session_share.sh $rounds $seconds"
