using Mae.MLNet.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>
/// Module.to(dtype/device) must convert every parameter, including the token tables exposed as properties (TorchSharp
/// hands a same-named property the converted copy instead of re-registering it; an empty setter once left
/// mask_token on the CPU after .to(cuda)). Checked here with dtypes, which take the same path as devices.
/// </summary>
[TestClass]
public class ModuleToTest
{
    static readonly MaeConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 2,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    };

    static void AllFloat64(nn.Module module, params Parameter[] exposed)
    {
        foreach (var (name, p) in module.named_parameters())
            Assert.AreEqual(ScalarType.Float64, p.dtype, $"{module.GetType().Name}.{name}");
        foreach (var p in exposed) Assert.AreEqual(ScalarType.Float64, p.dtype, "a token property still has the old dtype");
    }

    [TestMethod]
    public void MaskedAutoencoderConvertsItsTokens()
    {
        using var model = new MaskedAutoencoder(Config);
        model.to(float64);
        AllFloat64(model, model.mask_token, model.decoder_pos_embed, model.Encoder.cls_token, model.Encoder.pos_embed);
        Assert.AreSame(model.get_parameter("mask_token"), model.mask_token);
        Assert.AreEqual(model.parameters().Count(), model.named_parameters().Count());
        using var scope = NewDisposeScope();
        var (loss, pred, _) = model.Forward(rand(2, 3, 16, 16, dtype: float64), 0.75);
        Assert.AreEqual(ScalarType.Float64, pred.dtype);
        loss.backward();
        Assert.IsNotNull(model.mask_token.grad, "the converted mask token is the one that trains");
    }

    [TestMethod]
    public void StandaloneEncoderAndClassifierConvertTheirTokens()
    {
        using var encoder = new MaeEncoder(Config);
        encoder.to(float64);
        AllFloat64(encoder, encoder.cls_token, encoder.pos_embed);
        using var classifier = new VitClassifier(Config, 3);
        classifier.to(float64);
        AllFloat64(classifier, classifier.Encoder.cls_token, classifier.Encoder.pos_embed);
    }
}
