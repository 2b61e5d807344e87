using System.Runtime.InteropServices;

namespace Mae.MLNet.Runtime;

/// <summary>
/// libtorch's CPU tensors come from malloc. glibc's malloc hands the top of a heap that frees more than its trim
/// threshold back to the kernel, and serves blocks above its mmap threshold with a fresh mmap; both start small (128 KiB)
/// and grow only as some patterns of frees teach them. A training step frees and re-allocates the same tens of MiB of
/// activations every step, so under the defaults every step touches fresh pages again: on the 2-core development machine
/// a quarter of the CPU time of a 32-px pre-training went to page faults, and pre-training from an image folder ran
/// 1.4–1.7× slower than with memory kept (docs/benchmarks.md, "glibc malloc and the step"). So, when the Mae.MLNet assembly loads, this fixes the
/// mmap threshold at glibc's own ceiling (32 MiB on 64-bit; larger blocks are still mapped and unmapped) and the trim
/// threshold at <see cref="TrimThresholdBytes"/>: freed memory below those sizes stays in the process for the next step.
/// The peak resident set does not grow (the memory is the step's own peak, kept instead of returned); between runs the
/// process holds up to that peak. Nothing changes where the user chose (glibc's MALLOC_TRIM_THRESHOLD_,
/// MALLOC_MMAP_THRESHOLD_, MALLOC_TOP_PAD_ or MALLOC_MMAP_MAX_, glibc.malloc tunables in GLIBC_TUNABLES, or
/// MAE_MALLOC_TUNING=0 for glibc's defaults), off glibc (musl, macOS, Windows), or under a preloaded allocator
/// (jemalloc, tcmalloc: their mallopt does nothing).
/// </summary>
internal static class GlibcMallocPolicy
{
    const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

    /// <summary>glibc's largest mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX = 4 MiB × sizeof(long)).</summary>
    public const int MmapThresholdBytes = 32 << 20;

    /// <summary>Free memory at a heap's top kept before it goes back to the kernel: 256 MiB.</summary>
    public const int TrimThresholdBytes = 256 << 20;

    /// <summary>The variable that turns this off: MAE_MALLOC_TUNING=0 keeps glibc's defaults.</summary>
    public const string OptOutVariable = "MAE_MALLOC_TUNING";

    /// <summary>glibc's variables for what this sets: with any of them set, the user's choice stands.</summary>
    internal static readonly string[] UserVariables =
        ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"];

    [DllImport("libc", EntryPoint = "mallopt", SetLastError = false)]
    static extern int MallOpt(int param, int value);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version", SetLastError = false)]
    static extern IntPtr GnuGetLibcVersion();

    /// <summary>What was decided, for logs.</summary>
    public static string Description { get; private set; } = "malloc defaults";

    /// <summary>Called by <see cref="TorchBackend"/>'s module initializer, before anything can load libtorch.</summary>
    internal static void Apply() => Description = Decide(Environment.GetEnvironmentVariable, Tune);

    /// <summary>The decision, apart from the process (tests give it an environment and a stand-in for mallopt).</summary>
    internal static string Decide(Func<string, string?> environment, Func<bool> tune)
    {
        if (environment(OptOutVariable) == "0") return $"glibc malloc defaults ({OptOutVariable}=0)";
        var set = UserVariables.Where(v => environment(v) is not null).ToList();
        if (environment("GLIBC_TUNABLES") is { } tunables && tunables.Contains("glibc.malloc.", StringComparison.Ordinal)) set.Add("GLIBC_TUNABLES");
        if (set.Count > 0) return $"malloc as set by you ({string.Join(", ", set)})";
        if (!OperatingSystem.IsLinux()) return "malloc defaults";
        return tune()
            ? $"glibc malloc keeps freed memory (mmap threshold {MmapThresholdBytes >> 20} MiB, trim threshold {TrimThresholdBytes >> 20} MiB)"
            : "malloc defaults (not glibc)";
    }

    static bool Tune()
    {
        try
        {
            if (GnuGetLibcVersion() == IntPtr.Zero) return false;
            // mallopt returns 1 on success; the order does not matter (either one fixes both thresholds' dynamic growth).
            return MallOpt(M_MMAP_THRESHOLD, MmapThresholdBytes) == 1 & MallOpt(M_TRIM_THRESHOLD, TrimThresholdBytes) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;   // musl or another libc without gnu_get_libc_version: leave its allocator alone
        }
    }
}
