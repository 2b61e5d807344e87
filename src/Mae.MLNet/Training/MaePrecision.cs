using static TorchSharp.torch;

namespace Mae.MLNet.Training;

/// <summary>Numeric precision of the forward/backward pass. Master weights and the optimizer stay fp32.</summary>
public enum MaePrecision
{
    /// <summary>Everything in float32 (the default).</summary>
    Fp32,
    /// <summary>bfloat16 compute for the matrix work, fp32 master weights, norms/softmax/loss in fp32.</summary>
    Bf16,
}

internal static class MaePrecisionExtensions
{
    /// <summary>THE place where the precision option becomes a compute dtype (null: fp32 throughout).</summary>
    public static ScalarType? ComputeDType(this MaePrecision precision) => precision == MaePrecision.Bf16 ? ScalarType.BFloat16 : null;
}
