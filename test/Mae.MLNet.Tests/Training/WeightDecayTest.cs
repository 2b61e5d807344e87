using Mae.MLNet.Model;
using Mae.MLNet.Training;
using Mae.MLNet.TrainHost;

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
}
