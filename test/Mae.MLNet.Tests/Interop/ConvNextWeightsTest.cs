using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Tests.Model;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Interop;

/// <summary>ConvNeXt V2 weights in the layouts people download load through the hardened readers: timm's names
/// (safetensors; fcmae encoder-only without head; fine-tuned with head), the official repository's names in a
/// torch.save pickle (made by Fixtures/ConvNext/make_convnext_fixtures.py, checked there against timm's own
/// checkpoint_filter_fn), and an FCMAE checkpoint's encoder; a file that does not fit says which file and what.</summary>
[TestClass]
public class ConvNextWeightsTest
{
    const double Rtol = 1e-4;

    static readonly string Dir = Path.Combine(Path.GetTempPath(), $"mae-convnext-tests-{Environment.ProcessId}");

    [ClassCleanup]
    public static void Cleanup() { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); }

    static string Save(Dictionary<string, Tensor> sd, string name)
    {
        string dir = Dir;
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, name);
        Safetensors.SaveStateDict(path, sd);
        return path;
    }

    static Dictionary<string, Tensor> Params(ConvNextFixture fx, string prefix = "param.")
        => fx.Tensors.Where(kv => kv.Key.StartsWith(prefix)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);

    [TestMethod]
    public void TimmFineTunedSafetensorsLoadWithTheirArchitectureAndGiveTimmsLogits()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        string path = Save(Params(fx), "timm_a.safetensors");
        using var model = MaeWeightFile.LoadConvNextV2(path);
        Assert.AreEqual(5, model.NumClasses);
        Assert.IsTrue(model.Config.ConvMlp);
        CollectionAssert.AreEqual(new[] { 1, 1, 2, 1 }, model.Config.Depths.ToArray());
        CollectionAssert.AreEqual(new[] { 8, 12, 16, 24 }, model.Config.Dims.ToArray());
        model.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(model.forward(fx["input.images"]), fx["out.logits"], Rtol, "logits");
    }

    [TestMethod]
    public void TimmFcmaeEncoderWithoutHeadLoadsAsAnEncoder()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        var sd = Params(fx).Where(kv => !kv.Key.StartsWith("head.")).ToDictionary(kv => kv.Key, kv => kv.Value);
        string path = Save(sd, "timm_a_fcmae.safetensors");
        using var model = MaeWeightFile.LoadConvNextV2(path);
        Assert.AreEqual(0, model.NumClasses);
        model.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(model.ForwardFeatureMap(fx["input.images"]), fx["out.feature_map"], Rtol, "feature map");
        // head.norm was not in the file: it starts as the identity LayerNorm (1, 0), as timm leaves it.
        Assert.IsTrue(TensorAssert.Same(model.state_dict()["head.norm.weight"], ones(24)));
    }

    [TestMethod]
    public void OfficialCheckpointNamesAreMappedAsTimmMapsThem()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ConvNext", "convnextv2_a_official.pth");
        using var model = MaeWeightFile.LoadConvNextV2(path);
        Assert.IsTrue(model.Config.ConvMlp == false, "official pointwise weights are Linear [out, in]");
        model.eval();
        using var scope = NewDisposeScope();
        TensorAssert.Close(model.forward(fx["input.images"]), fx["out.logits"], Rtol, "logits from the official names");
        // The same file into the timm atto-style layout (1×1-conv MLP weights): reshaped as timm reshapes them.
        using var convLayout = MaeWeightFile.LoadConvNextV2(path, fx.Config);
        convLayout.eval();
        TensorAssert.Close(convLayout.forward(fx["input.images"]), fx["out.logits"], Rtol, "logits, conv layout");
    }

    [TestMethod]
    public void FcmaeCheckpointGivesItsEncoder()
    {
        using var fx = new ConvNextFixture("fcmae_f");
        string path = Save(Params(fx), "fcmae_f_full.safetensors");
        using var model = MaeWeightFile.LoadConvNextV2(path);
        Assert.AreEqual(0, model.NumClasses);
        var ours = model.state_dict();
        foreach (var (k, v) in Params(fx).Where(kv => kv.Key.StartsWith("encoder.")))
            Assert.IsTrue(TensorAssert.Same(ours[k["encoder.".Length..]], v), k);
    }

    [TestMethod]
    public void FilesThatDoNotFitAreRefusedNamingTheFileAndTheTensors()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        string path = Save(Params(fx), "timm_a_for_bad_config.safetensors");
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadConvNextV2(path, fx.Config with { Dims = new[] { 8, 12, 16, 32 } }));
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, "stages.3.downsample.1.weight: file [24, 16, 2, 2], model [32, 16, 2, 2]");

        var missing = Params(fx).Where(kv => kv.Key != "stages.2.blocks.1.mlp.grn.bias").ToDictionary(kv => kv.Key, kv => kv.Value);
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadConvNextV2(Save(missing, "missing.safetensors")));
        StringAssert.Contains(e.Message, "missing keys (1): stages.2.blocks.1.mlp.grn.bias");

        var gap = Params(fx).ToDictionary(kv => kv.Key.Replace("stages.2.blocks.1.", "stages.2.blocks.7."), kv => kv.Value);
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadConvNextV2(Save(gap, "gap.safetensors")));
        StringAssert.Contains(e.Message, "stage 2's blocks are numbered [0, 7]");

        var sparse = new Dictionary<string, Tensor> { ["encoder.stages.0.0.dwconv.kernel"] = zeros(49, 8) };
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadConvNextV2(Save(sparse, "sparse.safetensors")));
        StringAssert.Contains(e.Message, "MinkowskiEngine");

        var vit = new Dictionary<string, Tensor> { ["blocks.0.attn.qkv.weight"] = zeros(6, 2) };
        e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeWeightFile.LoadConvNextV2(Save(vit, "vit.safetensors")));
        StringAssert.Contains(e.Message, "not a ConvNeXt V2 state dict: it has no 'stem.0.weight'");
    }
}
