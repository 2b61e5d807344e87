using Mae.MLNet.Input;
using SkiaSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Input;

/// <summary>Images made with SkiaSharp for the input-path tests, and small helpers.</summary>
internal static class InputTestUtil
{
    /// <summary>A photo-like RGBA bitmap: smooth gradients, stripes and per-pixel noise, from a seed.</summary>
    public static SKBitmap Bitmap(int width, int height, int seed, byte alpha = 255)
    {
        var bmp = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rnd = new Random(seed);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                byte C(int c) => (byte)Math.Clamp(128 + 80 * Math.Sin(0.05 * (c + 1 + seed % 5) * x + 0.09 * y + seed) + ((x / 7 + y / 11 + c) % 2) * 40 + rnd.Next(-10, 11), 0, 255);
                bmp.SetPixel(x, y, new SKColor(C(0), C(1), C(2), alpha));
            }
        return bmp;
    }

    public static byte[] Encode(SKBitmap bmp, SKEncodedImageFormat format, int quality = 90)
    {
        using var image = SKImage.FromBitmap(bmp);
        using var data = image.Encode(format, quality) ?? throw new InvalidOperationException($"SkiaSharp could not encode {format}");
        return data.ToArray();
    }

    public static byte[] Jpeg(int width, int height, int seed, int quality = 90)
    {
        using var bmp = Bitmap(width, height, seed);
        return Encode(bmp, SKEncodedImageFormat.Jpeg, quality);
    }

    public static byte[] Png(int width, int height, int seed, byte alpha = 255)
    {
        using var bmp = Bitmap(width, height, seed, alpha);
        return Encode(bmp, SKEncodedImageFormat.Png);
    }

    /// <summary>Writes <paramref name="count"/> JPEGs of varied sizes to <paramref name="folder"/>; returns their paths.</summary>
    public static List<string> WriteJpegs(string folder, int count, int seed0 = 0, int minSide = 40, int maxSide = 90)
    {
        Directory.CreateDirectory(folder);
        var rnd = new Random(seed0 + 17);
        var paths = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var p = Path.Combine(folder, $"img{i:D5}.jpg");
            File.WriteAllBytes(p, Jpeg(rnd.Next(minSide, maxSide), rnd.Next(minSide, maxSide), seed0 + i));
            paths.Add(p);
        }
        return paths;
    }

    /// <summary>All batches of one epoch as float arrays (the tensors disposed).</summary>
    public static List<float[]> Collect(IMaeImageSource source, MaeEpochPlan plan)
    {
        var list = new List<float[]>();
        foreach (var t in source.Batches(plan))
            using (t) list.Add(t.data<float>().ToArray());
        return list;
    }

    public static void AssertBatchesEqual(IReadOnlyList<float[]> expected, IReadOnlyList<float[]> actual, string what)
    {
        Assert.AreEqual(expected.Count, actual.Count, $"{what}: batch count");
        for (int b = 0; b < expected.Count; b++)
        {
            Assert.AreEqual(expected[b].Length, actual[b].Length, $"{what}: batch {b} length");
            for (int i = 0; i < expected[b].Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[b][i]) != BitConverter.SingleToInt32Bits(actual[b][i]))
                    Assert.Fail($"{what}: batch {b} differs at {i}: {expected[b][i]} vs {actual[b][i]}");
        }
    }

    public static MaeImageInputOptions Options(int size = 16, int workers = 2, int prefetch = 2) => new()
    {
        Augmentation = { OutputSize = size },
        Workers = workers,
        PrefetchBatches = prefetch,
    };
}
