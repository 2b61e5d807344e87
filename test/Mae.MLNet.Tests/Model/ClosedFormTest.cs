using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>Properties of the MAE that follow from its definition, checked without any reference file.</summary>
[TestClass]
public class ClosedFormTest
{
    static readonly MaeConfig Small = new()
    {
        ImageSize = 12, PatchSize = 4, InChannels = 2, EmbedDim = 16, Depth = 1, NumHeads = 2,
        DecoderEmbedDim = 8, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    [TestMethod]
    public void PatchifyPlacesPixelsRowColumnChannel()
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        var imgs = arange(2 * 2 * 12 * 12, dtype: float32).reshape(2, 2, 12, 12);
        var patches = model.Patchify(imgs);
        CollectionAssert.AreEqual(new long[] { 2, 9, 32 }, patches.shape);
        var img = imgs.data<float>().ToArray();
        var pat = patches.data<float>().ToArray();
        // patch (hi, wi), in-patch (pi, qi, c) ↔ pixel imgs[n, c, hi·p + pi, wi·p + qi]
        for (int n = 0; n < 2; n++)
            for (int hi = 0; hi < 3; hi++)
                for (int wi = 0; wi < 3; wi++)
                    for (int pi = 0; pi < 4; pi++)
                        for (int qi = 0; qi < 4; qi++)
                            for (int c = 0; c < 2; c++)
                            {
                                float expected = img[((n * 2 + c) * 12 + hi * 4 + pi) * 12 + wi * 4 + qi];
                                float actual = pat[(n * 9 + hi * 3 + wi) * 32 + (pi * 4 + qi) * 2 + c];
                                Assert.AreEqual(expected, actual);
                            }
        Assert.IsTrue(TensorAssert.Same(model.Unpatchify(patches), imgs), "Unpatchify(Patchify(x)) != x");
    }

