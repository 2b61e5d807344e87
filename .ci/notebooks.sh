#!/usr/bin/env bash
# Runs every notebook in samples/notebooks headless with the dotnet-repl tool (version pinned in
# .config/dotnet-tools.json) and fails if any cell throws. Executed copies go to artifacts/notebooks/.
#   bash .ci/notebooks.sh            # all notebooks, in name order (03 reuses the weights 01 saves)
#   bash .ci/notebooks.sh 02-*.ipynb # some of them
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# libtorch's OpenMP threads spin only briefly before sleeping: long spins stall training when other processes share
# the cores (see src/Mae.MLNet/Runtime/OpenMpWaitPolicy.cs for measurements). The notebook kernel may load TorchSharp
# before Mae.MLNet, so the variable is set here as well.
[ -n "${OMP_WAIT_POLICY:-}" ] || export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-1000}"
per_notebook_timeout="${NOTEBOOK_TIMEOUT_S:-300}"

dotnet tool restore >/dev/null
# The notebooks load Mae.MLNet with #r "nuget: Mae.MLNet, 0.0.0-local": pack that version into a folder and make it a
# package source of the kernel's restores. The kernel takes no relative #i paths, and its restore project lives in a
# temporary folder that no nuget.config of ours reaches; MSBuild reads environment variables as properties, so
# RestoreAdditionalProjectSources adds the folder to every restore the kernel starts. The extracted copy of this
# version in the global packages folder is removed first, so the kernel cannot pick up an earlier pack.
version="0.0.0-local"
feed="$PWD/artifacts/notebook-feed"
packages_root="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
rm -rf "$feed" "$packages_root/mae.mlnet/$version"
pack_log=$(mktemp)
dotnet pack src/Mae.MLNet -c Release -o "$feed" -p:Version="$version" -nologo >"$pack_log" 2>&1 || { cat "$pack_log"; exit 1; }
rm -f "$pack_log"
export RestoreAdditionalProjectSources="$feed"
# TorchSharp's fallback for script hosts copies libtorch into the NuGet cache (torchsharp/<v>/lib/<tfm>/cpu/); with the
# package's run-time fix it must never get that far. Listed before and compared after the run.
cache_copies() { find "$packages_root/torchsharp" -mindepth 4 -maxdepth 4 -type d 2>/dev/null | sort; }
cache_copies_before=$(cache_copies)

out="$PWD/artifacts/notebooks"
rm -rf "$out" samples/notebooks/output
mkdir -p "$out"
cd samples/notebooks
if [ $# -gt 0 ]; then notebooks=("$@"); else notebooks=([0-9]*.ipynb); fi

failed=()
total_start=$(date +%s)
for nb in "${notebooks[@]}"; do
  start=$(date +%s)
  set +e
  timeout "$per_notebook_timeout" dotnet tool run dotnet-repl --run "$nb" --exit-after-run --output-path "$out/$nb" \
    >"$out/${nb%.ipynb}.log" 2>&1
  rc=$?
  set -e
  seconds=$(( $(date +%s) - start ))
  # dotnet-repl exits non-zero when a cell fails; also look for error outputs in the executed copy.
  if [ "$rc" -ne 0 ] || [ ! -s "$out/$nb" ] || grep -q '"output_type": "error"' "$out/$nb"; then
    failed+=("$nb")
    echo "notebook $nb: FAILED (exit $rc, ${seconds} s); executed copy and log in artifacts/notebooks/"
    grep -o '"evalue": "[^"]*' "$out/$nb" 2>/dev/null | head -3 | cut -c1-600 || true
    [ "$rc" -eq 124 ] && echo "  (timed out after ${per_notebook_timeout} s)"
  else
    echo "notebook $nb: ok (${seconds} s)"
  fi
done
echo "notebooks: ${#notebooks[@]} run, ${#failed[@]} with errors, $(( $(date +%s) - total_start )) s"
if [ "$(cache_copies)" != "$cache_copies_before" ]; then
  echo "TorchSharp wrote into the NuGet cache during the run (its fallback loader ran):"
  diff <(echo "$cache_copies_before") <(cache_copies) || true
  failed+=("nuget-cache")
fi
[ ${#failed[@]} -eq 0 ]
