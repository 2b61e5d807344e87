#!/usr/bin/env bash
# Packs Mae.MLNet, then restores, builds and runs a tiny consumer project (.ci/package-consumer/) against the package
# from a local folder source, outside the repository: proves that a NuGet consumer gets a working TorchSharp (on
# Debian 12 through the package's build/buildTransitive fix), ML.NET featurizer and SkiaSharp.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

# A version no earlier run used, so the global packages folder cannot hand back a stale extracted copy.
version="0.0.0-consumer.$(date +%Y%m%d%H%M%S).$$"
work="$(mktemp -d)"
packages_root="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
cleanup() { rm -rf "$work" "$packages_root/mae.mlnet/$version"; }
trap cleanup EXIT

echo "== dotnet pack src/Mae.MLNet (version $version)"
dotnet pack src/Mae.MLNet -c Release -o "$work/feed" -p:Version="$version" -nologo -v quiet >"$work/pack.log" 2>&1 \
  || { cat "$work/pack.log"; exit 1; }
nupkg="$work/feed/Mae.MLNet.$version.nupkg"
echo "package: $(basename "$nupkg"), $(stat -c %s "$nupkg") bytes (its files are checked by the consumer below)"

# The consumer, copied outside the repository; a nuget.config that keeps the machine's default source and adds the folder.
cp "$repo/.ci/package-consumer/PackageConsumer.csproj" "$repo/.ci/package-consumer/Program.cs" "$work/"
cat >"$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="mae-local" value="$work/feed" />
  </packageSources>
</configuration>
XML

echo "== restore, build and run the consumer"
cd "$work"
dotnet build -c Release -p:MaeMLNetVersion="$version" -nologo -v quiet >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
lib=$(find bin/Release -name libLibTorchSharp.so | head -1)
if [ -n "$lib" ]; then
  cached="$packages_root/torchsharp/0.107.0/runtimes/linux-x64/native/libLibTorchSharp.so"
  if [ -f "$cached" ] && ! cmp -s "$lib" "$cached"; then
    echo "native fix: the build output's libLibTorchSharp.so differs from the NuGet cache's (GLIBCXX_3.4.32 made weak; the cache is untouched)"
  else
    echo "native fix: not needed here (the host's libstdc++ has GLIBCXX_3.4.32), output copy unchanged"
  fi
fi
MAE_NUPKG="$nupkg" dotnet "bin/Release/net10.0/PackageConsumer.dll"

echo "== the same consumer without a libtorch backend: a clear error naming the packages to add"
dotnet build -c Release -p:MaeMLNetVersion="$version" -p:MaeNoBackend=true -o "$work/no-backend" -nologo -v quiet >"$work/build2.log" 2>&1 \
  || { cat "$work/build2.log"; exit 1; }
dotnet "$work/no-backend/PackageConsumer.dll" --no-backend
