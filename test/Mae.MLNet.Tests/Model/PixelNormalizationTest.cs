using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>The one pixel normalisation: torchvision's ToTensor + Normalize, <c>(x · scale − mean[c]) / std[c]</c>, the
/// same bits whether applied to a batch tensor or one value (the decoders' lookup table).</summary>
[TestClass]
public class PixelNormalizationTest
{
    [TestMethod]
    public void BatchAndSingleValuesGiveTheSameBitsAsTheFormula()
    {
        var n = new PixelNormalization { Scale = 1f / 255, Mean = new[] { 0.485f, 0.456f, 0.406f }, Std = new[] { 0.229f, 0.224f, 0.225f } };
        // Every byte value in every channel: [1, 3, 16, 16].
        var bytes = Enumerable.Range(0, 3 * 256).Select(i => (float)(i % 256)).ToArray();
        using var x = tensor(bytes, new long[] { 1, 3, 16, 16 });
        using var y = n.Apply(x);
        var got = y.data<float>().ToArray();
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
            {
                float formula = (v * (1f / 255) - n.Mean[c]) / n.Std[c];   // float32 throughout, as torch computes it
                Assert.AreEqual(BitConverter.SingleToInt32Bits(formula), BitConverter.SingleToInt32Bits(got[c * 256 + v]), $"c {c} v {v}");
                Assert.AreEqual(BitConverter.SingleToInt32Bits(formula), BitConverter.SingleToInt32Bits(n.Apply((float)v, c)), $"scalar c {c} v {v}");
            }
        // float64 batches stay float64 (the augmentation's compute type).
        using var y64 = n.Apply(x.to(float64));
        Assert.AreEqual(ScalarType.Float64, y64.dtype);
        Assert.AreEqual((255 * (1.0 / 255f) - 0.406f) / 0.225f, y64[0, 2, 15, 15].item<double>(), 1e-6);
    }

    [TestMethod]
    public void DefaultsIdentityAndBadSettings()
    {
        CollectionAssert.AreEqual(new[] { 0.485f, 0.456f, 0.406f }, PixelNormalization.Default(3).Mean);
        CollectionAssert.AreEqual(new[] { PixelNormalization.GreyStd }, PixelNormalization.Default(1).Std);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => PixelNormalization.Default(2)).Message, "2 channels");
        var id = PixelNormalization.Identity(2);
        Assert.IsTrue(id.IsIdentity);
        Assert.IsFalse(PixelNormalization.Default(1).IsIdentity);
        using var x = randn(2, 2, 3, 3);
        using var y = id.Apply(x);
        Assert.IsTrue(x.eq(y).all().item<bool>());
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new PixelNormalization().Validate(1)).Message, "3 means");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new PixelNormalization { Std = new[] { 1f, -1f, 1f } }.Validate(3)).Message, "Std[1]");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => new PixelNormalization().Apply(x)).Message, "[N, 3, H, W]");
    }
}
