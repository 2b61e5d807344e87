using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

internal static class TensorAssert
{
    /// <summary>max|a − b| ≤ rtol · max|b| (+ a tiny floor for all-zero references).</summary>
    public static double RelativeError(Tensor actual, Tensor expected)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, "shape");
        using var a = actual.detach().to(float64).cpu();
        using var b = expected.detach().to(float64).cpu();
        using var diff = (a - b).abs().max();
        using var scale = b.abs().max();
        return diff.item<double>() / Math.Max(scale.item<double>(), 1e-12);
    }

    public static void Close(Tensor actual, Tensor expected, double rtol, string what)
    {
        double err = RelativeError(actual, expected);
        Assert.IsTrue(err <= rtol, $"{what}: relative error {err:E2} > {rtol:E0}");
    }

    /// <summary>Same shape and exactly equal elements.</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b.to(a.dtype));
        using var all = eq.all();
        return all.item<bool>();
    }
}
