#!/usr/bin/env bash
# The `mae` tool as a user gets it: packs src/Mae.Cli, installs it into a temporary tool path, and runs every command
# on the embedded Fashion-MNIST subset written out as PNG class folders (.ci/cli-tool): pretrain (a real Ctrl+C —
# SIGINT — or a SIGTERM in the middle of an epoch, then --resume, must end with the weights of an uninterrupted run,
# byte for byte), featurize, finetune (the zip is scored by ML.NET alone), export (ONNX Runtime runs the graph), reconstruct.
#   bash .ci/cli-tool.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-1000}"   # as .ci/notebooks.sh: shared cores
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
version=0.0.0-ci
fail() { echo "cli-tool: $*" >&2; exit 1; }

dotnet pack src/Mae.Cli -c Release -o "$work/feed" -p:Version=$version -nologo >"$work/pack.log" 2>&1 || { cat "$work/pack.log"; exit 1; }
dotnet tool install --tool-path "$work/tools" --add-source "$work/feed" Mae.MLNet.Cli --version $version >/dev/null
mae="$work/tools/mae"
dotnet build .ci/cli-tool -c Release -nologo >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
check() { dotnet run --project .ci/cli-tool -c Release --no-build -- "$@"; }
check pngs samples/data/fashion-mnist-subset "$work/images" 1200 200
echo "tool installed; $(find "$work/images" -name '*.png' | wc -l) PNG files"

# pretrain: 3 epochs of 18 steps straight, and the same run stopped by SIGINT after 20 steps, then resumed.
# --blr pins the paper's base lr: the small-image recipe's (2e-3) makes a 3-epoch encoder that this 3-epoch fine-tune
# takes below the 30 % floor (23.5 % against 33–38 %); the check is about resume and the zip, not the recipe.
args=(pretrain --images "$work/images/train" --model mnist28 --epochs 3 --warmup-epochs 1 --batch-size 64 --blr 1.5e-4 --device cpu
      --num-workers 2 --recon-every 0 --checkpoint-every 10)
"$mae" "${args[@]}" --out "$work/straight" >"$work/straight.log" || fail "pretrain failed: $(tail -3 "$work/straight.log")"
# A non-interactive shell starts background jobs with SIGINT ignored, and a shell that was itself started with it ignored
# (nohup, a CI runner) passes that on to every child; .NET then honours the ignore. `env --default-signal` gives the tool
# SIGINT's default disposition, as a terminal's foreground command has.
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
stop_and_resume() {   # signal, expected exit code, steps before the signal
  local out="$work/cut-$1"
  env --default-signal=INT "$mae" "${args[@]}" --out "$out" >"$out.log" 2>"$out.err" &
  local pid=$! code
  until [ "$(lines "$out/metrics.jsonl")" -ge "$3" ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
  kill -"$1" $pid 2>/dev/null || true
  set +e; wait $pid; code=$?; set -e
  [ $code -eq "$2" ] || fail "SIG$1: expected exit code $2, got $code ($(cat "$out.err"))"
  grep -q "checkpoint written" "$out.err" || fail "SIG$1: no checkpoint named: $(cat "$out.err")"
  [ ! -e "$out/mae.safetensors" ] || fail "SIG$1: a stopped run wrote final weights"
  "$mae" "${args[@]}" --out "$out" --resume >"$out.resumed.log" || fail "resume after SIG$1 failed: $(tail -3 "$out.resumed.log")"
  cmp -s "$work/straight/mae.safetensors" "$out/mae.safetensors" || fail "SIG$1: the resumed run's weights differ from the uninterrupted run's"
  echo "pretrain: stopped by SIG$1 ($(grep -o 'epoch [0-9], step [0-9]* of [0-9]*' "$out.err"), exit $code), resumed: weights equal the uninterrupted run's"
}
stop_and_resume INT 130 20
stop_and_resume TERM 143 30
weights="$work/straight/mae.safetensors"

"$mae" featurize --images "$work/images/test" --weights "$weights" --out "$work/features.csv" --layers 4 >/dev/null
[ "$(wc -l <"$work/features.csv")" -eq 201 ] || fail "featurize: expected a header and 200 rows in features.csv"
echo "featurize: 200 rows"
"$mae" finetune --images "$work/images/train" --val-images "$work/images/test" --weights "$weights" --epochs 3 --warmup-epochs 1 --blr 4e-3 \
  --batch-size 64 --device cpu --out "$work/model.zip" >"$work/finetune.log" || fail "finetune failed: $(tail -3 "$work/finetune.log")"
check score "$work/model.zip" "$work/images/test" 0.3   # ten classes: chance is 0.1
"$mae" export --weights "$weights" --onnx "$work/encoder.onnx" >/dev/null
check onnx "$work/encoder.onnx" 28 192   # mnist28: 192 wide
"$mae" reconstruct --weights "$weights" --images "$work/images/test" --out "$work/grid.png" >/dev/null
[ "$(head -c 4 "$work/grid.png" | od -An -tx1 | tr -d ' ')" = "89504e47" ] || fail "reconstruct: grid.png is not a PNG"
echo "export, reconstruct: ok"
