using Mae.MLNet.FineTuning;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Model;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Interop;

/// <summary>The one weight-name filter (<c>CheckpointNames.ForModel</c>, timm's checkpoint_filter_fn) behind
/// <see cref="MaeCheckpoint"/>'s loaders and <see cref="MaeFineTuner.FromEncoder"/>, checked against the official
/// code's outputs in Fixtures/Interop/expected.safetensors.</summary>
[TestClass]
public class CheckpointFilterTest
{
    const double Rtol = 1e-4;
    static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "Interop");
    static string F(string name) => Path.Combine(Dir, name);
    static readonly MaeConfig ConfigI = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 24, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 24, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    static Dictionary<string, Tensor> expected = null!;

    [ClassInitialize]
    public static void Load(TestContext _) => expected = Safetensors.LoadStateDict(F("expected.safetensors"));

    [ClassCleanup]
    public static void Cleanup() { foreach (var t in expected.Values) t.Dispose(); }

    [TestMethod]
    public void FromEncoderOfAFullMaeKeepsTheEncoder()
    {
        // The encoder of a MaskedAutoencoder registers no tensors itself (its owner holds them flat).
        using var mae = MaeCheckpoint.LoadMaskedAutoencoder(F("official_checkpoint.pth"), ConfigI);
        using var classifier = MaeFineTuner.FromEncoder(mae.Encoder, numClasses: 3, globalPool: false);
        classifier.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs"]), expected["i.features_cls"], Rtol, "cls features");
        Assert.IsTrue(classifier.state_dict().Keys.All(k => !k.StartsWith("decoder_") && k != "mask_token"));
    }

    [TestMethod]
    public void FromEncoderInterpolatesThePositionTable()
    {
        using var encoder = MaeCheckpoint.LoadEncoder(F("official_encoder_only.pth"), ConfigI);
        using var classifier = MaeFineTuner.FromEncoder(encoder, numClasses: 3, globalPool: false, imageSize: 24);
        classifier.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(classifier.Encoder.pos_embed, expected["interp.pos_embed_24"], Rtol, "pos_embed");
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs_24"]), expected["interp.features_cls_24"], Rtol, "cls features");
    }

    [TestMethod]
    public void FineTunedFileWithAnotherClassCountKeepsFcNormAndStartsAFreshHead()
    {
        using var classifier = MaeCheckpoint.LoadClassifier(F("official_finetuned.pth"), numClasses: 3, config: ConfigI);
        classifier.eval();
        using var scope = NewDisposeScope();
        Assert.AreEqual(3L, classifier.head.weight.shape[0]);
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs"]), expected["ft.features"], Rtol, "features");
        // main_finetune.py's head init: zero bias, weights of std 2e-5.
        Assert.AreEqual(0f, classifier.head.bias!.abs().max().item<float>());
        Assert.IsTrue(classifier.head.weight.abs().max().item<float>() < 1e-4);
    }
}
