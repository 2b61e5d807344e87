using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Mae.MLNet.TrainHost;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;

namespace Mae.MLNet.Tests.Training;

[TestClass]
public class WeightDecayTest
{
    static MaeConfig OneBlock => TinyRun.Config with { Depth = 1, DecoderDepth = 1 };

    static string[] BlockWeights(string prefix) => new[]
        { "attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight" }.Select(s => prefix + s).ToArray();
    static string[] BlockNoDecay(string prefix) => new[]
        { "norm1.weight", "norm1.bias", "attn.qkv.bias", "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.bias", "mlp.fc2.bias" }
        .Select(s => prefix + s).ToArray();

    [TestMethod]
    public void GroupsFollowTimmRulesWithTokensExcluded()
    {
        using var model = new MaskedAutoencoder(OneBlock);
        // The model says its no-decay names (timm's no_weight_decay()): the tokens and the (frozen) position tables.
        CollectionAssert.AreEquivalent(new[] { "cls_token", "pos_embed", "mask_token", "decoder_pos_embed" }, model.NoWeightDecay().ToArray());
        var g = MaeWeightDecay.Split(model, model.NoWeightDecay());

        var expectedDecay = new[] { "patch_embed.proj.weight", "decoder_embed.weight", "decoder_pred.weight" }
            .Concat(BlockWeights("blocks.0.")).Concat(BlockWeights("decoder_blocks.0.")).OrderBy(s => s, StringComparer.Ordinal).ToArray();
        var expectedNoDecay = new[] { "cls_token", "mask_token", "patch_embed.proj.bias", "norm.weight", "norm.bias",
                "decoder_embed.bias", "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.bias" }
            .Concat(BlockNoDecay("blocks.0.")).Concat(BlockNoDecay("decoder_blocks.0.")).OrderBy(s => s, StringComparer.Ordinal).ToArray();

        CollectionAssert.AreEqual(expectedDecay, g.Decay.Select(p => p.Name).OrderBy(s => s, StringComparer.Ordinal).ToArray());
        CollectionAssert.AreEqual(expectedNoDecay, g.NoDecay.Select(p => p.Name).OrderBy(s => s, StringComparer.Ordinal).ToArray());
        CollectionAssert.AreEquivalent(new[] { "pos_embed", "decoder_pos_embed" }, g.Frozen.ToArray());
    }

    [TestMethod]
    public void ClassifierAndProjectorSayTheirNoDecayNamesAsTimm()
    {
        using var classifier = new VitClassifier(OneBlock, 3);
        CollectionAssert.AreEquivalent(new[] { "cls_token", "pos_embed" }, classifier.NoWeightDecay().ToArray()); // timm ViT
        using var projector = new ProjectionHead(8, 16, 4);
        var g = MaeWeightDecay.Split(projector, projector.NoWeightDecay());
        CollectionAssert.AreEquivalent(new[] { "fc1.weight", "fc2.weight" }, g.Decay.Select(p => p.Name).ToArray());
        CollectionAssert.AreEquivalent(new[] { "fc1.bias", "fc2.bias" }, g.NoDecay.Select(p => p.Name).ToArray());
    }

    [TestMethod]
    public void EmptySkipListDecaysTheTokensLikeMainPretrain()
    {
        using var model = new MaskedAutoencoder(OneBlock);
        var g = MaeWeightDecay.Split(model, Array.Empty<string>());
        var decay = g.Decay.Select(p => p.Name).ToHashSet();
        Assert.IsTrue(decay.Contains("cls_token") && decay.Contains("mask_token"));
        Assert.IsFalse(g.NoDecay.Any(p => p.Name.EndsWith(".weight") && p.Parameter.dim() > 1));
    }

    [TestMethod]
    public void DecayTokensDecaysClsAndMaskTokenInPretrainingLikeMainPretrain()
    {
        // One AdamW step from the same start, with and without decaying the tokens: the Adam part is identical, and
        // decoupled decay multiplies by (1 − lr·wd) first, so the decayed token differs by exactly −lr·wd·p₀.
        const double lr = 1e-3, wd = 0.5;
        Dictionary<string, float[]> Step(bool decayTokens)
        {
            var o = TinyRun.Options(1);
            o.WarmupEpochs = 0; o.LearningRate = lr; o.MinLearningRate = 0; o.WeightDecay = wd; o.DecayTokens = decayTokens;
            o.CheckpointDir = null; o.BatchSize = 4;
            Runtime.TorchRuntime.Seed(3);
            using var model = new MaskedAutoencoder(TinyRun.Config);
            using var source = MaeImageSource.FromArrays(TinyRun.Images(4), 3, 16, 16);
            var start = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().data<float>().ToArray());
            var result = new MaePretrainer(o).Train(model, source);
            Assert.AreEqual(1, result.OptimizerSteps);
            var end = model.named_parameters().ToDictionary(p => "end." + p.name, p => p.parameter.detach().data<float>().ToArray());
            return start.Concat(end).ToDictionary(kv => kv.Key, kv => kv.Value);
        }
        var plain = Step(false);
        var decayed = Step(true);
        foreach (var name in new[] { "cls_token", "mask_token" })
        {
            var p0 = plain[name];
            CollectionAssert.AreEqual(p0, decayed[name], "same start");
            for (int i = 0; i < p0.Length; i++)
                Assert.AreEqual(-lr * wd * p0[i], decayed["end." + name][i] - plain["end." + name][i], 1e-8, $"{name}[{i}]");
            Assert.IsTrue(p0.Any(v => Math.Abs(v) > 0.01), "a token with values to decay");
        }
        // Everything else is grouped as before: the same step in both runs.
        CollectionAssert.AreEqual(plain["end.norm.bias"], decayed["end.norm.bias"]);
        CollectionAssert.AreEqual(plain["end.blocks.0.attn.qkv.weight"], decayed["end.blocks.0.attn.qkv.weight"]);
    }
}
