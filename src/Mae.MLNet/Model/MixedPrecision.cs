using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Mixed precision by hand (TorchSharp has no autocast): the matrix work runs in a lower compute dtype
/// (bfloat16) while the parameters stay fp32 "master weights". Each call casts the fp32 weight and the activation
/// to the compute dtype; autograd's cast backward hands the gradient back to the fp32 parameter as fp32, so the
/// optimizer never sees anything but fp32. Everything that is not a matrix product (LayerNorm, softmax, residual
/// adds, the loss) stays fp32: a bf16 result added to an fp32 residual is promoted to fp32 by the add itself.
/// With a <c>null</c> compute dtype every method is exactly the plain fp32 operation.
/// </summary>
internal static class MixedPrecision
{
    /// <summary>Checks a requested compute dtype. <c>null</c> and <see cref="ScalarType.Float32"/> both mean "plain
    /// fp32" (returned as <c>null</c>); <see cref="ScalarType.BFloat16"/> and <see cref="ScalarType.Float16"/> are
    /// the reduced-precision choices (float16 without loss scaling risks gradient underflow; bfloat16 does not).</summary>
    public static ScalarType? Validate(ScalarType? computeDType) => computeDType switch
    {
        null or ScalarType.Float32 => null,
        ScalarType.BFloat16 or ScalarType.Float16 => computeDType,
        _ => throw new ArgumentException(
            $"The compute dtype must be null (fp32), Float32, BFloat16 or Float16; got {computeDType}.", nameof(computeDType)),
    };

    /// <summary><paramref name="x"/> in the compute dtype; <paramref name="x"/> itself (same handle) when there is none
    /// or it already has that dtype, so the caller must not dispose the result separately from x. Inside
    /// <see cref="UseCastWeights"/>, a parameter cast once for the step comes back as that copy (owned by the scope's
    /// owner), as autocast's weight cache does.</summary>
    public static Tensor Cast(Tensor x, ScalarType? computeDType)
    {
        if (computeDType is not { } dtype || x.dtype == dtype) return x;
        if (castWeights is not null && castWeights.TryGetValue(x.Handle, out var cast) && cast.dtype == dtype) return cast;
        return x.to(dtype);
    }

    [ThreadStatic] static IReadOnlyDictionary<IntPtr, Tensor>? castWeights;

    /// <summary>
    /// Until the returned scope is disposed, <see cref="Cast"/> on this thread hands back the given reduced-precision
    /// copies of parameters (keyed by the fp32 parameter's handle) instead of casting them at each layer call. The
    /// caller owns the copies: they are leaves whose gradients it collects and hands to the fp32 parameters
    /// (see <c>Training/MaeFlatParameters</c>). Scopes do not nest.
    /// </summary>
    public static IDisposable UseCastWeights(IReadOnlyDictionary<IntPtr, Tensor> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        if (castWeights is not null) throw new InvalidOperationException("A cast-weights scope is already open on this thread.");
        castWeights = weights;
        return new CastWeightsScope();
    }

    sealed class CastWeightsScope : IDisposable
    {
        public void Dispose() => castWeights = null;
    }

    /// <summary><c>layer(x)</c> computed in the compute dtype (weight, bias and input cast); the result is in the
    /// compute dtype. Without a compute dtype it is exactly <c>layer.forward(x)</c>.</summary>
    public static Tensor Linear(Linear layer, Tensor x, ScalarType? computeDType)
    {
        if (computeDType is null) return layer.forward(x);
        using var scope = NewDisposeScope();
        var y = nn.functional.linear(Cast(x, computeDType), Cast(layer.weight!, computeDType),
            layer.bias is null ? null : Cast(layer.bias, computeDType));
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>A bias-carrying, unpadded, undilated <c>conv(x)</c> with the given stride, computed in the compute
    /// dtype; without one it is exactly <c>conv.forward(x)</c>.</summary>
    public static Tensor Conv2d(Conv2d conv, Tensor x, long stride, ScalarType? computeDType)
    {
        if (computeDType is null) return conv.forward(x);
        using var scope = NewDisposeScope();
        var y = nn.functional.conv2d(Cast(x, computeDType), Cast(conv.weight!, computeDType),
            conv.bias is null ? null : Cast(conv.bias, computeDType), strides: new[] { stride, stride });
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Softmax over the last dimension, always accumulated in fp32 (as autocast does), returned in the
    /// input's dtype so the following matmul stays in the compute dtype.</summary>
    public static Tensor Softmax(Tensor scores)
    {
        if (scores.dtype == ScalarType.Float32 || scores.dtype == ScalarType.Float64) return scores.softmax(-1);
        using var p = scores.softmax(-1, ScalarType.Float32);
        return p.to(scores.dtype);
    }
}
