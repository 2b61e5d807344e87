using System.Text.Json;
using Mae.MLNet.Input;
using SkiaSharp;
using Mae.MLNet.Model;

namespace Mae.MLNet.Tests.Input;

/// <summary>
/// The CPU resize against torchvision's PIL path, on fixtures written by Fixtures/Input/make_input_fixtures.py with
/// Debian's python3-torchvision 0.14 / Pillow 9.4: <c>F.resized_crop(…, BICUBIC)</c> (+ hflip), the reference's
/// evaluation transform (Resize + CenterCrop), and ToTensor + Normalize as float32 — all compared bit for bit
/// (PNG sources, so no decoder difference is involved). Then formats: CMYK, 16-bit, EXIF rotation, alpha, grey.
/// </summary>
[TestClass]
public unsafe class PilParityTest
{
    static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "Input");
    static JsonElement[] Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(e => e.Clone()).ToArray();
    }

    /// <summary>Decodes a fixture PNG as SkiaSharp gives it: RGBA (or grey) bytes, no colour conversion.</summary>
    internal static (byte[] Pixels, int Width, int Height) Decode(string path, bool grey)
    {
        using var codec = SKCodec.Create(path) ?? throw new InvalidOperationException(path);
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, grey ? SKColorType.Gray8 : SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var px = new byte[info.BytesSize];
        fixed (byte* p = px) Assert.AreEqual(SKCodecResult.Success, codec.GetPixels(info, (IntPtr)p));
        return (px, info.Width, info.Height);
    }

    /// <summary>Expected CHW floats v / 255 from an interleaved byte image.</summary>
    static float[] ToChw((byte[] Pixels, int Width, int Height) img, int channels)
    {
        int pb = channels == 3 ? 4 : 1, plane = img.Width * img.Height;
        var f = new float[channels * plane];
        for (int c = 0; c < channels; c++)
            for (int i = 0; i < plane; i++) f[c * plane + i] = img.Pixels[i * pb + c] / 255f;
        return f;
    }

    internal static float[] Run(MaeImageInputOptions options, string file, Action<ImageSampler, EncodedImageList, IntPtr> produce)
    {
        var a = options.Augmentation;
        var dst = new float[a.Channels * a.OutputSize * a.OutputSize];
        var sampler = new ImageSampler(options.Validate());
        fixed (float* d = dst) produce(sampler, new FileImageList(new[] { Path.Combine(Dir, file) }), (IntPtr)d);
        return dst;
    }

    internal static MaeImageInputOptions Plain(int size, int channels = 3) => new()
    {
        Augmentation = new MaeAugmentationOptions { OutputSize = size, Channels = channels, Normalization = PixelNormalization.Identity(channels) },
    };

    static void AssertBitEqual(float[] expected, float[] actual, string what)
    {
        Assert.AreEqual(expected.Length, actual.Length, what);
        int bad = 0;
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i])) bad++;
        Assert.AreEqual(0, bad, $"{what}: {bad} of {expected.Length} values differ from torchvision's");
    }

    [TestMethod]
    public void RandomResizedCropApplyMatchesTorchvisionPilBitForBit()
    {
        int n = 0;
        foreach (var c in Cases().Where(c => c.GetProperty("kind").GetString() == "crop"))
        {
            string source = c.GetProperty("source").GetString()!;
            bool grey = source.StartsWith("grey", StringComparison.Ordinal);
            int size = c.GetProperty("size").GetInt32();
            var box = new CropBox(c.GetProperty("top").GetInt32(), c.GetProperty("left").GetInt32(), c.GetProperty("height").GetInt32(), c.GetProperty("width").GetInt32());
            bool flip = c.GetProperty("flip").GetBoolean();
            var actual = Run(Plain(size, grey ? 1 : 3), source, (s, l, d) => s.ProduceCrop(l, 0, box, flip, (float*)d));
            var expected = ToChw(Decode(Path.Combine(Dir, c.GetProperty("expected").GetString()!), grey), grey ? 1 : 3);
            AssertBitEqual(expected, actual, $"{source} {box} → {size}, flip {flip}");
            n++;
        }
        Assert.AreEqual(6, n);
    }

    [TestMethod]
    public void EvaluationTransformMatchesResizeAndCenterCrop()
    {
        int n = 0;
        foreach (var c in Cases().Where(c => c.GetProperty("kind").GetString() == "eval"))
        {
            int size = c.GetProperty("size").GetInt32();
            var actual = Run(Plain(size), c.GetProperty("source").GetString()!, (s, l, d) => s.Produce(l, 0, false, 0, 0, 0, (float*)d));
            var expected = ToChw(Decode(Path.Combine(Dir, c.GetProperty("expected").GetString()!), false), 3);
            AssertBitEqual(expected, actual, $"eval {size}");
            n++;
        }
        Assert.AreEqual(2, n);
    }

    [TestMethod]
    public void ToTensorAndNormalizeMatchTorchvisionFloats()
    {
        var c = Cases().Single(c => c.GetProperty("kind").GetString() == "tensor");
        var box = new CropBox(c.GetProperty("top").GetInt32(), c.GetProperty("left").GetInt32(), c.GetProperty("height").GetInt32(), c.GetProperty("width").GetInt32());
        var options = new MaeImageInputOptions { Augmentation = { OutputSize = c.GetProperty("size").GetInt32() } };
        var actual = Run(options, c.GetProperty("source").GetString()!, (s, l, d) => s.ProduceCrop(l, 0, box, c.GetProperty("flip").GetBoolean(), (float*)d));
        var bytes = File.ReadAllBytes(Path.Combine(Dir, c.GetProperty("expected").GetString()!));
        var expected = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, expected, 0, bytes.Length);
        AssertBitEqual(expected, actual, "ToTensor + Normalize");
    }

    static double MeanAbsDiff(float[] a, float[] b)
    {
        Assert.AreEqual(a.Length, b.Length);
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += Math.Abs(a[i] - b[i]);
        return s / a.Length * 255; // in 8-bit levels
    }

    static JsonElement Files() => Cases().Single(c => c.GetProperty("kind").GetString() == "files");

    [TestMethod]
    public void CmykJpegDecodesLikePil()
    {
        var f = Files();
        var ours = Run(Plain(40), f.GetProperty("cmyk").GetString()!, (s, l, d) => s.ProduceCrop(l, 0, new CropBox(0, 0, 40, 40), false, (float*)d));
        var pil = Run(Plain(40), f.GetProperty("cmyk_rgb").GetString()!, (s, l, d) => s.ProduceCrop(l, 0, new CropBox(0, 0, 40, 40), false, (float*)d));
        double diff = MeanAbsDiff(pil, ours);
        Assert.IsTrue(diff < 3, $"CMYK JPEG: mean |ours − PIL's convert('RGB')| = {diff:F2} levels");
    }

    [TestMethod]
    public void SixteenBitPngKeepsTheHighByte()
    {
        var f = Files();
        var ours = Run(Plain(20, 1), f.GetProperty("grey16").GetString()!, (s, l, d) => s.ProduceCrop(l, 0, new CropBox(0, 0, 20, 20), false, (float*)d));
        var eight = Run(Plain(20, 1), f.GetProperty("grey16_8bit").GetString()!, (s, l, d) => s.ProduceCrop(l, 0, new CropBox(0, 0, 20, 20), false, (float*)d));
        AssertBitEqual(eight, ours, "16-bit grey PNG vs its 8-bit values");
    }

    [TestMethod]
    public void ExifOrientationIsApplied()
    {
        var f = Files();
        string rotated = f.GetProperty("exif6").GetString()!, upright = f.GetProperty("exif6_upright").GetString()!;
        var ours = Run(Plain(32), rotated, (s, l, d) => s.Produce(l, 0, false, 0, 0, 0, (float*)d));
        var pilUpright = Run(Plain(32), upright, (s, l, d) => s.Produce(l, 0, false, 0, 0, 0, (float*)d));
        var noExif = Plain(32);
        noExif.ApplyExifOrientation = false;
        var ignored = Run(noExif, rotated, (s, l, d) => s.Produce(l, 0, false, 0, 0, 0, (float*)d));
        double close = MeanAbsDiff(pilUpright, ours), far = MeanAbsDiff(pilUpright, ignored);
        Assert.IsTrue(close < 2, $"EXIF-rotated JPEG vs PIL's exif_transpose: mean diff {close:F2} levels");
        Assert.IsTrue(far > 10 * close + 5, $"ignoring the tag should give another picture: {far:F2} vs {close:F2}");
    }

    [TestMethod]
    public void AlphaIsDroppedAndGreyIsReplicated()
    {
        using var dir = new Training.TempDir();
        File.WriteAllBytes(dir.File("opaque.png"), InputTestUtil.Png(30, 30, 5));
        File.WriteAllBytes(dir.File("alpha.png"), InputTestUtil.Png(30, 30, 5, alpha: 90));
        var opts = Plain(30);
        float[] Make(string name)
        {
            var dst = new float[3 * 30 * 30];
            fixed (float* d = dst) new ImageSampler(opts.Validate()).ProduceCrop(new FileImageList(new[] { dir.File(name) }), 0, new CropBox(0, 0, 30, 30), false, d);
            return dst;
        }
        AssertBitEqual(Make("opaque.png"), Make("alpha.png"), "RGBA with alpha 90 vs opaque (PIL's convert('RGB') drops alpha)");

        var grey = Run(Plain(41), "grey_50x64.png", (s, l, d) => s.ProduceCrop(l, 0, new CropBox(0, 0, 41, 41), false, (float*)d));
        var (px, w, _) = Decode(Path.Combine(Dir, "grey_50x64.png"), grey: true);
        int plane = 41 * 41;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 41; y++)
                for (int x = 0; x < 41; x++)
                    Assert.AreEqual(px[y * w + x] / 255f, grey[c * plane + y * 41 + x], $"grey replicated to channel {c} at ({x}, {y})");
    }
}
