using Mae.MLNet.Interop;
using Microsoft.ML;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Training;

namespace Mae.MLNet.Tests.Interop;

/// <summary>Weight files say what they are: an official checkpoint's <c>args</c> (norm_pix_loss, input_size, model)
/// reach the config, contradictions are refused naming the file and both values, and <see cref="MaeWeightFile.ReadInfo"/>
/// reports format, kind, epoch and typed args without loading a tensor. Files: Fixtures/Interop/make_interop_fixtures.py
/// (official_checkpoint.pth: the official main_pretrain.py argparse.Namespace, --norm_pix_loss, --input_size 16) and
/// make_args_fixtures.py (args_*.pth: 8-px encoders with hand-set args).</summary>
[TestClass]
public class WeightFileArgsTest
{
    static string F(string name) => PublicWeightsTest.F(name);
    static MaeConfig ConfigI => PublicWeightsTest.ConfigI;

    /// <summary>A budget of one tensor byte: loading any weights would be refused, so a ReadInfo that succeeds under it
    /// loaded none.</summary>
    static readonly MaeLoadLimits NoTensors = new() { MaxTensorBytes = 1 };

    [TestMethod]
    public void OfficialTrainingCheckpointInfoWithoutLoadingTensors()
    {
        Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F("official_checkpoint.pth"), ConfigI, limits: NoTensors));
        var info = MaeWeightFile.ReadInfo(F("official_checkpoint.pth"), NoTensors);
        Assert.AreEqual(MaeWeightFile.Format.OfficialPth, info.Format);
        Assert.AreEqual(MaeWeightFile.Kind.Full, info.Kind);
        Assert.AreEqual(3, info.Epoch);
        CollectionAssert.AreEquivalent(new[] { "optimizer", "scaler" }, info.OtherEntries.ToArray());
        CollectionAssert.AreEqual(new long[] { 1, 17, 24 }, info.Shapes["pos_embed"]);
        Assert.IsNull(info.Config);
        var a = info.Args!;
        // The generator's command line: --model mae_vit_interop_i --input_size 16 --mask_ratio 0.75 --norm_pix_loss
        // --batch_size 2 --blr 1.5e-4 --weight_decay 0.05 --epochs 10 --warmup_epochs 2; main() sets lr = blr·2/256.
        Assert.AreEqual("mae_vit_interop_i", a.Model);
        Assert.AreEqual(16, a.InputSize);
        Assert.AreEqual(true, a.NormPixLoss);
        Assert.AreEqual(0.75, a.MaskRatio);
        Assert.AreEqual(2, a.BatchSize);
        Assert.AreEqual(1, a.AccumIter);
        Assert.AreEqual(10, a.Epochs);
        Assert.AreEqual(2.0, a.WarmupEpochs);
        Assert.AreEqual(1.5e-4, a.BaseLearningRate);
        Assert.AreEqual(1.5e-4 * 2 / 256, a.LearningRate!.Value, 1e-18);
        Assert.AreEqual(0.05, a.WeightDecay);
        Assert.IsNull(a.NbClasses);
        Assert.AreEqual("./output_dir", a.Raw["output_dir"]);
    }

    [TestMethod]
    public void NormPixLossAndImageSizeComeFromTheArgs()
    {
        // Only the head counts are given: the loss target is the file's (True), not the record's default (False).
        using (var w = MaeWeightFile.Read(F("official_checkpoint.pth"), heads: new MaeWeightFile.HeadCounts(2, 2)))
        {
            Assert.AreEqual(ConfigI, w.Config);
            Assert.AreEqual(true, w.Args!.NormPixLoss);
        }
        using (var w = MaeWeightFile.Read(F("args_tiny.pth"), heads: new MaeWeightFile.HeadCounts(2)))
        {
            Assert.IsFalse(w.Config.NormPixLoss);
            Assert.AreEqual(8, w.Config.ImageSize);
            Assert.AreEqual(2, w.Config.NumHeads);
        }
        // A file without args: models_mae.py's default, and a preset hint gives head counts only, not its loss target.
        using (var w = MaeWeightFile.Read(F("official_visualize.pth"), heads: new MaeWeightFile.HeadCounts(2, 2)))
            Assert.AreEqual(ConfigI with { NormPixLoss = false }, w.Config);
        using var full = MaeWeightFile.LoadMaskedAutoencoder(F("official_checkpoint.pth"), heads: new MaeWeightFile.HeadCounts(2, 2));
        Assert.IsTrue(full.Config.NormPixLoss);
    }

    [TestMethod]
    public void ArgsThatContradictAnExplicitConfigAreRefused()
    {
        var path = F("official_checkpoint.pth");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadEncoder(path, ConfigI with { NormPixLoss = false }));
        foreach (var s in new[] { path, "args.norm_pix_loss", "True", "NormPixLoss = False" }) StringAssert.Contains(e.Message, s);
        Assert.AreEqual(path, e.FilePath);
    }

    [TestMethod]
    public void ArgsThatContradictTheTensorsAreRefused()
    {
        var path = F("args_input_size_mismatch.pth");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(path, heads: new MaeWeightFile.HeadCounts(2)));
        foreach (var s in new[] { path, "args.input_size is 16", "8 px" }) StringAssert.Contains(e.Message, s);
        var bad = F("args_bad_type.pth");
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.ReadInfo(bad));
        foreach (var s in new[] { bad, "args.norm_pix_loss", "yes", "True or False" }) StringAssert.Contains(e.Message, s);
    }

    [TestMethod]
    public void HeadCountsAloneForANonPublicWidth()
    {
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F("args_tiny.pth")));
        StringAssert.Contains(e.Message, "MaeWeightFile.HeadCounts");
        // 8 wide with 3 heads does not divide: refused before any module is built.
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.Read(F("args_tiny.pth"), heads: new MaeWeightFile.HeadCounts(3)));
        StringAssert.Contains(e.Message, "NumHeads (3)");
        Assert.ThrowsExactly<ArgumentException>(() => MaeWeightFile.Read(F("args_tiny.pth"), ConfigI, heads: new MaeWeightFile.HeadCounts(2)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => MaeWeightFile.Read(F("args_tiny.pth"), heads: new MaeWeightFile.HeadCounts(0)));
        // The ML.NET doors pass them through.
        var ml = new MLContext(0);
        Assert.IsNotNull(ml.Transforms.MaeFeaturize("F", "Pixels", F("args_tiny.pth"), heads: new MaeWeightFile.HeadCounts(2)));
        Assert.ThrowsExactly<MaeModelFileException>(() => ml.Transforms.MaeFeaturize("F", "Pixels", F("args_tiny.pth")));
    }

    [TestMethod]
    public void FormatsOfTheOtherLayouts()
    {
        var timm = MaeWeightFile.ReadInfo(F("timm_encoder.safetensors"), NoTensors);
        Assert.AreEqual(MaeWeightFile.Format.TimmSafetensors, timm.Format);
        Assert.AreEqual(MaeWeightFile.Kind.EncoderOnly, timm.Kind);
        Assert.IsNull(timm.Args);
        Assert.IsNull(timm.Epoch);

        var hf = MaeWeightFile.ReadInfo(F("hf"), NoTensors);
        Assert.AreEqual(MaeWeightFile.Format.HuggingFace, hf.Format);
        Assert.AreEqual(MaeWeightFile.Kind.Full, hf.Kind);
        Assert.AreEqual(ConfigI with { LayerNormEps = 1e-12 }, hf.Config);
        Assert.AreEqual(MaeWeightFile.Format.HuggingFace, MaeWeightFile.ReadInfo(F("hf/pytorch_model.bin"), NoTensors).Format);

        Assert.AreEqual(MaeWeightFile.Kind.FineTuned, MaeWeightFile.ReadInfo(F("official_finetuned.pth"), NoTensors).Kind);
        Assert.AreEqual(MaeWeightFile.Kind.EncoderOnly, MaeWeightFile.ReadInfo(F("args_tiny.pth")).Kind);

        using var dir = new TempDir();
        string ours = Path.Combine(dir.Path, "tiny.safetensors");
        using (var model = new MaskedAutoencoder(ConfigI with { NormPixLoss = false })) MaeWeightFile.Save(model, ours);
        var info = MaeWeightFile.ReadInfo(ours, NoTensors);
        Assert.AreEqual(MaeWeightFile.Format.Ours, info.Format);
        Assert.AreEqual(ConfigI with { NormPixLoss = false }, info.Config);
    }
}
