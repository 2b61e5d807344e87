using Mae.MLNet.FineTuning;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Model;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Interop;

/// <summary>Files in the layouts people download (made by Fixtures/Interop/make_interop_fixtures.py with the official
/// code and torch.save) load, and give the official code's outputs.</summary>
[TestClass]
public class PublicWeightsTest
{
    const double Rtol = 1e-4;
    static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", "Interop");
    internal static string F(string name) => Path.Combine(Dir, name);

    /// <summary>Model "i" (and "h" with eps 1e-12): 16 px, patch 4, 24 wide, 2 blocks × 2 heads, decoder 24 × 1 × 2.</summary>
    internal static readonly MaeConfig ConfigI = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 24, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 24, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    static Dictionary<string, Tensor> expected = null!;

    [ClassInitialize]
    public static void Load(TestContext _) => expected = Safetensors.LoadStateDict(F("expected.safetensors"));

    [ClassCleanup]
    public static void Cleanup() { foreach (var t in expected.Values) t.Dispose(); }

    static void CheckFull(MaskedAutoencoder model, string prefix)
    {
        using var scope = NewDisposeScope();
        var (loss, pred, mask) = model.Forward(expected["input.imgs"], 0.75, expected["input.noise"]);
        TensorAssert.Close(loss, expected[prefix + ".loss"], Rtol, prefix + " loss");
        TensorAssert.Close(pred, expected[prefix + ".pred"], Rtol, prefix + " pred");
        Assert.IsTrue(TensorAssert.Same(mask, expected[prefix + ".mask"]), prefix + " mask");
        TensorAssert.Close(model.Encoder.ExtractFeatures(expected["input.imgs"]), expected[prefix + ".features_cls"], Rtol, prefix + " cls");
    }

    [TestMethod]
    public void OfficialTrainingCheckpointWithOptimizerScalerAndArgs()
    {
        using (var w = MaeWeightFile.Read(F("official_checkpoint.pth"), ConfigI))
        {
            Assert.AreEqual(MaeWeightFile.Kind.Full, w.Kind);
            Assert.AreEqual(MaeWeightFile.Format.OfficialPth, w.Format);
            Assert.AreEqual(3, Convert.ToInt32(w.Extras["epoch"]));
            Assert.IsTrue(w.Extras.ContainsKey("optimizer") && w.Extras.ContainsKey("scaler") && w.Extras.ContainsKey("args"));
        }
        using var model = MaeWeightFile.LoadMaskedAutoencoder(F("official_checkpoint.pth"), ConfigI);
        CheckFull(model, "i");
    }

    [TestMethod]
    public void OfficialVisualizeFile()
    {
        using var model = MaeWeightFile.LoadMaskedAutoencoder(F("official_visualize.pth"), ConfigI);
        CheckFull(model, "i");
    }

