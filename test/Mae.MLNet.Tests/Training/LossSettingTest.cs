using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Training;

/// <summary>The loss target (norm_pix_loss) is the model's setting alone: any config trains with the default
/// options, and the trainer's loss is the one the config names.</summary>
[TestClass]
public class LossSettingTest
{
    [TestMethod]
    public void PresetsValidateWithDefaultOptions()
    {
        foreach (var config in new[] { MaeConfig.VitBase16, MaeConfig.VitBase16 with { NormPixLoss = false }, MaeConfig.VitLarge16, MaeConfig.Mnist28 })
        {
            var options = new MaePretrainOptions();
            Assert.AreSame(options, options.Validate(config), "the default recipe validates for every preset");
            // A ratio that keeps half a patch of this preset's L keeps floor(L·0.5/L) = 0 patches: refused, by name.
            var keepsNone = new MaePretrainOptions { MaskRatio = 1 - 0.5 / config.NumPatches };
            var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => keepsNone.Validate(config));
            Assert.AreEqual(nameof(MaePretrainOptions.MaskRatio), e.ParamName);
            StringAssert.Contains(e.Message, $"of the model's {config.NumPatches}");
        }
    }

    /// <summary>A ViT-B/16-shaped model (shrunk to 16 px and 8 wide so it runs here) trained with default options.
    /// With the decoder's prediction layer zeroed the first step's loss has a closed form that does not depend on the
    /// mask when every patch holds the same values v (48 of them): mean(v²) on raw pixels, and
    /// (n−1)/n · var/(var + 1e-6) with n = 48 and the unbiased variance on normalised pixels.</summary>
    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void FirstStepLossFollowsTheModelsNormPixLoss(bool normPix)
    {
        var config = MaeConfig.VitBase16 with
        {
            ImageSize = 16, PatchSize = 4, EmbedDim = 8, Depth = 1, NumHeads = 2,
            DecoderEmbedDim = 8, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = normPix,
        };
        var options = new MaePretrainOptions { Epochs = 1, WarmupEpochs = 0, BatchSize = 2, Device = MaeDevice.Cpu };
        // Every 4×4 patch of every channel holds the same 16 values; channel c adds 0.1·c.
        var patch = Enumerable.Range(0, 16).Select(i => 0.05f + 0.05f * i).ToArray();
        float[] Image()
        {
            var a = new float[3 * 16 * 16];
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 16; y++)
                    for (int x = 0; x < 16; x++)
                        a[(c * 16 + y) * 16 + x] = patch[(y % 4) * 4 + x % 4] + 0.1f * c;
            return a;
        }
        var values = Enumerable.Range(0, 3).SelectMany(c => patch.Select(v => (double)v + 0.1 * c)).Select(v => (double)(float)v).ToArray();
        double mean = values.Average(), ss = values.Sum(v => (v - mean) * (v - mean)), var = ss / (values.Length - 1);
        double expected = normPix ? ss / values.Length / (var + 1e-6) : values.Average(v => v * v);

        using var source = MaeImageSource.FromArrays(new[] { Image(), Image() }, 3, 16, 16);
        using var model = MaePretrainer.CreateModel(config, options);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.StartsWith("decoder_pred.", StringComparison.Ordinal)) p.zero_();
        var result = new MaePretrainer(options).Train(model, source);

        Assert.AreEqual(1, result.StepLosses.Count);
        Assert.AreEqual(expected, result.StepLosses[0], 1e-5 * expected, $"norm_pix_loss {normPix}");
    }
}
