using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// Stochastic depth, timm's <c>drop_path</c>: with probability p a sample's whole residual branch is zeroed,
/// otherwise it is divided by 1 − p, so its expectation is unchanged. Used by <see cref="Block"/>.
/// </summary>
internal static class DropPath
{
    /// <summary>
    /// The per-sample keep mask is drawn from libtorch's global CPU generator (so checkpoints of its state cover it on
    /// any device) as <c>floor(1 − p + U[0, 1))</c>, timm's formula. Identity when <paramref name="p"/> is 0 or
    /// <paramref name="training"/> is false.
    /// </summary>
    public static Tensor Apply(Tensor x, double p, bool training)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (p == 0 || !training) return x.alias();
        CheckRate(p, nameof(p));
        using var scope = NewDisposeScope();
        double keep = 1 - p;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        var mask = rand(shape).Plus(keep).floor_().to(x.dtype, x.device);
        return (x.DividedBy(keep) * mask).MoveToOuterDisposeScope();
    }

    /// <summary>Throws unless 0 ≤ <paramref name="rate"/> &lt; 1.</summary>
    internal static void CheckRate(double rate, string name)
    {
        if (!(rate >= 0 && rate < 1))
            throw new ArgumentOutOfRangeException(name, rate, $"A drop-path rate must be in [0, 1); got {rate}.");
    }
}
