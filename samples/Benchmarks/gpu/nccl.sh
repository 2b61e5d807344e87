#!/bin/bash
# The NCCL path on a lent GPU, one device call of a few minutes (samples/Benchmarks/NcclCheck.cs): a one-rank
# communicator through the torchrun-style TCP bootstrap, its collectives checked and timed, CUDA pre-training with NCCL
# against one process, and two torchrun-style ranks sharing the GPU (NCCL refuses: the failure must be fast and named).
# Here first:      samples/Benchmarks/gpu/prepare.sh                      → .gpu/ (the app and a .NET runtime)
# On the GPU:      samples/Benchmarks/gpu/nccl.sh OUT_DIR                 → OUT_DIR/nccl.md, OUT_DIR/nccl.log
# Back here:       samples/Benchmarks/gpu/nccl.sh --docs OUT_DIR/nccl.md  → its table replaces the block between the
#                  "nccl-check" markers in docs/scaling.md
set -uo pipefail
if [ "${1:-}" = "--docs" ]; then
    table=${2:?usage: nccl.sh --docs OUT_DIR/nccl.md}
    grep -q "^| check | result |" "$table" || { echo "nccl.sh: $table holds no check table" >&2; exit 2; }
    awk -v table="$table" '
        /<!-- nccl-check:begin -->/ { print; while ((getline line < table) > 0) if (line ~ /^(\||- (date|machine|device):)/) print line; skip = 1; next }
        /<!-- nccl-check:end -->/ { skip = 0 }
        !skip { print }' docs/scaling.md > docs/scaling.md.new && mv docs/scaling.md.new docs/scaling.md
    git --no-pager diff --stat docs/scaling.md
    exit 0
fi
out=${1:?usage: nccl.sh OUT_DIR (on the GPU machine) or nccl.sh --docs OUT_DIR/nccl.md (here)}; mkdir -p "$out"
[ -f .gpu/app.tar.xz ] && [ -f .gpu/dotnet.tar.xz ] || { echo "nccl.sh: .gpu/ is missing: run samples/Benchmarks/gpu/prepare.sh first" >&2; exit 2; }
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "nccl.sh: no CUDA here (PyTorch with CUDA and a GPU are needed)" >&2; exit 2; }
torchlib=$(python3 -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# NCCL and the CUDA runtime come with PyTorch's CUDA wheels (nvidia-nccl-*, nvidia-cuda-runtime-*): put their folders on the path.
libs=$(python3 - <<'PY'
import glob, os, site
found = set()
for root in site.getsitepackages():
    for pattern in ("nvidia/**/libnccl.so.2", "nvidia/**/libcudart.so.1[23]"):
        found.update(os.path.dirname(p) for p in glob.glob(os.path.join(root, pattern), recursive=True))
print(":".join(sorted(found)))
PY
)
python3 -c "import torch; print('PyTorch', torch.__version__, 'CUDA', torch.version.cuda, 'NCCL', torch.cuda.nccl.version(), torch.cuda.get_device_name(0))" | tee "$out/nccl.log"
work=$(mktemp -d); mkdir -p "$work/dotnet" "$work/app"
tar xJf .gpu/dotnet.tar.xz -C "$work/dotnet"; tar xJf .gpu/app.tar.xz -C "$work/app"
export DOTNET_ROOT=$work/dotnet LD_LIBRARY_PATH=$torchlib:$libs:${LD_LIBRARY_PATH:-}
cd "$work/app"
timeout 400 "$work/dotnet/dotnet" Mae.MLNet.Benchmarks.dll --bench nccl > "$out/nccl.md" 2>> "$out/nccl.log"
code=$?
echo "nccl check: exit $code"; grep "^|" "$out/nccl.md"
exit $code