    [TestMethod]
    public void HeadCountsCannotBeGuessedForNonPublicWidths()
    {
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F("official_visualize.pth")));
        StringAssert.Contains(e.Message, "head counts");
    }

    [TestMethod]
    public void EncoderOnlyFileGivesTheOfficialFeatures()
    {
        using var encoder = MaeWeightFile.LoadEncoder(F("official_encoder_only.pth"), ConfigI);
        using var scope = NewDisposeScope();
        TensorAssert.Close(encoder.ExtractFeatures(expected["input.imgs"], MaePooling.Cls), expected["enc.features_cls"], Rtol, "cls");
        TensorAssert.Close(encoder.ExtractFeatures(expected["input.imgs"], MaePooling.Mean), expected["enc.features_mean"], Rtol, "mean");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadMaskedAutoencoder(F("official_encoder_only.pth"), ConfigI));
        StringAssert.Contains(e.Message, "encoder only");
    }

    [TestMethod]
    public void TimmSafetensorsEncoder()
    {
        using var encoder = MaeWeightFile.LoadEncoder(F("timm_encoder.safetensors"), ConfigI);
        using var scope = NewDisposeScope();
        TensorAssert.Close(encoder.ExtractFeatures(expected["input.imgs"], MaePooling.Cls), expected["i.features_cls"], Rtol, "cls");
        TensorAssert.Close(encoder.ExtractFeatures(expected["input.imgs"], MaePooling.Mean), expected["i.features_mean"], Rtol, "mean");
    }

    [TestMethod]
    public void FineTunedClassifierWithGlobalPool()
    {
        using (var w = MaeWeightFile.Read(F("official_finetuned.pth"), ConfigI))
        {
            Assert.AreEqual(MaeWeightFile.Kind.FineTuned, w.Kind);
            Assert.AreEqual(5, w.NumClasses);
            Assert.IsTrue(w.GlobalPool);
        }
        using var classifier = MaeWeightFile.LoadClassifier(F("official_finetuned.pth"), config: ConfigI);
        using var scope = NewDisposeScope();
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs"]), expected["ft.features"], Rtol, "features");
        TensorAssert.Close(classifier.forward(expected["input.imgs"]), expected["ft.logits"], Rtol, "logits");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadEncoder(F("official_finetuned.pth"), ConfigI));
        StringAssert.Contains(e.Message, "LoadClassifier");
    }

    [TestMethod]
    [DataRow("hf")]
    [DataRow("hf/model.safetensors")]
    [DataRow("hf/pytorch_model.bin")]
    public void HuggingFaceViTMaeWithEpsFromConfig(string path)
    {
        using (var w = MaeWeightFile.Read(F(path)))
        {
            Assert.AreEqual(MaeWeightFile.Format.HuggingFace, w.Format);
            Assert.AreEqual(1e-12, w.Config.LayerNormEps, "eps comes from config.json");
            Assert.AreEqual(ConfigI with { LayerNormEps = 1e-12 }, w.Config);
        }
        using var model = MaeWeightFile.LoadMaskedAutoencoder(F(path));
        CheckFull(model, "h");
    }

    [TestMethod]
    public void PositionEmbeddingsAreInterpolatedLikeTheReference()
    {
        using var scope = NewDisposeScope();
        var source = expected["interp.source_pos_embed"];
        TensorAssert.Close(PosEmbedInterpolation.Interpolate(source, 6), expected["interp.pos_embed_24"], Rtol, "16→24 px");
        TensorAssert.Close(PosEmbedInterpolation.Interpolate(source, 2), expected["interp.pos_embed_8"], Rtol, "16→8 px");
        // End to end: the encoder-only file loaded for 24-px images gives the official ViT's features at 24 px.
        using var encoder = MaeWeightFile.LoadEncoder(F("official_encoder_only.pth"), ConfigI, imageSize: 24);
        Assert.AreEqual(24, encoder.Config.ImageSize);
        TensorAssert.Close(encoder.pos_embed, expected["interp.pos_embed_24"], Rtol, "loaded pos_embed");
        TensorAssert.Close(encoder.ExtractFeatures(expected["input.imgs_24"]), expected["interp.features_cls_24"], Rtol, "features at 24 px");
    }

    [TestMethod]
    public void HalfPrecisionWeightsAreUpcast()
    {
        using var model = MaeWeightFile.LoadMaskedAutoencoder(F("fp16_weights.pth"), ConfigI);
        Assert.AreEqual(ScalarType.Float32, model.decoder_pred.weight!.dtype);
        using var scope = NewDisposeScope();
        var (loss, _, _) = model.Forward(expected["input.imgs"], 0.75, expected["input.noise"]);
        TensorAssert.Close(loss, expected["fp16.loss"], Rtol, "loss with fp16 weights");
    }

    [TestMethod]
    [DataRow("hostile_os_system.pth", "os.system")]
    [DataRow("hostile_builtins_eval.pth", "builtins.eval")]
    public void HostilePicklesAreRefused(string file, string global)
    {
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F(file), ConfigI));
        StringAssert.Contains(e.Message, $"'{global}'");
        StringAssert.Contains(e.Message, "Refusing");
        // ReadInfo walks the same allow-listed unpickler.
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.ReadInfo(F(file)));
        StringAssert.Contains(e.Message, $"'{global}'");
    }

    [TestMethod]
    [DataRow("truncated.pth", "truncated or corrupt")]
    [DataRow("oversized_claim.pth", "claims 1728 elements = 6912 bytes but the archive entry holds 3456 bytes")]
    [DataRow("int_weights.pth", "blocks.0.attn.qkv.weight' has dtype Int64")]
    [DataRow("not_a_zip.pth", "legacy")]
    public void BrokenFilesGiveClearErrors(string file, string fragment)
    {
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F(file), ConfigI));
        StringAssert.Contains(e.Message, fragment);
        if (file is "truncated.pth" or "not_a_zip.pth" or "oversized_claim.pth")   // int64 weights are refused only when loaded
            StringAssert.Contains(Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.ReadInfo(F(file))).Message, fragment);
    }

    // The one weight-name filter (WeightNames.ForModel, timm's checkpoint_filter_fn) behind the loaders and
    // MaeFineTuner.FromEncoder, against the same official outputs.

    [TestMethod]
    public void FromEncoderOfAFullMaeKeepsTheEncoder()
    {
        // The encoder of a MaskedAutoencoder registers no tensors itself (its owner holds them flat).
        using var mae = MaeWeightFile.LoadMaskedAutoencoder(F("official_checkpoint.pth"), ConfigI);
        using var classifier = MaeFineTuner.FromEncoder(mae.Encoder, numClasses: 3, globalPool: false);
        classifier.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs"]), expected["i.features_cls"], Rtol, "cls features");
        Assert.IsTrue(classifier.state_dict().Keys.All(k => !k.StartsWith("decoder_") && k != "mask_token"));
    }

    [TestMethod]
    public void FromEncoderInterpolatesThePositionTable()
    {
        using var encoder = MaeWeightFile.LoadEncoder(F("official_encoder_only.pth"), ConfigI);
        using var classifier = MaeFineTuner.FromEncoder(encoder, numClasses: 3, globalPool: false, imageSize: 24);
        classifier.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(classifier.Encoder.pos_embed, expected["interp.pos_embed_24"], Rtol, "pos_embed");
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs_24"]), expected["interp.features_cls_24"], Rtol, "cls features");
    }

    [TestMethod]
    public void FineTunedFileWithAnotherClassCountKeepsFcNormAndStartsAFreshHead()
    {
        using var classifier = MaeWeightFile.LoadClassifier(F("official_finetuned.pth"), numClasses: 3, config: ConfigI);
        classifier.eval();
        using var scope = NewDisposeScope();
        Assert.AreEqual(3L, classifier.head.weight.shape[0]);
        TensorAssert.Close(classifier.ForwardFeatures(expected["input.imgs"]), expected["ft.features"], Rtol, "features");
        // main_finetune.py's head init: zero bias, weights of std 2e-5.
        Assert.AreEqual(0f, classifier.head.bias!.abs().max().item<float>());
        Assert.IsTrue(classifier.head.weight.abs().max().item<float>() < 1e-4);
    }
}
