using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Runtime;

/// <summary>Where tensors live: <see cref="Auto"/> picks CUDA when libtorch sees a GPU, else the CPU.</summary>
public enum MaeDevice
{
    Auto,
    Cpu,
    Cuda,
}

/// <summary>The device option's rules (internal: the public door is <see cref="TorchRuntime.Resolve(MaeDevice, int)"/>).</summary>
internal static class MaeDeviceExtensions
{
    /// <summary>Resolves the option to a libtorch device. Asking for CUDA on a build or machine without it throws
    /// <see cref="InvalidOperationException"/> that says how to get it.</summary>
    public static Device Resolve(MaeDevice device, int cudaIndex = 0)
    {
        switch (device)
        {
            case MaeDevice.Cpu:
                return CPU;
            case MaeDevice.Auto:
                return TorchRuntime.CudaAvailable ? new Device(DeviceType.CUDA, cudaIndex) : CPU;
            case MaeDevice.Cuda:
                if (!TorchRuntime.CudaAvailable)
                    throw new InvalidOperationException(
                        "Device 'cuda' was requested but libtorch sees no CUDA device. Build with -p:MaeUseCuda=true " +
                        "(references TorchSharp-cuda-linux instead of the CPU libtorch) on a machine with an NVIDIA GPU and driver, or use 'auto' / 'cpu'.");
                int count = TorchRuntime.CudaDeviceCount;
                if (cudaIndex < 0 || cudaIndex >= count)
                    throw new ArgumentOutOfRangeException(nameof(cudaIndex), cudaIndex, $"CUDA device index must be in [0, {count}).");
                return new Device(DeviceType.CUDA, cudaIndex);
            default:
                throw new ArgumentOutOfRangeException(nameof(device), device, "Expected Auto, Cpu or Cuda.");
        }
    }

    /// <summary>Parses "auto", "cpu" or "cuda" (case-insensitive).</summary>
    public static MaeDevice Parse(string text) => text?.Trim().ToLowerInvariant() switch
    {
        "auto" => MaeDevice.Auto,
        "cpu" => MaeDevice.Cpu,
        "cuda" or "gpu" => MaeDevice.Cuda,
        _ => throw new ArgumentException($"Unknown device '{text}'. Expected auto, cpu or cuda.", nameof(text)),
    };
}
