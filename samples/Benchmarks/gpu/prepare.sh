#!/bin/bash
# Prepares a GPU run of the benchmarks on a machine that has an NVIDIA GPU and a Python PyTorch with CUDA but no
# .NET SDK (how the numbers in docs/benchmarks.md were taken). Run here, in the repository root:
#   samples/Benchmarks/gpu/prepare.sh            → .gpu/{app,dotnet}.tar.xz (git-ignore .gpu/)
# then, on the GPU machine, in a copy of the repository with .gpu/ beside it:
#   samples/Benchmarks/gpu/run.sh OUT_DIR
# The app is published framework-dependent without the CPU libtorch; on the GPU machine TorchSharp's
# LibTorchSharp loads that machine's PyTorch libraries (libtorch_cuda.so …) through LD_LIBRARY_PATH.
set -euo pipefail
pub=$(mktemp -d)
dotnet publish samples/Benchmarks -c Release -r linux-x64 --self-contained false -o "$pub"
# Drop the CPU libtorch (the GPU machine's PyTorch provides libtorch, libc10, libgomp …); keep LibTorchSharp.
( cd "$pub" && rm -f libtorch_cpu.so libtorch_python.so libtorch.so libc10.so libgomp-*.so* libtorchbind_test.so \
    libnnapi_backend.so libaoti_custom_ops.so libbackend_with_compiler.so libjitbackend_test.so libshm.so \
    libLdaNative.so.dbg libtorch_global_deps.so )
mkdir -p .gpu
tar cJf .gpu/app.tar.xz -C "$pub" .
root=$(dirname "$(readlink -f "$(command -v dotnet)")")
tar cJf .gpu/dotnet.tar.xz -C "$root" dotnet host shared/Microsoft.NETCore.App
rm -rf "$pub"
ls -la .gpu
