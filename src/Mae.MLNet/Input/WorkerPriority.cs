using System.Runtime.InteropServices;

namespace Mae.MLNet.Input;

/// <summary>
/// Lowers the calling thread's scheduling priority (its Linux nice value). libtorch's CPU kernels run on OpenMP
/// threads that meet at a barrier after every parallel region; when decode workers hold cores for whole time slices,
/// every region waits for them. Measured with the tiny32 preset on 2 cores (`--bench input`): end to end from a JPEG
/// folder fell to about half the step-alone rate with the workers at the default priority. A niced worker still gets
/// every idle cycle, and yields the core as soon as an OpenMP thread wants it — but also to every other process, so the
/// workers are niced only for a CPU step, and only by <see cref="MaeImageInputOptions.CpuStepWorkerNice"/>, with as
/// many unniced "urgent" workers that decode only while the consumer waits (<see cref="BatchPrefetcher"/>). Linux only
/// (elsewhere a no-op).
/// </summary>
internal static class WorkerPriority
{
    [DllImport("libc", EntryPoint = "gettid", SetLastError = true)]
    static extern int GetTid();

    [DllImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    static extern int SetPriority(int which, int who, int prio);

    const int PrioProcess = 0; // with a thread id: that thread only (Linux)

    /// <summary>Whether <see cref="Lower"/> can act here (Linux).</summary>
    public static bool Supported => OperatingSystem.IsLinux();

    /// <summary>Sets this thread's nice value (0 … 19); false when the platform or the call declines.</summary>
    public static bool Lower(int nice)
    {
        if (nice <= 0 || !OperatingSystem.IsLinux()) return false;
        try { return SetPriority(PrioProcess, GetTid(), Math.Min(nice, 19)) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }
}
