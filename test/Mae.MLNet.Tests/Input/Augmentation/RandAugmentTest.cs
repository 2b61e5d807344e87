using Mae.MLNet.Input;
using Mae.MLNet.Model;
using SkiaSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Input.Augmentation;

/// <summary>
/// RandAugment's policy and random erasing against timm's code read as formulas (auto_augment.py's level functions,
/// random_erasing.py's box), their draws' statistics, the options' parsing and checks, and the two input paths against
/// each other. The ops themselves are compared with Pillow in <see cref="RandAugmentPilParityTest"/>.
/// </summary>
[TestClass]
public unsafe class RandAugmentTest
{
    [TestMethod]
    public void ParsesTimmConfigStrings()
    {
        var r = MaeAugmentationOptions.RandAugmentOptions.Parse("rand-m9-mstd0.5-inc1");
        Assert.AreEqual((2, 9.0, 0.5, 10.0, 0.5, true), (r.Layers, r.Magnitude, r.MagnitudeStd, r.MagnitudeMax, r.Probability, r.Increasing));
        var q = MaeAugmentationOptions.RandAugmentOptions.Parse("rand-m7-n3-p0.8-mmax12");
        Assert.AreEqual((3, 7.0, 0.0, 12.0, 0.8, false), (q.Layers, q.Magnitude, q.MagnitudeStd, q.MagnitudeMax, q.Probability, q.Increasing));
        var d = MaeAugmentationOptions.RandAugmentOptions.Parse("rand");   // timm's defaults: m 10, n 2, mstd 0, not increasing
        Assert.AreEqual((2, 10.0, 0.0, false), (d.Layers, d.Magnitude, d.MagnitudeStd, d.Increasing));
        Assert.IsTrue(double.IsPositiveInfinity(MaeAugmentationOptions.RandAugmentOptions.Parse("rand-mstd101").MagnitudeStd), "mstd > 100 means uniform");
        var back = MaeAugmentationOptions.RandAugmentOptions.Parse(r.ToString());
        Assert.AreEqual((r.Layers, r.Magnitude, r.MagnitudeStd, r.Probability, r.Increasing), (back.Layers, back.Magnitude, back.MagnitudeStd, back.Probability, back.Increasing));
    }

