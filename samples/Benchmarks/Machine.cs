namespace Mae.MLNet.Benchmarks;

/// <summary>What the benchmark ran on, read from /proc on Linux (falls back to .NET's view elsewhere).</summary>
public static class Machine
{
    public static string Describe()
    {
        string model = "unknown CPU";
        string memory = "";
        try
        {
            model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name"))?.Split(':', 2)[1].Trim() ?? model;
            var mem = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal"));
            if (mem is not null) memory = $", {long.Parse(mem.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0 / 1024.0:F0} GiB memory";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return $"{model}, {Environment.ProcessorCount} logical CPUs{memory}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}";
    }

    /// <summary>The GPU's name and memory as nvidia-smi reports them, or "GPU" when it cannot be asked.</summary>
    public static string GpuName()
    {
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("nvidia-smi", "--query-gpu=name,memory.total,driver_version --format=csv,noheader")
            { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = System.Diagnostics.Process.Start(psi)!;
            string text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return text.Length > 0 ? text.Split('\n')[0] : "GPU";
        }
        catch (System.ComponentModel.Win32Exception) { return "GPU"; }
    }

    public static string LoadAverage()
    {
        try { return string.Join(", ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) + " (1, 5, 15 min)"; }
        catch (IOException) { return "n/a"; }
    }
}
