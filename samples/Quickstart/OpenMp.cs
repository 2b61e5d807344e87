using System.Runtime.InteropServices;

namespace Mae.MLNet.Quickstart;

/// <summary>
/// libtorch's CPU kernels run on OpenMP (its bundled libgomp). By default idle OpenMP threads spin while waiting for
/// the next parallel region; when other processes keep the cores busy, a spinning or descheduled thread holds up every
/// barrier and training steps stall for seconds. Measured on a 2-core machine under load from other processes (the
/// quickstart's MAE, 30 steps of 64 images): 38 s with the default policy, 1.3–1.7 s with OMP_WAIT_POLICY=PASSIVE.
/// </summary>
public static class OpenMp
{
    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetEnv(string name, string value, int overwrite);

    /// <summary>Sets OMP_WAIT_POLICY=PASSIVE in the native environment unless the user set a policy. Must run before
    /// libtorch is loaded (the first TorchSharp call): libgomp reads it once. (.NET's Environment.SetEnvironmentVariable
    /// does not reach native getenv on Unix, hence setenv.)</summary>
    public static string PreferPassiveWaiting()
    {
        string? policy = Environment.GetEnvironmentVariable("OMP_WAIT_POLICY");
        if (policy is not null || !OperatingSystem.IsLinux()) return policy ?? "default";
        SetEnv("OMP_WAIT_POLICY", "PASSIVE", 0);
        return "PASSIVE";
    }
}