    [TestMethod]
    public void BadConfigsAreRefusedWithTheSection()
    {
        foreach (var (bad, says) in new[] { ("augmix-m5", "starts with \"rand\""), ("rand-x9", "\"x9\""), ("rand-tweights", "\"tweights\""),
                     ("rand-m", "\"m\""), ("rand-n0", "Layers"), ("rand-p1.5", "Probability") })
        {
            var e = Assert.Throws<ArgumentException>(() => MaeAugmentationOptions.RandAugmentOptions.Parse(bad), bad);
            StringAssert.Contains(e.Message, says, bad);
        }
        var o = new MaeAugmentationOptions { Channels = 4, RandAugment = new MaeAugmentationOptions.RandAugmentOptions() };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => o.Validate()).Message, "Channels is 4");
        var p = new MaeAugmentationOptions { RandomErasingProbability = 1.5 };
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => p.Validate()).Message, "RandomErasingProbability must be in [0, 1]");
    }

    [TestMethod]
    public void LevelsAreTimmsAtMagnitudeNine()
    {
        // auto_augment.py's LEVEL_TO_ARG at m = 9 (level 0.9), worked by hand.
        Assert.AreEqual(27.0, RandAugment.Level(RandAugmentOp.Rotate, 9, true, false), 1e-12);
        Assert.AreEqual(-27.0, RandAugment.Level(RandAugmentOp.Rotate, 9, true, true), 1e-12);
        Assert.AreEqual(1.0, RandAugment.Level(RandAugmentOp.Posterize, 9, true, false));        // 4 − int(3.6)
        Assert.AreEqual(3.0, RandAugment.Level(RandAugmentOp.Posterize, 9, false, false));       // int(3.6)
        Assert.AreEqual(26.0, RandAugment.Level(RandAugmentOp.Solarize, 9, true, false));        // 256 − int(230.4)
        Assert.AreEqual(230.0, RandAugment.Level(RandAugmentOp.Solarize, 9, false, false));
        Assert.AreEqual(99.0, RandAugment.Level(RandAugmentOp.SolarizeAdd, 9, true, false));     // int(99.000…01)
        Assert.AreEqual(1.81, RandAugment.Level(RandAugmentOp.Color, 9, true, false), 1e-12);    // 1 + 0.81
        Assert.AreEqual(0.19, RandAugment.Level(RandAugmentOp.Sharpness, 9, true, true), 1e-12); // 1 − 0.81
        Assert.AreEqual(1.72, RandAugment.Level(RandAugmentOp.Contrast, 9, false, true), 1e-12); // 0.9·1.8 + 0.1, no sign
        Assert.AreEqual(-0.27, RandAugment.Level(RandAugmentOp.ShearY, 9, true, true), 1e-12);
        Assert.AreEqual(0.405, RandAugment.Level(RandAugmentOp.TranslateXRel, 9, true, false), 1e-12);
        Assert.AreEqual(0.0, RandAugment.Level(RandAugmentOp.Equalize, 9, true, true));
        // The ends of the scale.
        Assert.AreEqual(0.0, RandAugment.Level(RandAugmentOp.Posterize, 10, true, false));
        Assert.AreEqual(4.0, RandAugment.Level(RandAugmentOp.Posterize, 0, true, false));
        Assert.AreEqual(256.0, RandAugment.Level(RandAugmentOp.Solarize, 0, true, false));
        Assert.AreEqual(110.0, RandAugment.Level(RandAugmentOp.SolarizeAdd, 10, true, false));
        Assert.AreEqual(0.1, RandAugment.Level(RandAugmentOp.Brightness, 10, true, true), 1e-12);
        Assert.AreEqual(128.0, RandAugment.Level(RandAugmentOp.SolarizeAdd, 20, true, false)); // capped at 128
    }

    [TestMethod]
    public void PlanReadsItsUniformsAsTimmDraws()
    {
        var o = MaeAugmentationOptions.RandAugmentOptions.Reference;
        // Layer 0: op ⌊0.27·15⌋ = 4 (Posterize), applies (0.5 ≤ p), magnitude 9 + 0.5·√(−2 ln 0.5)·cos(π/2) = 9, positive.
        // Layer 1: op 14 (TranslateYRel), skipped (0.51 > p); its magnitude 9 + 0.5·√(−2 ln(1 − 0.9999))·cos 0 ≈ 11.1 → clipped to 10.
        var steps = RandAugment.Plan(o, new[] { 0.27, 0.5, 0.5, 0.25, 0.1, 0.9999, 0.51, 0.9999, 0.0, 0.9 });
        Assert.AreEqual(new RandAugmentStep(RandAugmentOp.Posterize, true, 1), steps[0]);
        Assert.AreEqual(RandAugmentOp.TranslateYRel, steps[1].Op);
        Assert.IsFalse(steps[1].Applies);
        Assert.AreEqual(-0.45, steps[1].Argument, 1e-12, "magnitude clipped to 10, sign negated (u > ½)");

        // Over many images: ops uniform, half applied, magnitudes N(9, 0.5²) (clipping at 10 is 2σ away).
        var rng = new Random(7);
        int n = 60_000;
        var counts = new int[RandAugment.OpCount];
        int applied = 0;
        double sum = 0, sumSq = 0;
        var u = new double[RandAugment.Draws(o)];
        for (int i = 0; i < n; i++)
        {
            for (int k = 0; k < u.Length; k++) u[k] = rng.NextDouble();
            foreach (var s in RandAugment.Plan(o, u))
            {
                counts[(int)s.Op]++;
                if (s.Applies) applied++;
                if (s.Op == RandAugmentOp.Rotate) { double m = Math.Abs(s.Argument) / 3; sum += m; sumSq += m * m; }
            }
        }
        int draws = 2 * n;
        foreach (int c in counts) Assert.AreEqual(draws / 15.0, c, 5 * Math.Sqrt(draws / 15.0), "each op drawn 1/15 of the time");
        Assert.AreEqual(0.5, applied / (double)draws, 0.01);
        int rot = counts[(int)RandAugmentOp.Rotate];
        double mean = sum / rot, sd = Math.Sqrt(sumSq / rot - mean * mean);
        Assert.AreEqual(9.0, mean, 0.03, "magnitude mean");
        Assert.AreEqual(0.5, sd, 0.03, "magnitude sd");
    }

    [TestMethod]
    public void ErasingBoxIsTimmsFromItsUniforms()
    {
        var u = new double[RandomErasing.Draws];
        u[0] = 0.3;
        Assert.IsNull(RandomErasing.Box(0.25, 32, 32, u), "not applied when u > p");
        u[0] = 0.2;
        // Attempt 0: area (0.02 + (1/3 − 0.02)·1)·1024 = 341.3, ratio e^{log 0.3 + 0·…} = 0.3: h = round(√102.4) = 10,
        // w = round(√1137.8) = 34 ≥ 32 → rejected. Attempt 1: area 0.5 → 0.17667·1024 = 180.9, ratio 1: h = w = round(13.45) = 13;
        // top ⌊0.99·20⌋ = 19, left ⌊0·20⌋ = 0.
        u[1] = 1.0; u[2] = 0.0;
        u[5] = 0.5; u[6] = 0.5; u[7] = 0.99; u[8] = 0.0;
        Assert.AreEqual(new CropBox(19, 0, 13, 13), RandomErasing.Box(0.25, 32, 32, u));
        // Python's round is half to even: area 0.02 + 0.31333·u = 0.125 → 128 px … use a box of √(h·w) = 12.5 → 12.
        var v = new double[RandomErasing.Draws];
        v[1] = (156.25 / 1024 - 0.02) / (1.0 / 3 - 0.02); v[2] = 0.5;   // target 156.25 px, ratio 1 → h = w = round(12.5) = 12
        Assert.AreEqual(12, RandomErasing.Box(1, 32, 32, v)!.Value.Height);

        // Applying: only the box changes, and the noise is N(0, 1).
        var w = new double[RandomErasing.Draws];
        w[1] = 1.0; w[2] = 0.5; w[3] = 0.5; w[4] = 0.5; w[RandomErasing.Draws - 1] = 0.123;
        var box = RandomErasing.Box(1, 128, 128, w)!.Value;
        var img = new float[3 * 128 * 128];
        Array.Fill(img, 7f);
        fixed (float* p = img) RandomErasing.Apply(p, 3, 128, 128, 1, w);
        double sum = 0, sumSq = 0;
        int inside = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 128; y++)
                for (int x = 0; x < 128; x++)
                {
                    float f = img[(c * 128 + y) * 128 + x];
                    bool inBox = y >= box.Top && y < box.Top + box.Height && x >= box.Left && x < box.Left + box.Width;
                    if (!inBox) { Assert.AreEqual(7f, f); continue; }
                    inside++; sum += f; sumSq += f * f;
                }
        Assert.AreEqual(3 * box.Height * box.Width, inside);
        Assert.IsTrue(inside > 10_000, $"a large box ({box})");
        Assert.AreEqual(0.0, sum / inside, 0.03, "noise mean");
        Assert.AreEqual(1.0, Math.Sqrt(sumSq / inside), 0.03, "noise sd");
    }

    /// <summary>The file sources' workers and the tensor path run the same steps in the same order with the same
    /// uniforms: a square PNG read at its own size (so the crop is the identity) gives the same model input both ways.</summary>
    [TestMethod]
    public void FilePathAndTensorPathAgree()
    {
        const int size = 24;
        var rng = new Random(3);
        var pixels = new byte[size * size * 4];
        rng.NextBytes(pixels);
        for (int i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
        string dir = Directory.CreateTempSubdirectory("ra").FullName;
        string file = Path.Combine(dir, "a.png");
        using (var bmp = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul)))
        {
            fixed (byte* p = pixels) Buffer.MemoryCopy(p, (void*)bmp.GetPixels(), pixels.Length, pixels.Length);
            using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(file, data.ToArray());
        }
        var aug = new MaeAugmentationOptions
        {
            OutputSize = size, ScaleMin = 1, ScaleMax = 1, RatioMin = 1, RatioMax = 1, HorizontalFlipProbability = 0,
            RandAugment = new MaeAugmentationOptions.RandAugmentOptions { Probability = 1 }, RandomErasingProbability = 1,
        };
        int draws = PostCropAugmentation.Draws(aug);
        Assert.AreEqual(2 * RandAugment.DrawsPerLayer + RandomErasing.Draws, draws);
        int compared = 0;
        for (long key = 0; key < 12; key++)
        {
            var fromFile = new float[3 * size * size];
            var sampler = new ImageSampler(new MaeImageInputOptions { Augmentation = aug }.Validate());
            fixed (float* d = fromFile) sampler.Produce(new FileImageList(new[] { file }), 0, true, 5, 2, key, d);
            var u = new double[RandomResizedCropSampler.DrawsPerSample + draws];
            MaePlanRandom.Uniforms(5, 2, key, u);
            var chw = new float[3 * size * size];
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < size * size; i++) chw[c * size * size + i] = pixels[i * 4 + c] / 255f;
            using var batch = tensor(chw, new long[] { 1, 3, size, size });
            using var y = new MaePretrainAugmentation(aug).Apply(batch, new[] { CropBox.Full(size, size) }, new[] { false },
                u[RandomResizedCropSampler.DrawsPerSample..]);
            var fromTensor = y.data<float>().ToArray();
            CollectionAssert.AreEqual(fromFile, fromTensor, $"key {key}");
            var plain = new float[chw.Length];
            var norm = aug.ResolvedNormalization();
            for (int c = 0; c < 3; c++)
                for (int i = 0; i < size * size; i++) plain[c * size * size + i] = norm.Apply(chw[c * size * size + i], c);
            if (!plain.SequenceEqual(fromFile)) compared++;
        }
        Assert.AreEqual(12, compared, "every image was changed by RandAugment or erasing");
        Directory.Delete(dir, true);
    }
}
