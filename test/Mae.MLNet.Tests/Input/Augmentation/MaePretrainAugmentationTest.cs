using Mae.MLNet.Runtime;
using Mae.MLNet.Tests.Model;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Input.Augmentation;

[TestClass]
public class MaePretrainAugmentationTest
{
    private static MaeAugmentationOptions NoNorm(int size) => new() { OutputSize = size, Normalization = PixelNormalization.Identity(3) };

    [TestMethod]
    public void UnitScaleAndRatioGiveTheIdentityCrop()
    {
        TorchRuntime.Seed(1);
        using var x = rand(4, 3, 16, 16);
        foreach (var resampler in new[] { CropResampler.SeparablePilBicubic, CropResampler.PerSampleInterpolate })
        {
            var o = NoNorm(16);
            o.ScaleMin = o.ScaleMax = 1; o.RatioMin = o.RatioMax = 1; o.HorizontalFlipProbability = 0; o.Resampler = resampler;
            var (boxes, _) = RandomResizedCropSampler.Sample(4, 16, 16, o);
            Assert.IsTrue(boxes.All(b => b == CropBox.Full(16, 16)), "every box is the whole image");
            using var y = new MaePretrainAugmentation(o).Apply(x);
            TensorAssert.Close(y, x, 1e-6, $"{resampler} identity");
        }
        // A same-size crop out of a larger image goes through the resamplers and must return the sub-image.
        using var big = rand(2, 3, 20, 20);
        using var sub = big[.., .., 2..18, 3..19];
        foreach (var resampler in new[] { CropResampler.SeparablePilBicubic, CropResampler.PerSampleInterpolate })
        {
            var o = NoNorm(16);
            o.Resampler = resampler;
            var box = new CropBox(2, 3, 16, 16);
            using var y = new MaePretrainAugmentation(o).Apply(big, new[] { box, box }, new[] { false, false });
            TensorAssert.Close(y, sub, 1e-6, $"{resampler} same-size crop");
        }
        // The resampling matrix of a same-size full crop is the identity (f(0) = 1, f(±1) = f(±2) = 0).
        float[] w = MaePretrainAugmentation.PilBicubicWeights(new[] { (0, 16) }, 16, 16, null);
        for (int k = 0; k < 16; k++)
            for (int p = 0; p < 16; p++)
                Assert.AreEqual(k == p ? 1f : 0f, w[k * 16 + p], 1e-7f, $"W[{k},{p}]");
    }

    [TestMethod]
    public void PilBicubicWeightsMatchClosedFormForTwoTimesUpscale()
    {
        // Crop of 16 → 32: output 0 centres at 0.25; taps p = 0, 1 at distances 0.25 and 1.25 (a = −0.5):
        // f(0.25) = (1.5·0.25 − 2.5)·0.25² + 1 = 0.8671875, f(1.25) = ((−3.75·1.25 + 8)·1.25 − 4)·(−0.5) = −0.0703125.
        float[] w = MaePretrainAugmentation.PilBicubicWeights(new[] { (0, 16) }, 16, 32, null);
        double f0 = 0.8671875, f1 = -0.0703125;
        Assert.AreEqual(f0 / (f0 + f1), w[0], 1e-6);
        Assert.AreEqual(f1 / (f0 + f1), w[1], 1e-6);
        for (int p = 2; p < 16; p++) Assert.AreEqual(0f, w[p], $"W[0,{p}]");
        // Reversed (flipped) rows are the same rows in mirrored order.
        float[] r = MaePretrainAugmentation.PilBicubicWeights(new[] { (0, 16) }, 16, 32, new[] { true });
        for (int k = 0; k < 32; k++)
            for (int p = 0; p < 16; p++)
                Assert.AreEqual(w[k * 16 + p], r[(31 - k) * 16 + p], $"row {k}");
    }

