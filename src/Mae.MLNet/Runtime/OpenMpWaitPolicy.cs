using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Mae.MLNet.Runtime;

/// <summary>
/// libtorch's CPU kernels run on OpenMP (libgomp), whose worker threads by default spin for a while after each
/// parallel region. When the machine has other work (a second process, a busy CI box, ML.NET's own threads), the
/// spinning threads steal the cores the next region needs: measured here on 2 cores under load, a small MAE
/// training step fell from ≈2 000 to 40–170 images/s with 2 threads, and recovered to ≈1 500–2 200 with
/// <c>OMP_WAIT_POLICY=PASSIVE</c>. libgomp reads the variable once, when libtorch loads, and .NET's
/// Environment.SetEnvironmentVariable does not reach native code, so this sets it in the process environment with
/// libc's setenv when the Mae.MLNet assembly loads — unless the user has set it (then theirs wins).
/// </summary>
internal static class OpenMpWaitPolicy
{
    [DllImport("libc", EntryPoint = "setenv", SetLastError = false)]
    static extern int SetEnv(string name, string value, int overwrite);

#pragma warning disable CA2255 // A library module initializer is wanted: it must run before libtorch is first loaded.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        if (Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null) return;
        try
        {
            SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc setenv reachable: leave the default.
        }
    }
}
