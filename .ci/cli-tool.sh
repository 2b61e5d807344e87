#!/usr/bin/env bash
# The `mae` tool as a new user meets it: packs src/Mae.Cli, installs it into a temporary tool path (its size is
# printed), and runs a scripted first session on the embedded Fashion-MNIST subset written out as PNG class folders
# (.ci/cli-tool): pretrain (a real Ctrl+C — SIGINT — or a SIGTERM in the middle of an epoch, then --resume, must end
# with the weights of an uninterrupted run, byte for byte), featurize (also straight from a checkpoint), finetune
# stopped by SIGTERM and resumed (only the latest and best checkpoints left), the zip scored by ML.NET alone on
# unlabelled images, export (ONNX Runtime runs the graph), reconstruct, a flag typo, and one bad file of each kind
# (truncated, not an image, empty) with and without --skip-bad-files. Every exit code and message is checked against
# the README's table.
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
echo "tool installed: $(du -sm "$work/tools" | cut -f1) MB in the tool path"
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

"$mae" featurize --images "$work/images/test" --weights "$weights" --out "$work/features.csv" >/dev/null
[ "$(wc -l <"$work/features.csv")" -eq 201 ] || fail "featurize: expected a header and 200 rows in features.csv"
[ "$(head -1 "$work/features.csv" | tr ',' '\n' | wc -l)" -eq $((2 + 6 * 192)) ] || fail "featurize: expected all 6 blocks' 6 × 192 features by default (MaeConfig.FeatureLayers)"
"$mae" featurize --images "$work/images/test" --weights "$work/straight/checkpoint-0003.maeckpt" --out "$work/features-ckpt.csv" >/dev/null
cmp -s "$work/features.csv" "$work/features-ckpt.csv" || fail "featurize: a checkpoint as --weights gave other features than the run's weights file"
echo "featurize: 200 rows × 1 152 features; the same from the checkpoint"

# finetune: stopped by SIGTERM after 20 steps (its position checkpointed), resumed; the zip scores unlabelled paths.
ft=(finetune --images "$work/images/train" --val-images "$work/images/test" --weights "$weights" --epochs 3 --blr 4e-3
    --batch-size 64 --device cpu --num-workers 2 --out "$work/model.zip" --checkpoint-dir "$work/ft" --progress-seconds 0)
"$mae" "${ft[@]}" >"$work/ft.log" 2>"$work/ft.err" &
pid=$!
until [ "$(grep -c ' step ' "$work/ft.log" 2>/dev/null || true)" -ge 20 ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
kill -TERM $pid 2>/dev/null || true
set +e; wait $pid; code=$?; set -e
[ $code -eq 143 ] || fail "finetune SIGTERM: expected exit code 143, got $code ($(cat "$work/ft.err"))"
grep -q "checkpoint written: .*finetune-000[0-2]-0000[0-9][0-9].maeft" "$work/ft.err" || fail "finetune SIGTERM: no position checkpoint named: $(cat "$work/ft.err")"
[ ! -e "$work/model.zip" ] || fail "finetune SIGTERM: a stopped run wrote the zip"
grep -q "^finetune: 1200 images in 10 classes" "$work/ft.log" || fail "finetune: no start-up summary: $(head -2 "$work/ft.log")"
"$mae" "${ft[@]}" --resume >"$work/ft.resumed.log" || fail "finetune --resume failed: $(tail -3 "$work/ft.resumed.log")"
grep -q "resume: continuing from" "$work/ft.resumed.log" || fail "finetune --resume did not say where it continued from"
left=$(ls "$work/ft" | grep -c '\.maeft$')
[ "$left" -le 2 ] && ! ls "$work/ft" | grep -q -- '-[0-9]\{6\}\.maeft' || fail "finetune: expected only the latest and best checkpoints, found: $(ls "$work/ft")"
echo "finetune: stopped by SIGTERM ($(grep -o 'epoch [0-9], step [0-9]* of [0-9]*' "$work/ft.err")), resumed; $left checkpoint(s) kept"
check score "$work/model.zip" "$work/images/test" 0.3   # ten classes: chance is 0.1
"$mae" export --weights "$weights" --onnx "$work/encoder.onnx" >/dev/null
check onnx "$work/encoder.onnx" 28 1152   # mnist28: 192 wide × all 6 blocks by default
"$mae" reconstruct --weights "$weights" --images "$work/images/test" --out "$work/grid.png" >/dev/null
[ "$(head -c 4 "$work/grid.png" | od -An -tx1 | tr -d ' ')" = "89504e47" ] || fail "reconstruct: grid.png is not a PNG"
echo "export, reconstruct: ok"

# A typo: exit 1 and the nearest flag.
expect() {   # expected exit code, text the error must hold, command…
  local want=$1 text=$2; shift 2
  set +e; "$mae" "$@" >"$work/out.log" 2>"$work/err.log"; local code=$?; set -e
  [ $code -eq "$want" ] || fail "mae $1: expected exit code $want, got $code: $(cat "$work/err.log")"
  grep -qF -- "$text" "$work/err.log" "$work/out.log" || fail "mae $1: expected '$text' in: $(cat "$work/err.log" "$work/out.log")"
}
expect 1 "did you mean '--epochs'" pretrain --images "$work/images/test" --epoch 3 --out "$work/typo"
expect 2 "--warmup-epochs (5) must not exceed --epochs (1)" pretrain --images "$work/images/test" --epochs 1 --warmup-epochs 5 --out "$work/w"
expect 2 "is the --images folder" pretrain --images "$work/images/test" --out "$work/images/test"

# One bad file of each kind among good ones: a truncated PNG, a text file named .jpg, an empty file.
bad="$work/bad"
for c in Trouser Bag; do mkdir -p "$bad/$c"; cp $(ls "$work/images/test/$c"/*.png | head -8) "$bad/$c/"; done
head -c 100 "$(ls "$bad/Trouser"/*.png | head -1)" >"$bad/Trouser/zz-truncated.png"
echo "not an image" >"$bad/Bag/zz-text.jpg"
: >"$bad/Bag/zz-empty.png"
expect 2 "zz-" featurize --images "$bad" --weights "$weights" --out "$work/bad.csv"
[ "$(wc -l <"$work/err.log")" -eq 1 ] || fail "a bad file should end in one line: $(cat "$work/err.log")"
skipped() { [ "$(grep -c '^skipped .*zz-' "$work/out.log")" -eq 3 ] || fail "$1 --skip-bad-files: expected the 3 bad files listed: $(cat "$work/out.log")"; }
expect 0 "" featurize --images "$bad" --weights "$weights" --out "$work/bad.csv" --skip-bad-files; skipped featurize
[ "$(wc -l <"$work/bad.csv")" -eq 17 ] || fail "featurize --skip-bad-files: expected a header and the 16 good images"
expect 0 "" reconstruct --images "$bad" --weights "$weights" --out "$work/bad.png" --count 19 --skip-bad-files; skipped reconstruct
# One batch of all 19 files, so that the epoch reads every bad one.
expect 0 "" finetune --images "$bad" --weights "$weights" --out "$work/bad.zip" --epochs 1 --batch-size 19 --mixup 0 --cutmix 0 --device cpu --skip-bad-files; skipped finetune
expect 0 "" pretrain --images "$bad" --model mnist28 --epochs 1 --batch-size 19 --device cpu --out "$work/bad-run" --skip-bad-files; skipped pretrain
echo "bad files: each command named the first one (exit 2), and with --skip-bad-files left all three out and listed them"