    [TestMethod]
    public void ResamplingReproducesALinearRampAtTheCropCentres()
    {
        // Pixel value = (x + ½)/W along columns. Keys' cubic with a = −0.5 sampled at unit spacing reproduces
        // linear functions exactly (Σ_p f(p − t)·(p − t) = 0 for every shift t), so when upscaling, an interior
        // output column k of crop [left, left + w) → S equals (left + (k + ½)·w/S)/W.
        int h = 32, wd = 48, s = 16;
        using var ramp = (arange(wd, dtype: ScalarType.Float64) + 0.5) / wd;
        using var img = ramp.reshape(1, 1, 1, wd).expand(2, 3, h, wd).contiguous();
        var box = new CropBox(4, 8, 10, 12); // upscale 12 → 16 in x, 10 → 16 in y
        var o = NoNorm(s);
        using var y = new MaePretrainAugmentation(o).Apply(img, new[] { box, box }, new[] { false, true });
        double scale = 12.0 / s, support = 2;
        int checkedCols = 0;
        for (int k = 0; k < s; k++)
        {
            double c = (k + 0.5) * scale; // crop coordinates
            if (c - support < 0 || c + support > 12) continue; // taps would be truncated at the crop edge
            double expected = (8 + c) / wd;
            Assert.AreEqual(expected, y[0, 1, 7, k].item<double>(), 1e-6, $"column {k}");
            Assert.AreEqual(expected, y[1, 2, 3, s - 1 - k].item<double>(), 1e-6, $"flipped column {k}");
            checkedCols++;
        }
        Assert.IsTrue(checkedCols >= 8, $"checked {checkedCols} interior columns");
        Assert.AreEqual(ScalarType.Float64, y.dtype);
    }

    [TestMethod]
    public void FlipOnlyConfigurationFlipsExactly()
    {
        TorchRuntime.Seed(2);
        using var x = rand(5, 1, 8, 8);
        var o = new MaeAugmentationOptions { OutputSize = 8, Channels = 1, RandomResizedCrop = false, Normalization = PixelNormalization.Identity(1), HorizontalFlipProbability = 1 };
        using var flipped = new MaePretrainAugmentation(o).Apply(x);
        using var expected = x.flip(3);
        Assert.IsTrue(TensorAssert.Same(flipped, expected), "p = 1 flips every image");
        o.HorizontalFlipProbability = 0;
        using var kept = new MaePretrainAugmentation(o).Apply(x);
        Assert.IsTrue(TensorAssert.Same(kept, x), "p = 0 keeps every image");
        // Mixed flags: the separable resampler with full-size crops flips exactly too.
        var full = Enumerable.Repeat(CropBox.Full(8, 8), 5).ToArray();
        var flags = new[] { true, false, true, true, false };
        var o2 = new MaeAugmentationOptions { OutputSize = 6, Channels = 1, Normalization = PixelNormalization.Identity(1) };
        using var big = rand(5, 1, 6, 6);
        using var mixed = new MaePretrainAugmentation(o2).Apply(big, Enumerable.Repeat(CropBox.Full(6, 6), 5).ToArray(), flags);
        for (int n = 0; n < 5; n++)
        {
            using var want = flags[n] ? big[n].flip(2) : big[n].alias();
            Assert.IsTrue(TensorAssert.Same(mixed[n], want), $"sample {n}");
        }
    }

    [TestMethod]
    public void FlipProbabilityIsAboutOneHalf()
    {
        TorchRuntime.Seed(3);
        var (_, flips) = RandomResizedCropSampler.Sample(4000, 32, 32, new MaeAugmentationOptions { OutputSize = 32 });
        double frac = flips.Count(f => f) / 4000.0;
        Assert.AreEqual(0.5, frac, 0.04, "binomial(4000, ½): 5 σ ≈ 0.04");
    }

    [TestMethod]
    public void CropBoxesRespectScaleAndRatioBounds()
    {
        TorchRuntime.Seed(4);
        int h = 48, w = 64, n = 3000;
        var o = new MaeAugmentationOptions { OutputSize = 32 };
        var (boxes, _) = RandomResizedCropSampler.Sample(n, h, w, o);
        double sumArea = 0;
        foreach (var b in boxes)
        {
            Assert.IsTrue(b.Top >= 0 && b.Left >= 0 && b.Top + b.Height <= h && b.Left + b.Width <= w, $"{b} inside");
            // w, h are rounded: allow ½ pixel on each side.
            double areaHi = (b.Width + 0.5) * (b.Height + 0.5) / (h * w), areaLo = (b.Width - 0.5) * (b.Height - 0.5) / (h * w);
            Assert.IsTrue(areaHi >= 0.2 && areaLo <= 1.0, $"{b} area fraction in [0.2, 1]");
            double ratioHi = (b.Width + 0.5) / (b.Height - 0.5), ratioLo = (b.Width - 0.5) / (b.Height + 0.5);
            Assert.IsTrue(ratioHi >= 3.0 / 4 && ratioLo <= 4.0 / 3, $"{b} ratio in [3/4, 4/3]");
            sumArea += (double)b.Width * b.Height / (h * w);
        }
        // Accepted draws are U(0.2, 1) truncated where the box does not fit (h ≤ 48 cuts tall large boxes), so the
        // mean lies below 0.6 and well above the lower bound.
        double mean = sumArea / n;
        Assert.IsTrue(mean > 0.45 && mean < 0.6, $"mean area fraction {mean:F3}");
        Assert.IsTrue(boxes.Min(b => (double)b.Width * b.Height / (h * w)) < 0.25, "small crops occur");
        Assert.IsTrue(boxes.Select(b => b.Left).Distinct().Count() > 10, "offsets vary");
    }

