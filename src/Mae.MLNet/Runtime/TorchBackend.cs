using System.Runtime.CompilerServices;
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
internal static class TorchBackend
{
    static readonly Lazy<Exception?> Failure = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Runs when the Mae.MLNet assembly is first used, before anything can load libtorch: the OpenMP wait
    /// setting (libgomp reads it once, when it loads), glibc malloc's thresholds (before libtorch allocates), then the
    /// run-time libLibTorchSharp.so fix, so that user code that calls TorchSharp directly after its first use of
    /// Mae.MLNet (a notebook cell) finds libtorch loadable too.
    /// In this order, in one place: the order of several module initializers is not defined.</summary>
#pragma warning disable CA2255 // A library module initializer is wanted: it must run before libtorch is first loaded.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void BeforeLibTorchLoads()
    {
        OpenMpWaitPolicy.Apply();
        GlibcMallocPolicy.Apply();
        LibTorchSharpLoader.Prepare();
    }

    /// <summary>Throws a <see cref="MaeTorchBackendException"/> naming the packages to add when libtorch cannot be loaded
    /// (probed once per process).</summary>
    public static void EnsureAvailable()
    {
        if (Failure.Value is not { } e) return;
        var innermost = e;
        while (innermost.InnerException is { } inner) innermost = inner;
        string cause = innermost.Message.Split('\n')[0].Trim();
        string advice = e.ToString().Contains("GLIBCXX", StringComparison.Ordinal)
            ? "The host's libstdc++ is older than the one TorchSharp's native library asks for, and neither the Mae.MLNet build fix " +
              "(build/Mae.MLNet.targets, on by default) nor its run-time fix (a per-user copy, see README 'Notebooks') applied" +
              (LibTorchSharpLoader.Failure is { } fixFailure ? $" (run-time fix: {fixFailure.Message})" : "") +
              ": build the application with the Mae.MLNet package referenced and without -p:MaeFixLibTorchSharp=false."
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
        LibTorchSharpLoader.Prepare();   // done already by the module initializer; kept here so the order is visible
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
