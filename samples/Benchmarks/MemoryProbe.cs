namespace Mae.MLNet.Benchmarks;

static class MemoryProbe
{
    /// <summary>Peak resident set of this process (VmHWM in /proc/self/status), MiB; includes native memory.</summary>
    public static double PeakResidentMiB() => StatusMiB("VmHWM:");

    /// <summary>Resident set of this process now (VmRSS in /proc/self/status), MiB.</summary>
    public static double ResidentMiB() => StatusMiB("VmRSS:");

    /// <summary>A kB field of /proc/self/status, in MiB.</summary>
    static double StatusMiB(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field, StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
    }

    /// <summary>Minor page faults of this process so far (/proc/self/stat, field 10).</summary>
    public static long MinorFaults()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');   // fields from the 3rd (state) on
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
    }
}