    [TestMethod]
    public void CropBoxFromUniformsFollowsTorchvisionFormula()
    {
        var u = new double[22];
        u[0] = 0.5; u[1] = 0.5; u[20] = 0.5; u[21] = 0.999;
        // area = 100² · (0.2 + 0.5·0.8) = 6000, ratio = exp(0) = 1 → w = h = round(77.46) = 77; i = ⌊0.5·24⌋, j = ⌊0.999·24⌋.
        var b = RandomResizedCropSampler.FromUniforms(100, 100, 0.2, 1.0, 3.0 / 4, 4.0 / 3, u);
        Assert.AreEqual(new CropBox(12, 23, 77, 77), b);
        // No attempt fits a 48×64 image with area 1 and ratio 1 (w = h = 55 > 48): central crop with the ratio
        // clamped to 1 → 48×48 at column (64 − 48)/2 = 8.
        var fallback = RandomResizedCropSampler.FromUniforms(48, 64, 1, 1, 1, 1, u);
        Assert.AreEqual(new CropBox(0, 8, 48, 48), fallback);
        // Tall image 64×20 with ratio ≥ 3/4 and area 1: fallback keeps the width, h = round(20 / 0.75) = 27.
        var tall = RandomResizedCropSampler.FromUniforms(64, 20, 1, 1, 0.75, 4.0 / 3, u);
        Assert.AreEqual(new CropBox((64 - 27) / 2, 0, 27, 20), tall);
    }