    [TestMethod]
    [DataRow(0.75, 9 - 2)]   // len_keep = floor(9 · 0.25) = 2
    [DataRow(0.5, 9 - 4)]    // floor(4.5) = 4
    [DataRow(0.9, 9 - 0)]    // floor(0.9) = 0: everything removed
    [DataRow(0.0, 0)]
    public void MaskHasExactlyLMinusLenKeepOnesPerRow(double ratio, int expectedOnes)
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        var imgs = randn(5, 2, 12, 12);
        var (latent, mask, idsRestore) = model.ForwardEncoder(imgs, ratio);
        var ones = mask.sum(1).data<float>().ToArray();
        foreach (var count in ones) Assert.AreEqual(expectedOnes, count);
        Assert.AreEqual(1 + 9 - expectedOnes, latent.shape[1], "encoder sees cls + visible tokens only");
        // ids_restore is a permutation of 0..L-1 per row
        var sorted = idsRestore.sort(1).Values;
        Assert.IsTrue(TensorAssert.Same(sorted, arange(9, dtype: int64).expand(5, 9)));
    }

    [TestMethod]
    public void NoiseDecidesWhichPatchesAreKept()
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        // Smallest noise is kept: with ratio 0.75, len_keep = 2 → patches 4 and 7 (noise 0.0, 0.1) stay visible.
        var noise = tensor(new float[] { .9f, .8f, .7f, .6f, .0f, .5f, .4f, .1f, .3f }).reshape(1, 9);
        var (_, mask, _) = model.ForwardEncoder(randn(1, 2, 12, 12), 0.75, noise);
        CollectionAssert.AreEqual(new float[] { 1, 1, 1, 1, 0, 1, 1, 0, 1 }, mask.data<float>().ToArray());
    }

    [TestMethod]
    public void LossIgnoresPredictionsOnVisiblePatches()
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        var imgs = randn(3, 2, 12, 12);
        var (loss, pred, mask) = model.Forward(imgs, 0.5);
        var visible = (1 - mask).unsqueeze(-1);
        var changedVisible = pred + 100 * visible * randn_like(pred);
        Assert.AreEqual(loss.item<float>(), model.ForwardLoss(imgs, changedVisible, mask).item<float>(), 0f);
        var changedRemoved = pred + mask.unsqueeze(-1) * randn_like(pred);
        Assert.AreNotEqual(loss.item<float>(), model.ForwardLoss(imgs, changedRemoved, mask).item<float>());
    }

    [TestMethod]
    public void LossIsMeanSquaredErrorOverRemovedPatches()
    {
        var config = Small with { NormPixLoss = false };
        using var model = new MaskedAutoencoder(config);
        using var scope = NewDisposeScope();
        var imgs = zeros(1, 2, 12, 12);
        // pred = 1 on patch 0, 3 on patch 1, 0 elsewhere; removed: patches 0 and 2 → ((1² ) + 0) / 2 = 0.5
        var pred = zeros(1, 9, 32);
        pred[0, 0] = 1f; pred[0, 1] = 3f;
        var mask = tensor(new float[] { 1, 0, 1, 0, 0, 0, 0, 0, 0 }).reshape(1, 9);
        Assert.AreEqual(0.5f, model.ForwardLoss(imgs, pred, mask).item<float>(), 1e-7f);
    }

    [TestMethod]
    public void NormPixStandardisesWithUnbiasedVariance()
    {
        using var scope = NewDisposeScope();
        // Row [1, 2, 3, 4]: mean 2.5, unbiased var 5/3.
        var row = tensor(new float[] { 1, 2, 3, 4 }).reshape(1, 1, 4);
        var normalized = MaskedAutoencoder.NormalizePatches(row).data<float>().ToArray();
        double sd = Math.Sqrt(5.0 / 3 + 1e-6);
        for (int i = 0; i < 4; i++) Assert.AreEqual((i + 1 - 2.5) / sd, normalized[i], 1e-6);
    }

    [TestMethod]
    public void GradientsReachEveryTrainableParameterAndNotThePositionEmbeddings()
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        var (loss, _, _) = model.Forward(randn(2, 2, 12, 12), 0.75);
        loss.backward();
        var frozen = new List<string>();
        foreach (var (name, p) in model.named_parameters())
        {
            if (!p.requires_grad) { frozen.Add(name); Assert.IsNull(p.grad, name); continue; }
            Assert.IsNotNull(p.grad, $"no gradient reached {name}");
            Assert.IsTrue(p.grad.abs().sum().item<float>() > 0, $"zero gradient for {name}");
        }
        CollectionAssert.AreEquivalent(new[] { "pos_embed", "decoder_pos_embed" }, frozen);
    }

    [TestMethod]
    public void FollowsTheModulesDtype()
    {
        using var model = new MaskedAutoencoder(Small);
        using var scope = NewDisposeScope();
        var imgs = randn(2, 2, 12, 12);
        var noise = rand(2, 9);
        var (loss32, pred32, _) = model.Forward(imgs, 0.75, noise);
        model.to(float64);
        var (loss64, pred64, mask64) = model.Forward(imgs.to(float64), 0.75, noise);
        Assert.AreEqual(ScalarType.Float64, pred64.dtype);
        Assert.AreEqual(ScalarType.Float64, mask64.dtype);
        Assert.AreEqual(loss64.item<double>(), loss32.item<float>(), 1e-5);
        TensorAssert.Close(pred32, pred64, 1e-5, "fp32 vs fp64 prediction");
        Assert.IsFalse(model.Encoder.pos_embed.requires_grad, "pos_embed stays frozen after .to()");
    }

    [TestMethod]
    public void EncoderFeaturesHaveTheEmbeddingWidth()
    {
        using var encoder = new MaeEncoder(Small);
        using var scope = NewDisposeScope();
        var imgs = randn(3, 2, 12, 12);
        var tokens = encoder.forward(imgs);
        CollectionAssert.AreEqual(new long[] { 3, 10, 16 }, tokens.shape);
        TensorAssert.Close(encoder.ExtractFeatures(imgs, MaePooling.Cls), tokens[.., 0, ..], 0, "cls");
        TensorAssert.Close(encoder.ExtractFeatures(imgs, MaePooling.Mean), tokens[.., 1.., ..].mean(new long[] { 1 }), 1e-7, "mean");
        // The standalone encoder carries exactly the encoder's official names.
        var names = encoder.state_dict().Keys.ToHashSet();
        Assert.IsTrue(names.SetEquals(new MaskedAutoencoder(Small).state_dict().Keys.Where(k => !k.StartsWith("decoder") && k != "mask_token")));
    }
}
