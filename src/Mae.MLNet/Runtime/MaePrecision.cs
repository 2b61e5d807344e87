using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Runtime;

/// <summary>Numeric precision of the forward/backward pass. Master weights and the optimizer stay fp32.</summary>
public enum MaePrecision
{
    /// <summary>Everything in float32 (the library's default: results match the official code to ~5e-7).</summary>
    Fp32,
    /// <summary>bfloat16 compute for the matrix work, fp32 master weights, norms/softmax/loss in fp32.</summary>
    Bf16,
    /// <summary><see cref="Bf16"/> where it is fast (a CUDA device, or a CPU with native bf16 dot products:
    /// <see cref="TorchRuntime.CpuHasNativeBf16"/>), else <see cref="Fp32"/>. The <c>mae</c> tool's default.</summary>
    Auto,
}

/// <summary>Where <see cref="MaePrecision.Auto"/> becomes a concrete precision, and a precision a compute dtype
/// (the public door is <see cref="TorchRuntime.Resolve(MaePrecision, DeviceType, bool?)"/>).</summary>
internal static class MaePrecisionExtensions
{
    /// <summary><paramref name="precision"/> itself unless it is <see cref="MaePrecision.Auto"/>; then bf16 on CUDA or
    /// on a CPU with <paramref name="cpuHasNativeBf16"/> (default: this machine's), else fp32.</summary>
    public static MaePrecision Resolve(MaePrecision precision, DeviceType device, bool? cpuHasNativeBf16 = null)
    {
        if (precision != MaePrecision.Auto) return precision;
        bool fast = device == DeviceType.CUDA || (device == DeviceType.CPU && (cpuHasNativeBf16 ?? TorchRuntime.CpuHasNativeBf16));
        return fast ? MaePrecision.Bf16 : MaePrecision.Fp32;
    }

    /// <summary>THE place where the precision option becomes a compute dtype for a run on <paramref name="device"/>
    /// (null: fp32 throughout).</summary>
    internal static ScalarType? ComputeDType(this MaePrecision precision, DeviceType device)
        => precision.Resolve(device) == MaePrecision.Bf16 ? ScalarType.BFloat16 : null;
}
