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
/// library held this way, no step needs a GC-free region. <c>TorchSharpScalarTest</c> reads the library's IL and fails on
/// any call that makes a Scalar nothing holds: <c>Scalar</c>'s implicit conversions, and every TorchSharp method that
/// makes one inside (<c>tensor + tensor</c>, <c>1 - tensor</c>, <c>add_(tensor)</c>, <c>square()</c>, …); a
/// <c>ToScalar()</c> must go into a <c>using</c> local or a static field.
/// </summary>
internal static class ScalarMath
{
    /// <summary>alpha = 1 for additions; never disposed, so its native handle stays valid during every call.</summary>
    internal static readonly Scalar One = 1.0.ToScalar();
    /// <summary>The integer 1 of TorchSharp's <c>1 - tensor</c> (<see cref="OneMinus"/>).</summary>
    static readonly Scalar IntegerOne = 1.ToScalar();
    /// <summary>The exponent of <see cref="Squared"/> (TorchSharp's <c>square()</c> passes an integer 2 to <c>pow</c>).</summary>
    static readonly Scalar Two = 2.ToScalar();

    /// <summary><c>a + b</c> (broadcasting) without a temporary Scalar.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>a += b</c> in place (<c>add_(b)</c>) without a temporary Scalar.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, One);

    /// <summary><c>1 − t</c> as TorchSharp computes it (<c>(−t) + 1</c>) without a temporary Scalar.</summary>
    public static Tensor OneMinus(this Tensor t)
    {
        using var negative = t.negative();
        return negative.add(IntegerOne, One);
    }

    /// <summary><c>t²</c> as TorchSharp's <c>square()</c> (<c>pow(2)</c>) without a temporary Scalar.</summary>
    public static Tensor Squared(this Tensor t) => t.pow(Two);

    /// <summary><c>t *= value</c> in place.</summary>
    public static Tensor TimesInPlace(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.mul_(s);
    }

    /// <summary><c>t += value</c> in place.</summary>
    public static Tensor PlusInPlace(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.add_(s, One);
    }

    public static Tensor Times(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.mul(s);
    }

    public static Tensor Plus(this Tensor t, double value)
    {
        using var s = value.ToScalar();
        return t.add(s, One);
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