    [TestMethod]
    public void NormalisationIsPerChannelMeanAndStd()
    {
        var values = new float[] { 0f, 0.25f, 0.5f, 1f };
        using var x = tensor(values.Concat(values).Concat(values).ToArray(), new long[] { 1, 3, 2, 2 });
        var o = new MaeAugmentationOptions { OutputSize = 2, RandomResizedCrop = false, HorizontalFlipProbability = 0,
            Normalization = new PixelNormalization { Mean = new[] { 0.1f, 0.2f, 0.3f }, Std = new[] { 0.5f, 0.25f, 2f } } };
        using var y = new MaePretrainAugmentation(o).Apply(x);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 4; i++)
                Assert.AreEqual((values[i] - o.Normalization.Mean[c]) / o.Normalization.Std[c], y[0, c, i / 2, i % 2].item<float>(), 1e-6f, $"c {c} i {i}");
        // Defaults: ImageNet for 3 channels, 0.449 / 0.226 for one.
        using var grey = full(1, 1, 2, 2, 0.449f + 0.226f);
        var og = new MaeAugmentationOptions { OutputSize = 2, Channels = 1, RandomResizedCrop = false };
        using var gy = new MaePretrainAugmentation(og).Apply(grey);
        Assert.AreEqual(1f, gy.max().item<float>(), 1e-5f);
        CollectionAssert.AreEqual(new[] { 0.485f, 0.456f, 0.406f }, new MaeAugmentationOptions().ResolvedNormalization().Mean);
        CollectionAssert.AreEqual(new[] { 0.229f, 0.224f, 0.225f }, new MaeAugmentationOptions().ResolvedNormalization().Std);
    }

    [TestMethod]
    public void OutputFollowsInputShapeDtypeAndDeviceAndIsDeterministicWithASeed()
    {
        var aug = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 24 });
        TorchRuntime.Seed(5);
        using var x = rand(3, 3, 40, 36, dtype: ScalarType.Float64);
        TorchRuntime.Seed(6);
        using var a = aug.Apply(x);
        CollectionAssert.AreEqual(new long[] { 3, 3, 24, 24 }, a.shape);
        Assert.AreEqual(ScalarType.Float64, a.dtype);
        Assert.AreEqual(TorchSharp.DeviceType.CPU, a.device_type);
        using var after = rand(1, dtype: ScalarType.Float64);
        TorchRuntime.Seed(6);
        using var b = aug.Apply(x);
        Assert.IsTrue(TensorAssert.Same(a, b), "same seed, same output");
        // The transform consumed exactly 3 · 23 doubles of the global generator.
        TorchRuntime.Seed(6);
        using (rand(3, RandomResizedCropSampler.DrawsPerSample, dtype: ScalarType.Float64)) { }
        using var expectedNext = rand(1, dtype: ScalarType.Float64);
        Assert.AreEqual(expectedNext.item<double>(), after.item<double>(), "generator advanced by 3·23 draws");
        TorchRuntime.Seed(7);
        using var c = aug.Apply(x);
        Assert.IsFalse(TensorAssert.Same(a, c), "another seed, another crop");
        using var half = aug.Apply(x.to(ScalarType.Float32));
        Assert.AreEqual(ScalarType.Float32, half.dtype);
    }

    [TestMethod]
    public void RejectsBadBatches()
    {
        var aug = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 16 });
        using var rank3 = rand(3, 16, 16);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(rank3)).Message, "4-D");
        using var grey = rand(2, 1, 16, 16);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(grey)).Message, "1 channels");
        using var small = rand(2, 3, 12, 20);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(small));
        StringAssert.Contains(ex.Message, "12×20");
        StringAssert.Contains(ex.Message, "16×16");
        using var nan = rand(2, 3, 16, 16);
        nan[1, 2, 3, 4] = float.NaN;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(nan)).Message, "NaN");
        using var empty = zeros(0, 3, 16, 16);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(empty)).Message, "empty");
        using var ints = zeros(new long[] { 1, 3, 16, 16 }, dtype: ScalarType.Byte);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(ints)).Message, "floating-point");
        using var ok = rand(2, 3, 16, 16);
        Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(ok, new[] { new CropBox(0, 0, 17, 16), CropBox.Full(16, 16) }, new[] { false, false }));
        Assert.ThrowsExactly<ArgumentException>(() => aug.Apply(ok, new[] { CropBox.Full(16, 16) }, new[] { false }));
    }

    [TestMethod]
    public void RejectsInvalidOptions()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { OutputSize = 0 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { ScaleMin = 0 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { ScaleMax = 1.5 }.Validate());
        Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { ScaleMin = 0.8, ScaleMax = 0.5 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { RatioMin = 0 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { RatioMax = double.PositiveInfinity }.Validate());
        Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { RatioMin = 2, RatioMax = 1 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { HorizontalFlipProbability = 1.1 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new MaeAugmentationOptions { Channels = 0 }.Validate());
        var stdLen = Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { Normalization = new() { Std = new[] { 0.2f } } }.Validate());
        StringAssert.Contains(stdLen.Message, "1 standard deviations; the images have 3 channels");
        Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { Normalization = new() { Std = new[] { 0.2f, 0f, 0.2f } } }.Validate());
        Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { Normalization = new() { Mean = new[] { 0.2f, float.NaN, 0.2f } } }.Validate());
        Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { Channels = 2 }.Validate());
        var scaled = Assert.ThrowsExactly<ArgumentException>(() => new MaeAugmentationOptions { Normalization = new() { Scale = 1f / 255 } }.Validate());
        StringAssert.Contains(scaled.Message, "Scale must be 1");
        new MaeAugmentationOptions { Channels = 2, Normalization = new() { Mean = new[] { 0.5f, 0.5f }, Std = new[] { 0.5f, 0.5f } } }.Validate();
    }

    [TestMethod]
    public void LeavesNoLiveTensorsBehind()
    {
        foreach (var resampler in new[] { CropResampler.SeparablePilBicubic, CropResampler.PerSampleInterpolate })
        {
            var aug = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = 16, Resampler = resampler });
            using var x = rand(4, 3, 20, 20);
            using (aug.Apply(x)) { } // warm-up
            long before = TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = 0; i < 20; i++) using (aug.Apply(x)) { }
            Assert.AreEqual(before, TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount, $"{resampler}: live tensors");
        }
    }
}
