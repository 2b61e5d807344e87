using System.Diagnostics;
using System.Globalization;

namespace Mae.MLNet.Tests.Interop;

/// <summary>
/// Memory an action takes: the growth of the process's peak resident set (Linux VmHWM, reset before the action by
/// writing 5 to /proc/self/clear_refs, so earlier peaks do not hide this one) over its resident set before it, and
/// the managed bytes it allocated (<see cref="GC.GetTotalAllocatedBytes"/>, which counts memory the GC reuses and so
/// never shows as new resident pages). Native allocations (libtorch tensors) show in the first, managed ones in both.
/// Shared by the tests and by test/Mae.MLNet.HostileHost.
/// </summary>
public static class PeakMemory
{
    public sealed record Result(long PeakRssGrowth, long ManagedAllocated, Exception? Error, TimeSpan Elapsed)
    {
        public double PeakMiB => PeakRssGrowth / 1048576.0;
        public double ManagedMiB => ManagedAllocated / 1048576.0;
    }

    /// <summary>True where the peak can be reset (Linux).</summary>
    public static bool Supported { get; } = TryReset();

    public static Result Measure(Action action)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (!TryReset()) throw new PlatformNotSupportedException("Peak memory is measured through /proc/self/clear_refs (Linux).");
        long before = Status("VmRSS:");
        long managed = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        Exception? error = null;
        try { action(); }
        catch (Exception e) { error = e; }
        clock.Stop();
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - managed;
        return new Result(Math.Max(0, Status("VmHWM:") - before), allocated, error, clock.Elapsed);
    }

    /// <summary>The resident set now, in bytes.</summary>
    public static long Rss => Status("VmRSS:");

    static bool TryReset()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    static long Status(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field, StringComparison.Ordinal))
                return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException($"/proc/self/status has no {field}");
    }
}
