#!/bin/bash
# GPU side of samples/Benchmarks/gpu/prepare.sh: correctness checks, then training and Table 5 benchmarks on CUDA.
# Usage (repository root, .gpu/ prepared): samples/Benchmarks/gpu/run.sh OUT_DIR
set -uo pipefail
out=${1:?usage: run.sh OUT_DIR}; mkdir -p "$out"
repo=$PWD
torchlib=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
python3 -c "import torch; print('PyTorch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
work=$(mktemp -d); mkdir -p "$work/dotnet" "$work/app"
tar xJf .gpu/dotnet.tar.xz -C "$work/dotnet"; tar xJf .gpu/app.tar.xz -C "$work/app"
export DOTNET_ROOT=$work/dotnet LD_LIBRARY_PATH=$torchlib:${LD_LIBRARY_PATH:-}
cd "$work/app"
bench() { timeout 200 "$work/dotnet/dotnet" Mae.MLNet.Benchmarks.dll "$@"; }
bench --bench gpucheck --device cuda --fixtures "$repo/test/Mae.MLNet.Tests/Fixtures" > "$out/gpucheck.md" 2> "$out/gpucheck.log"
echo "gpucheck: exit $?"; grep "^|" "$out/gpucheck.md"
bench --bench train --device cuda --preset tiny32 --batch 256 --steps 300 --warmup 30 --window 30 > "$out/train-tiny32.md" 2>> "$out/train.log"
bench --bench train --device cuda --preset vit-b16 --batch 256 --steps 60 --warmup 10 --window 10 --lr 1.5e-4 > "$out/train-vitb16.md" 2>> "$out/train.log"
bench --bench table5 --device cuda --t5-batch 256 --t5-steps 8 --t5-warmup 3 --t5-dtype fp32 > "$out/table5.md" 2>> "$out/table5.log"
bench --bench table5 --device cuda --t5-batch 256 --t5-steps 8 --t5-warmup 3 --t5-dtype bf16 >> "$out/table5.md" 2>> "$out/table5.log"
for f in "$out"/train-*.md "$out"/table5.md; do echo "== $f"; grep -h "^| \|^- \(FLOP\|device\)" "$f"; done
