using System.Text.Json;
using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>Our ConvNeXt V2 against timm's <c>ConvNeXt</c> as <c>convnextv2_*</c> builds it (fixtures made by
/// Fixtures/ConvNext/make_convnext_fixtures.py): timm's state dict loads by name with its shapes, and the feature map,
/// pooled features, logits and gradients agree; every named preset has timm's parameter count.</summary>
[TestClass]
public class ConvNextV2ParityTest
{
    const double Rtol = 1e-4;

    [TestMethod]
    [DataRow("a", DisplayName = "A: conv_mlp (atto…nano layout), 3 ch, 5 classes, with gradients")]
    [DataRow("b", DisplayName = "B: linear MLP (tiny… layout), 1 ch, 3 classes")]
    public void ForwardAndGradientsMatchTimm(string name)
    {
        using var fx = new ConvNextFixture($"convnextv2_{name}");
        var config = fx.Config;
        using var model = new ConvNextV2(config, int.Parse(fx.Metadata["num_classes"]));
        fx.LoadInto(model, "param.");
        model.eval();
        using var scope = NewDisposeScope();
        var x = fx["input.images"];
        TensorAssert.Close(model.ForwardFeatureMap(x), fx["out.feature_map"], Rtol, "feature map");
        TensorAssert.Close(model.ForwardFeatures(x), fx["out.features"], Rtol, "pooled features");
        var logits = model.forward(x);
        TensorAssert.Close(logits, fx["out.logits"], Rtol, "logits");
        if (fx.Metadata["has_grads"] != "true") return;
        (logits * fx["input.probe"]).sum().backward();
        int checkedGrads = 0;
        foreach (var (pname, p) in model.named_parameters())
        {
            TensorAssert.Close(p.grad!, fx["grad." + pname], Rtol, "grad " + pname);
            checkedGrads++;
        }
        Assert.AreEqual(fx.Tensors.Keys.Count(k => k.StartsWith("grad.")), checkedGrads, "every timm gradient compared");
    }

    [TestMethod]
    public void StateDictNamesAndShapesAreTimms()
    {
        using var fx = new ConvNextFixture("convnextv2_a");
        using var model = new ConvNextV2(fx.Config, 5);
        var ours = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var theirs = fx.Tensors.Where(kv => kv.Key.StartsWith("param.")).ToDictionary(kv => kv.Key["param.".Length..], kv => kv.Value.shape);
        CollectionAssert.AreEquivalent(theirs.Keys.ToList(), ours.Keys.ToList());
        foreach (var (k, s) in theirs) CollectionAssert.AreEqual(s, ours[k], k);
    }

    /// <summary>timm 1.x's counts (<c>sum(p.numel())</c> of <c>timm.create_model('convnextv2_…')</c>, 1000 classes;
    /// printed by the fixture script's <c>--presets</c>); the paper's Table (3.7, 5.2, 9.1, 15.6, 28.6, 89, 198, 660 M)
    /// rounds them.</summary>
    [TestMethod]
    [DataRow("convnextv2-atto", 3_708_400L)]
    [DataRow("convnextv2-femto", 5_233_240L)]
    [DataRow("convnextv2-pico", 9_066_280L)]
    [DataRow("convnextv2-nano", 15_623_800L)]
    [DataRow("convnextv2-tiny", 28_635_496L)]
    [DataRow("convnextv2_base.fcmae_ft_in22k_in1k", 88_717_800L)]
    public void PresetParameterCountsAreTimms(string preset, long expected)
    {
        using var model = new ConvNextV2(ConvNextV2Config.Preset(preset), numClasses: 1000);
        Assert.AreEqual(expected, model.parameters().Sum(p => p.numel()), preset);
    }

    [TestMethod]
    public void LayerIdsFollowTheOfficialSingleLayerRule()
    {
        using var model = new ConvNextV2(ConvNextV2Config.Atto with { ImageSize = 32 });   // depths 2, 2, 6, 2
        Assert.AreEqual(1, model.LayerId("stem.0.weight"));   // downsample_layers.0 → sum(depths[:0]) + 1
        Assert.AreEqual(1, model.LayerId("stages.0.blocks.0.conv_dw.weight"));
        Assert.AreEqual(2, model.LayerId("stages.0.blocks.1.mlp.grn.weight"));
        Assert.AreEqual(3, model.LayerId("stages.1.downsample.1.weight"));
        Assert.AreEqual(12, model.LayerId("stages.3.blocks.1.norm.bias"));
        Assert.AreEqual(13, model.NumLayers);
        Assert.AreEqual(13, model.LayerId("head.norm.weight"));
    }

    [TestMethod]
    public void BadInputsAreRefusedUpFront()
    {
        var tiny = ConvNextV2Config.Atto with { Dims = new[] { 8, 8, 8, 8 }, Depths = new[] { 1, 1, 1, 1 }, ImageSize = 32 };
        using var model = new ConvNextV2(tiny);
        var e = Assert.ThrowsExactly<ArgumentException>(() => model.forward(zeros(1, 3, 48, 32)));
        StringAssert.Contains(e.Message, "multiples of 32");
        e = Assert.ThrowsExactly<ArgumentException>(() => model.forward(zeros(1, 1, 32, 32)));
        StringAssert.Contains(e.Message, "[N, 3, H, W]");
        Assert.ThrowsExactly<ArgumentException>(() => new ConvNextV2(tiny with { Depths = new[] { 1, 1, 1 } }));
        Assert.ThrowsExactly<ArgumentException>(() => new ConvNextV2(tiny with { ImageSize = 40 }));
        Assert.ThrowsExactly<ArgumentException>(() => ConvNextV2Config.Preset("convnextv2-gigantic"));
    }
}

