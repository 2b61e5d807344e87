using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Tensor-with-number arithmetic that keeps the libtorch Scalar alive for the whole native call. TorchSharp's
/// <see cref="Scalar"/> wraps a raw native pointer and has a finalizer; the implicit conversion in <c>tensor * 0.5</c>
/// leaves nothing referencing the temporary once its handle has been read, so under GC pressure the finalizer can
/// free it while libtorch is still using it. Seen here as intermittent libtorch errors ("Expected false to be true"
/// from Scalar::toFloat, "Unknown scalar type") in attention and in training. Hot paths use these helpers instead.
/// The same holds for TorchSharp's own <c>tensor + tensor</c>, which passes a temporary alpha = 1: <see cref="Plus(Tensor, Tensor)"/>
/// passes <see cref="One"/>, which a static field keeps alive for the life of the process. With every temporary of the
/// inference path held this way, inference needs no GC-free region (<c>Runtime/NoGcScope</c>).
/// </summary>
internal static class ScalarMath
{
    /// <summary>alpha = 1 for additions; never disposed, so its native handle stays valid during every call.</summary>
    static readonly Scalar One = 1.0.ToScalar();

    /// <summary><c>a + b</c> (broadcasting) without a temporary Scalar.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    public static Tensor Times(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.mul(s);
    }

    public static Tensor Plus(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.add(s);
    }

    public static Tensor DividedBy(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.div(s);
    }

    public static Tensor ClampTo(this Tensor t, double min, double max)
    {
        using var lo = min.ToScalar();
        using var hi = max.ToScalar();
        return t.clamp(lo, hi);
    }
}
