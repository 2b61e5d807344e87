using TorchSharp;

namespace Mae.MLNet.Runtime;

/// <summary>No libtorch could be loaded: the application lacks a backend package, or its native fix did not apply.</summary>
public sealed class MaeTorchBackendException(string message, Exception inner) : InvalidOperationException(message, inner);

/// <summary>
/// Mae.MLNet depends on TorchSharp alone; the application chooses the libtorch backend package (libtorch-cpu, or
/// TorchSharp-cuda-linux / TorchSharp-cuda-windows), as with TorchSharp's own packages. Without one, TorchSharp's
/// first native call fails with a DllNotFoundException listing a dozen probed paths. Everything in the library that
/// makes the first tensor calls <see cref="EnsureAvailable"/> first, which says instead what to add.
/// </summary>
public static class TorchBackend
{
    static readonly Lazy<Exception?> Failure = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Throws a <see cref="MaeTorchBackendException"/> naming the packages to add when libtorch cannot be loaded
    /// (probed once per process).</summary>
    public static void EnsureAvailable()
    {
        if (Failure.Value is not { } e) return;
        var innermost = e;
        while (innermost.InnerException is { } inner) innermost = inner;
        string cause = innermost.Message.Split('\n')[0].Trim();
        string advice = e.ToString().Contains("GLIBCXX", StringComparison.Ordinal)
            ? "The host's libstdc++ is older than the one TorchSharp's native library asks for, and the Mae.MLNet build fix " +
              "(build/Mae.MLNet.targets, on by default) did not apply to this output: build the application with the Mae.MLNet " +
              "package referenced and without -p:MaeFixLibTorchSharp=false."
            : $"Mae.MLNet depends on TorchSharp only; the application must reference a libtorch backend package: libtorch-cpu (CPU), " +
              $"or TorchSharp-cuda-linux / TorchSharp-cuda-windows (NVIDIA GPU), of the version that goes with TorchSharp " +
              $"{typeof(torch).Assembly.GetName().Version?.ToString(3)}.";
        throw new MaeTorchBackendException($"libtorch could not be loaded. {advice} (TorchSharp: {cause})", e);
    }

    /// <summary><paramref name="name"/>, after <see cref="EnsureAvailable"/>: lets a module check before its base
    /// constructor makes the first native call.</summary>
    internal static string Checked(string name)
    {
        EnsureAvailable();
        return name;
    }

    static Exception? Probe()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return null;
        }
        catch (Exception e) when (e is DllNotFoundException or NotSupportedException or TypeInitializationException or EntryPointNotFoundException or BadImageFormatException)
        {
            return e;
        }
    }
}
