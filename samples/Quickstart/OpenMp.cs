using System.Runtime.InteropServices;

namespace Mae.MLNet.Quickstart;

/// <summary>
/// libtorch's CPU kernels run on OpenMP (on Linux its bundled libgomp). Idle OpenMP threads spin for a while before they
/// sleep (GOMP_SPINCOUNT, 300 000 by default); when other processes keep the cores busy, spinning and descheduled
/// threads hold up every parallel region. One pre-training epoch of the quickstart's MAE (62 steps of 64 images) on a
/// 2-core machine:
/// <list type="table">
/// <item>idle machine: default 1.3 s, GOMP_SPINCOUNT=1000 1.2–1.6 s, OMP_WAIT_POLICY=PASSIVE 2.7 s;</item>
/// <item>three busy loops beside it: default 10–12 s, GOMP_SPINCOUNT=1000 4.2–5.1 s, PASSIVE 3.8 s.</item>
/// </list>
/// (Under heavier load from other jobs, 30 steps took 38 s with the default and 1.3–1.7 s with PASSIVE.)
/// A short spin keeps the idle speed and avoids most of the stalls.
/// </summary>
public static class OpenMp
{
    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>Sets GOMP_SPINCOUNT=1000 in the native environment unless the user chose a wait policy or spin count.
    /// Must run before libtorch is loaded (the first TorchSharp call): libgomp reads it once. (.NET's
    /// Environment.SetEnvironmentVariable does not reach native getenv on Unix, hence setenv.) Returns a description.</summary>
    public static string ShortenSpinWaits()
    {
        string? policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        string? spin = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT");
        if (policy is not null || spin is not null)
            return $"OpenMP as set by you (OMP_WAIT_POLICY={policy ?? "unset"}, GOMP_SPINCOUNT={spin ?? "unset"})";
        if (!OperatingSystem.IsLinux()) return "OpenMP defaults";
        SetEnv("GOMP_SPINCOUNT", "1000", 0);
        return "GOMP_SPINCOUNT=1000";
    }
}