/// <summary>One fixture of Fixtures/ConvNext (safetensors with a string <c>__metadata__</c>).</summary>
internal sealed class ConvNextFixture : IDisposable
{
    public Dictionary<string, Tensor> Tensors { get; }
    public Dictionary<string, string> Metadata { get; }

    public ConvNextFixture(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Fixtures", "ConvNext", name + ".safetensors");
        Tensors = Safetensors.LoadStateDict(path);
        using var stream = File.OpenRead(path);
        var len = new byte[8];
        stream.ReadExactly(len);
        var header = new byte[BitConverter.ToUInt64(len)];
        stream.ReadExactly(header);
        using var doc = JsonDocument.Parse(header);
        Metadata = doc.RootElement.GetProperty("__metadata__").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }

    public Tensor this[string name] => Tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"fixture has no tensor '{name}'");

    static int[] Ints(string s) => s.Split(',').Select(int.Parse).ToArray();

    public ConvNextV2Config Config => new()
    {
        Depths = Ints(Metadata["depths"]), Dims = Ints(Metadata["dims"]), ConvMlp = Metadata["conv_mlp"] == "true",
        InChannels = int.Parse(Metadata["in_chans"]), ImageSize = int.Parse(Metadata["image_size"]),
        DecoderEmbedDim = Metadata.TryGetValue("decoder_embed_dim", out var d) ? int.Parse(d) : 512,
    };

    /// <summary>Copies every <paramref name="prefix"/>ed tensor into the module by name; every name and shape must match.</summary>
    public void LoadInto(nn.Module module, string prefix, string? skip = null)
    {
        var ours = module.state_dict();
        var theirs = Tensors.Where(kv => kv.Key.StartsWith(prefix) && (skip is null || !kv.Key[prefix.Length..].StartsWith(skip)))
            .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
        if (!theirs.Keys.ToHashSet().SetEquals(ours.Keys))
            throw new InvalidOperationException("names differ: " + string.Join(", ", theirs.Keys.Except(ours.Keys).Concat(ours.Keys.Except(theirs.Keys))));
        using (no_grad())
            foreach (var (k, v) in theirs)
            {
                if (!v.shape.SequenceEqual(ours[k].shape))
                    throw new InvalidOperationException($"{k}: reference [{string.Join(", ", v.shape)}], ours [{string.Join(", ", ours[k].shape)}]");
                ours[k].copy_(v);
            }
    }

    public void Dispose()
    {
        foreach (var t in Tensors.Values) t.Dispose();
    }
}

/// <summary>Layer decay by stage for ConvNeXt V2: the groups' lr scales are the official main_finetune.py list
/// <c>decay^(Σ depths + 1 − id)</c> at the official single-layer ids; GRN, norms and biases are not decayed.</summary>
[TestClass]
public class ConvNextV2LayerDecayTest
{
    [TestMethod]
    public void GroupsFollowTheOfficialSingleLayerIdsAndScales()
    {
        var config = ConvNextV2Config.Atto with { Depths = new[] { 1, 1, 2, 1 }, Dims = new[] { 8, 8, 8, 8 }, ImageSize = 32 };
        using var model = new ConvNextV2(config, numClasses: 3);
        var groups = Mae.MLNet.FineTuning.MaeLayerDecay.ParamGroups(model, 0.05, 0.5);
        var byParam = groups.SelectMany(g => g.Parameters.Select(p => (p.Name, g))).ToDictionary(x => x.Name, x => x.g);
        Assert.AreEqual(model.parameters().Count(), byParam.Count, "every parameter in one group");
        // 5 blocks: stem (official downsample_layers.0) id 1 → 0.5^5; stage 2's downsampling and first block id 3 → 0.5^3; head id 6 → 1.
        Assert.AreEqual(Math.Pow(0.5, 5), byParam["stem.0.weight"].LrScale, 1e-15);
        Assert.AreEqual(Math.Pow(0.5, 3), byParam["stages.2.downsample.1.weight"].LrScale, 1e-15);
        Assert.AreEqual(Math.Pow(0.5, 3), byParam["stages.2.blocks.0.mlp.fc1.weight"].LrScale, 1e-15);
        Assert.AreEqual(Math.Pow(0.5, 2), byParam["stages.2.blocks.1.conv_dw.weight"].LrScale, 1e-15);
        Assert.AreEqual(1.0, byParam["head.fc.weight"].LrScale, 1e-15);
        Assert.AreEqual(0.05, byParam["stages.0.blocks.0.mlp.fc2.weight"].WeightDecay);
        foreach (var name in new[] { "stages.0.blocks.0.mlp.grn.weight", "stages.0.blocks.0.mlp.grn.bias", "stages.0.blocks.0.norm.weight", "stem.0.bias" })
            Assert.AreEqual(0.0, byParam[name].WeightDecay, name);
    }
}
