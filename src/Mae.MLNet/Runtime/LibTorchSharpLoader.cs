using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace Mae.MLNet.Runtime;

/// <summary>
/// The run-time half of the GLIBCXX_3.4.32 fix (the build-time half is build/Mae.MLNet.targets). Where there is no
/// build output to fix — a notebook kernel (<c>#r "nuget: Mae.MLNet"</c>) loads TorchSharp.dll straight from the NuGet
/// cache — TorchSharp would load the cache's libLibTorchSharp.so, which Debian 12 / Ubuntu 22.04's libstdc++ refuses,
/// then copy libtorch into the NuGet cache (its fallback for script hosts) and fail again.
/// <para>
/// So before TorchSharp's first native call (the module initializer and <see cref="TorchBackend"/>'s probe), when
/// TorchSharp.dll runs from the NuGet cache, the host's libstdc++ lacks GLIBCXX_3.4.32 and the package's
/// libLibTorchSharp.so requires it strongly: a per-user folder (<c>$XDG_CACHE_HOME/mae-mlnet/native/&lt;hash&gt;/</c>,
/// else <c>~/.cache/…</c>) gets links to the libtorch backend package's native files and a copy of libLibTorchSharp.so
/// with that one requirement marked weak, and the copy is loaded by full path. TorchSharp's own lookups of
/// "LibTorchSharp" and "torch_cpu" then find the loaded libraries by soname. The NuGet cache and the system are never
/// written.
/// </para>
/// </summary>
internal static class LibTorchSharpLoader
{
    static readonly object Gate = new();
    static bool done;

    /// <summary>The error met while fixing, if any: reported by <see cref="TorchBackend.EnsureAvailable"/>.</summary>
    internal static Exception? Failure { get; private set; }

    /// <summary>Runs once per process (again while no backend package is in the NuGet cache: a notebook may add it in a
    /// later cell); never throws (a failure is kept in <see cref="Failure"/>).</summary>
    internal static void Prepare()
    {
        lock (Gate)
        {
            if (done) return;
            done = true;
            try
            {
                done = PrepareCore();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or DllNotFoundException
                                       or BadImageFormatException or ArgumentException or NotSupportedException)
            {
                Failure = e;
            }
        }
    }

    /// <summary>False only when the fix is needed but no backend package is there yet.</summary>
    static bool PrepareCore()
    {
        if (!OperatingSystem.IsLinux()) return true;
        // Only where TorchSharp.dll runs from the NuGet cache (<packages>/torchsharp/<version>/lib/<tfm>/): a build or
        // publish output has its own fixed copy (build/Mae.MLNet.targets), and guessing there could load a second one.
        string? torchSharpDirectory = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (string.IsNullOrEmpty(torchSharpDirectory)) return true;
        string packages = Path.GetFullPath(Path.Combine(torchSharpDirectory, "..", "..", "..", ".."));
        string shipped = Path.GetFullPath(Path.Combine(torchSharpDirectory, "..", "..", "runtimes", "linux-x64", "native", GlibcxxRequirement.LibraryName));
        if (!File.Exists(shipped) || GlibcxxRequirement.HostHasVersion()) return true;

        byte[] elf = File.ReadAllBytes(shipped);
        if (GlibcxxRequirement.Weaken(elf) != GlibcxxRequirement.Outcome.Changed) return true;   // not asked for, or weak already
        string[] backend = BackendNativeDirectories(packages);
        if (backend.Length == 0) return false;   // no libtorch package restored (yet): TorchBackend says which to add

        string folder = ConsolidatedFolder(elf, backend);
        if (!File.Exists(Path.Combine(folder, GlibcxxRequirement.LibraryName)))
            Consolidate(folder, elf, backend);
        // Loaded by full path, its RUNPATH ($ORIGIN) finds libtorch.so, libtorch_cpu.so and libc10.so beside it (links to
        // the backend package's files), never a system libtorch that a bare name could reach (Debian's python3-torch has one).
        NativeLibrary.Load(Path.Combine(folder, GlibcxxRequirement.LibraryName));
        return true;
    }

    /// <summary>The native folders of the libtorch package(s) that go with this TorchSharp: libtorch-cpu-linux-x64, else
    /// the parts of libtorch-cuda-*-linux-x64 (the CUDA build is split over several packages), as TorchSharp looks them up.</summary>
    static string[] BackendNativeDirectories(string packages)
    {
        // TorchSharp's libtorch version, a constant in its assembly (read as metadata: touching torch would start it).
        string? version = typeof(torch).GetField("libtorchPackageVersion", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)
            ?.GetRawConstantValue() as string;
        if (version is null) return [];
        if (version.EndsWith(".0", StringComparison.Ordinal) && version.Count(c => c == '.') == 3) version = version[..^2];   // NuGet's folder name
        string[] Natives(string pattern) => Directory.Exists(packages)
            ? Directory.GetDirectories(packages, pattern)
                .Select(p => Path.Combine(p, version, "runtimes", "linux-x64", "native"))
                .Where(Directory.Exists).Order(StringComparer.Ordinal).ToArray()
            : [];
        string[] cpu = Natives("libtorch-cpu-linux-x64");
        return cpu.Length > 0 ? cpu : Natives("libtorch-cuda-*-linux-x64*");
    }

    /// <summary>A folder of links to the backend's native files plus the fixed copy, built under a temporary name and
    /// renamed into place, so that processes starting together each see a whole folder or none.</summary>
    static void Consolidate(string folder, byte[] fixedElf, string[] backend)
    {
        string parent = Path.GetDirectoryName(folder)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(folder)}.{Environment.ProcessId}.tmp");
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        foreach (var directory in backend)
            foreach (var file in Directory.GetFiles(directory))
            {
                string link = Path.Combine(temp, Path.GetFileName(file));
                if (!File.Exists(link)) File.CreateSymbolicLink(link, file);
            }
        File.WriteAllBytes(Path.Combine(temp, GlibcxxRequirement.LibraryName), fixedElf);
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);   // incomplete: no fixed copy in it
            Directory.Move(temp, folder);
        }
        catch (IOException) when (File.Exists(Path.Combine(folder, GlibcxxRequirement.LibraryName)))
        {
            Directory.Delete(temp, recursive: true);   // another process finished first
        }
    }

    /// <summary>Named by a hash of the fixed content and the backend folders, so that another TorchSharp version or
    /// another backend gets its own folder.</summary>
    static string ConsolidatedFolder(byte[] fixedElf, string[] backend)
    {
        string? cacheHome = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(cacheHome) || !Path.IsPathRooted(cacheHome))
        {
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            cacheHome = string.IsNullOrEmpty(home) ? Path.Combine(Path.GetTempPath(), $"mae-mlnet-{Environment.UserName}") : Path.Combine(home, ".cache");
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(fixedElf);
        foreach (var directory in backend) hash.AppendData(System.Text.Encoding.UTF8.GetBytes(directory + "\n"));
        string key = Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
        return Path.Combine(cacheHome, "mae-mlnet", "native", key);
    }
}
