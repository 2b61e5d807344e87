namespace Mae.MLNet.Benchmarks;

static class MemoryProbe
{
    /// <summary>Peak resident set of this process (VmHWM in /proc/self/status), MiB; includes native memory.</summary>
    public static double PeakResidentMiB()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    }
}
