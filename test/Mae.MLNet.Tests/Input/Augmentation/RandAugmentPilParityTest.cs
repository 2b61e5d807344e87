using System.Text.Json;
using Mae.MLNet.Input;

namespace Mae.MLNet.Tests.Input.Augmentation;

/// <summary>
/// Every RandAugment op against Pillow's own output: Fixtures/RandAugment/make_randaugment_fixtures.py calls Pillow 9.4
/// (Debian) exactly as timm's auto_augment.py does for the reference recipe (fill (124, 116, 104), bicubic), on four
/// images (full-range and narrow-range RGB of odd sizes, RGB noise, grey) at several arguments per op; 184 cases, each
/// compared byte for byte. The images are stored as RGBA (SkiaSharp's layout, alpha ignored) and as packed bytes
/// (the tensor path's layout) to cover both pixel strides.
/// </summary>
[TestClass]
public unsafe class RandAugmentPilParityTest
{
    static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "RandAugment");

    sealed record Case(RandAugmentOp Op, double Arg, int Input, int Offset);
    sealed record Image(int Offset, int Height, int Width, int Channels);

    static (byte[] Blob, Image[] Inputs, Case[] Cases) Load()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "cases.json")));
        var root = doc.RootElement;
        var inputs = root.GetProperty("inputs").EnumerateArray().Select(e => new Image(e.GetProperty("offset").GetInt32(),
            e.GetProperty("height").GetInt32(), e.GetProperty("width").GetInt32(), e.GetProperty("channels").GetInt32())).ToArray();
        var cases = root.GetProperty("cases").EnumerateArray().Select(e => new Case(Enum.Parse<RandAugmentOp>(e.GetProperty("op").GetString()!),
            e.GetProperty("arg").GetDouble(), e.GetProperty("input").GetInt32(), e.GetProperty("offset").GetInt32())).ToArray();
        return (File.ReadAllBytes(Path.Combine(Dir, "randaugment.bin")), inputs, cases);
    }

    static byte[] Run(byte[] blob, Image input, Case k, int stride)
    {
        int c = input.Channels, n = input.Height * input.Width;
        var img = new byte[n * stride];
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) img[i * stride + ch] = blob[input.Offset + i * c + ch];
        byte[] fill = c == 3 ? new byte[] { 124, 116, 104 } : new byte[] { 124 };
        fixed (byte* p = img) RandAugment.Apply(new ByteImage(p, input.Height, input.Width, stride, c), k.Op, k.Arg, fill, new byte[img.Length]);
        var packed = new byte[n * c];
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++) packed[i * c + ch] = img[i * stride + ch];
        return packed;
    }

    [TestMethod]
    public void EveryOpMatchesPillowByteForByte()
    {
        var (blob, inputs, cases) = Load();
        Assert.AreEqual(184, cases.Length);
        Assert.AreEqual(RandAugment.OpCount, cases.Select(k => k.Op).Distinct().Count(), "every op is covered");
        var failures = new List<string>();
        foreach (var k in cases)
        {
            var input = inputs[k.Input];
            var expected = blob.AsSpan(k.Offset, input.Height * input.Width * input.Channels).ToArray();
            foreach (int stride in input.Channels == 3 ? new[] { 3, 4 } : new[] { 1 })
            {
                var got = Run(blob, input, k, stride);
                int bad = got.Zip(expected).Count(p => p.First != p.Second);
                if (bad > 0)
                {
                    int maxDiff = got.Zip(expected).Max(p => Math.Abs(p.First - p.Second));
                    failures.Add($"{k.Op}({k.Arg}) on input {k.Input} (stride {stride}): {bad} of {got.Length} bytes differ, max |Δ| {maxDiff}");
                }
            }
        }
        Assert.AreEqual(0, failures.Count, string.Join("\n", failures));
    }

    [TestMethod]
    public void TheOpsChangeTheImages()
    {
        // Guards the comparison above against fixtures that would pass with ops doing nothing: apart from the
        // identity arguments, Pillow's outputs differ from their inputs.
        var (blob, inputs, cases) = Load();
        int changed = 0;
        foreach (var k in cases)
        {
            var input = inputs[k.Input];
            int len = input.Height * input.Width * input.Channels;
            if (!blob.AsSpan(k.Offset, len).SequenceEqual(blob.AsSpan(input.Offset, len))) changed++;
        }
        Assert.IsTrue(changed > 150, $"only {changed} of {cases.Length} cases change their input");
    }
}
