using System.Runtime.InteropServices;

namespace Mae.MLNet.Runtime;

/// <summary>
/// libtorch's CPU kernels run on OpenMP (on Linux its bundled libgomp), whose idle threads spin before sleeping; on a
/// shared machine they steal the cores the next parallel region needs, and a short spin avoids that (measurements in
/// README.md, "Shared CPUs"). So this sets GOMP_SPINCOUNT=1000 when the Mae.MLNet assembly loads,
/// unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT (then theirs wins). libgomp reads the variables once, when
/// libtorch loads, and .NET's Environment.SetEnvironmentVariable does not reach native code, hence libc's setenv.
/// </summary>
internal static class OpenMpWaitPolicy
{
    [DllImport("libc", EntryPoint = "setenv", SetLastError = false)]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>What was decided, for logs: "GOMP_SPINCOUNT=1000", or the user's own setting.</summary>
    public static string Description { get; private set; } = "OpenMP defaults";

    /// <summary>Called by <see cref="TorchBackend"/>'s module initializer, before anything can load libtorch.</summary>
    internal static void Apply()
    {
        string? policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        string? spin = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT");
        if (policy is not null || spin is not null)
        {
            Description = $"OpenMP as set by you (OMP_WAIT_POLICY={policy ?? "unset"}, GOMP_SPINCOUNT={spin ?? "unset"})";
            return;
        }
        if (!OperatingSystem.IsLinux()) return; // GOMP_SPINCOUNT is libgomp's; other platforms keep their defaults
        try
        {
            SetEnv("GOMP_SPINCOUNT", "1000", 0);
            Description = "GOMP_SPINCOUNT=1000";
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc setenv reachable: leave the default.
        }
    }
}
