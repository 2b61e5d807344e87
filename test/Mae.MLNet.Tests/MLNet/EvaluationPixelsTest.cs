using Mae.MLNet.Input;
using Mae.MLNet.Tests.Input;
using Mae.MLNet.Tests.Training;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>
/// <c>MaeEvaluationPixels</c>, the reference's evaluation transform made of ML.NET's own transforms (what a fine-tuned
/// zip reads its images with), against the library's file source, which matches torchvision bit for bit
/// (<see cref="PilParityTest"/>): exact where no resampling is needed — so the crop window, the channel order and the
/// scale are the reference's — and close on photos that ML.NET resizes with SkiaSharp instead of PIL's bicubic.
/// </summary>
[TestClass]
public unsafe class EvaluationPixelsTest
{
    public sealed class Row { public string Path { get; set; } = ""; }

    static List<float[]> ViaMLNet(IEnumerable<string> files, int size, int channels)
    {
        var ml = new MLContext(0);
        var data = ml.Data.LoadFromEnumerable(files.Select(f => new Row { Path = f }).ToList());
        var pixels = ml.Transforms.MaeEvaluationPixels("Pixels", "Path", size, channels).Fit(data).Transform(data);
        Assert.IsNull(pixels.Schema.GetColumnOrNull("Pixels__mae_image"), "the temporary image column is dropped");
        Assert.IsNull(pixels.Schema.GetColumnOrNull("Pixels__mae_resized"), "the temporary full-size pixel column is dropped");
        return pixels.GetColumn<float[]>("Pixels").ToList();
    }

    /// <summary>The library's file source, evaluation path (the reference's transform, bit-exact to torchvision).</summary>
    static float[] ViaFileSource(string file, int size, int channels)
        => PilParityTest.Run(PilParityTest.Plain(size, channels), file, (s, l, d) => s.Produce(l, 0, false, 0, 0, 0, (float*)d));

    static string WritePng(string folder, int width, int height, int seed)
    {
        var path = Path.Combine(folder, $"{width}x{height}-{seed}.png");
        File.WriteAllBytes(path, InputTestUtil.Png(width, height, seed));
        return path;
    }

    [TestMethod]
    public void CropsTheReferenceWindowExactlyWhenNothingIsResized()
    {
        using var dir = new TempDir();
        // Images whose shorter side is already int(S / 0.875): ML.NET and the reference only crop. 32 → 36 (offset 2),
        // 64 → 73 (offset round(4.5) = 4, half to even), 28 → 32; a non-square one crops its longer side too.
        foreach (var (size, w, h) in new[] { (32, 36, 36), (64, 73, 73), (28, 32, 32), (32, 36, 44) })
        {
            Assert.AreEqual(w, MaeImageInputOptions.EvalResizeSize(size));
            var file = WritePng(dir.Path, w, h, seed: size + h);
            foreach (int channels in new[] { 3, 1 })
            {
                var ours = ViaMLNet(new[] { file }, size, channels).Single();
                var reference = ViaFileSource(file, size, channels);
                Assert.AreEqual(reference.Length, ours.Length, $"{w}×{h} → {size}, {channels} channel(s)");
                if (channels == 3)   // the same bytes: ML.NET scales by · (1/255), the file source by / 255 (an ulp apart)
                    Assert.IsTrue(MaxAbsLevels(reference, ours) < 1e-3, $"{w}×{h} → {size}: the centre crop differs from the reference's by up to {MaxAbsLevels(reference, ours):F2} levels");
                else   // ML.NET's grey conversion is not PIL's L (both weight R, G, B ≈ 0.3, 0.59, 0.11): within a level
                    Assert.IsTrue(MaxAbsLevels(reference, ours) <= 1.01, $"{w}×{h} → {size} grey: {MaxAbsLevels(reference, ours):F2} levels apart");
            }
        }
    }

    [TestMethod]
    public void StaysCloseToTheFileSourceOnResizedPhotos()
    {
        using var dir = new TempDir();
        // JPEGs of 40–90 px to 32 px (resized to 36, cropped): ML.NET's resampler against PIL's bicubic.
        var files = InputTestUtil.WriteJpegs(dir.Path, 24, seed0: 5);
        var ours = ViaMLNet(files, 32, 3);
        double sum = 0, whole = 0;
        for (int i = 0; i < files.Count; i++)
        {
            var reference = ViaFileSource(files[i], 32, 3);
            sum += MeanAbsLevels(reference, ours[i]);
            whole += MeanAbsLevels(reference, WholeImage(files[i], 32));
        }
        double mean = sum / files.Count, wholeMean = whole / files.Count;
        Console.WriteLine($"mean |Δ| to the reference's transform: {mean:F2} levels (the whole image resized to 32: {wholeMean:F2})");
        Assert.IsTrue(mean < 6, $"ML.NET's evaluation pixels are {mean:F2} levels from the reference's on average");
        Assert.IsTrue(mean < wholeMean / 2, $"{mean:F2} levels should be far closer than the uncropped image's {wholeMean:F2}");
    }

    /// <summary>What the zip read before: ML.NET's ResizeImages(S, S) (shorter side to S, no margin cropped).</summary>
    static float[] WholeImage(string file, int size)
    {
        var ml = new MLContext(0);
        var data = ml.Data.LoadFromEnumerable(new[] { new Row { Path = file } });
        var pipe = ml.Transforms.LoadImages("Image", "", "Path").Append(ml.Transforms.ResizeImages("Image", size, size))
            .Append(ml.Transforms.ExtractPixels("Pixels", "Image", interleavePixelColors: false, scaleImage: 1f / 255));
        return pipe.Fit(data).Transform(data).GetColumn<float[]>("Pixels").Single();
    }

    static double MeanAbsLevels(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Average() * 255;
    static double MaxAbsLevels(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max() * 255;

    [TestMethod]
    public void RefusesWhatItCannotRead()
    {
        var t = new MLContext(0).Transforms;
        Assert.Throws<ArgumentOutOfRangeException>(() => t.MaeEvaluationPixels("Pixels", "Path", 32, channels: 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.MaeEvaluationPixels("Pixels", "Path", 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.MaeEvaluationPixels("Pixels", "Path", 100_000));
        Assert.Throws<ArgumentException>(() => t.MaeEvaluationPixels("Path", "Path", 32));
        Assert.Throws<ArgumentException>(() => t.MaeEvaluationPixels(" ", "Path", 32));
    }
}
