using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>Every malformed input is an ArgumentException that names what was expected and what came.</summary>
[TestClass]
public class BadInputTest
{
    static readonly MaeConfig Config = new()
    {
        ImageSize = 8, PatchSize = 4, InChannels = 3, EmbedDim = 8, Depth = 1, NumHeads = 2,
        DecoderEmbedDim = 8, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    static void ExpectMessage(Action action, params string[] fragments)
    {
        var e = Assert.Throws<ArgumentException>(action);
        foreach (var fragment in fragments) StringAssert.Contains(e.Message, fragment);
    }

    [TestMethod]
    public void WrongRank()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(3, 8, 8);
        ExpectMessage(() => model.Forward(x), "4-D", "[N, 3, 8, 8]", "[3, 8, 8]");
    }

    [TestMethod]
    public void WrongChannelCount()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(2, 1, 8, 8);
        ExpectMessage(() => model.Forward(x), "1 channels", "expects 3");
    }

    [TestMethod]
    public void WrongImageSize()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(2, 3, 16, 16);
        ExpectMessage(() => model.Forward(x), "16×16", "8×8");
        using var encoder = new MaeEncoder(Config);
        ExpectMessage(() => encoder.ExtractFeatures(x), "16×16", "8×8");
    }

    [TestMethod]
    public void SizeNotDivisibleByPatch()
        => ExpectMessage(() => new MaskedAutoencoder(Config with { ImageSize = 10 }), "multiple of PatchSize", "10", "4");

    [TestMethod]
    public void HeadsNotDividingWidth()
        => ExpectMessage(() => (Config with { NumHeads = 3 }).Validate(), "divisible by NumHeads");

    [TestMethod]
    [DataRow(-0.1)]
    [DataRow(1.0)]
    [DataRow(double.NaN)]
    public void MaskRatioOutsideRange(double ratio)
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(2, 3, 8, 8);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(x, ratio));
        StringAssert.Contains(e.Message, "[0, 1)");
    }

    [TestMethod]
    public void NoiseOfWrongShape()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(2, 3, 8, 8);
        using var noise = rand(2, 5);
        ExpectMessage(() => model.Forward(x, 0.75, noise), "[N, L] = [2, 4]", "[2, 5]");
    }

    [TestMethod]
    public void NaNInImages()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = randn(2, 3, 8, 8);
        x[1, 2, 3, 4] = float.NaN;
        ExpectMessage(() => model.Forward(x), "1 NaN");
    }

    [TestMethod]
    public void IntegerImages()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = zeros(2, 3, 8, 8, dtype: ScalarType.Byte);
        ExpectMessage(() => model.Forward(x), "floating-point");
    }

    [TestMethod]
    public void EmptyBatch()
    {
        using var model = new MaskedAutoencoder(Config);
        using var x = zeros(0, 3, 8, 8);
        ExpectMessage(() => model.Forward(x), "empty batch");
    }

    [TestMethod]
    public void UnknownPreset() => ExpectMessage(() => MaeConfig.Preset("vit-x"), "vit-x", "vit-b16");

    [TestMethod]
    public void PresetsMatchThePaper()
    {
        var b = MaeConfig.VitBase16; var l = MaeConfig.VitLarge16; var h = MaeConfig.VitHuge14;
        Assert.AreEqual((16, 768, 12, 12), (b.PatchSize, b.EmbedDim, b.Depth, b.NumHeads));
        Assert.AreEqual((16, 1024, 24, 16), (l.PatchSize, l.EmbedDim, l.Depth, l.NumHeads));
        Assert.AreEqual((14, 1280, 32, 16), (h.PatchSize, h.EmbedDim, h.Depth, h.NumHeads));
        foreach (var c in new[] { b, l, h })
        {
            Assert.AreEqual((512, 8, 16, 224), (c.DecoderEmbedDim, c.DecoderDepth, c.DecoderNumHeads, c.ImageSize));
            c.Validate();
        }
        Assert.AreEqual(64, MaeConfig.Tiny32.NumPatches);
        Assert.AreEqual(16, MaeConfig.Mnist28.NumPatches);
        Assert.AreEqual(49, MaeConfig.Mnist28.PatchDim);
    }
}
