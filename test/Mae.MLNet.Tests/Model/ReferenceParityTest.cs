using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>Our MAE against the official models_mae.py (fixtures made by Fixtures/make_reference_fixtures.py):
/// same weights and noise → same loss, pred, mask, latent, ids_restore, features and gradients.</summary>
[TestClass]
public class ReferenceParityTest
{
    const double Rtol = 1e-4;

    [TestMethod]
    [DataRow("a", DisplayName = "A: 32px/p4/3ch, norm_pix_loss, ratio 0.75")]
    [DataRow("b", DisplayName = "B: 24px/p8/3ch, plain pixels, ratio 0.6")]
    [DataRow("c", DisplayName = "C: 28px/p7/1ch, norm_pix_loss, ratio 0.75")]
    public void ForwardMatchesReference(string name)
    {
        using var fx = new ReferenceFixture(name);
        using var model = fx.BuildModel();
        model.eval();
        using var scope = NewDisposeScope();
        var imgs = fx["input.imgs"];
        var noise = fx["input.noise"];

        var (loss, pred, mask) = model.Forward(imgs, fx.MaskRatio, noise);
        TensorAssert.Close(loss, fx["out.loss"], Rtol, "loss");
        TensorAssert.Close(pred, fx["out.pred"], Rtol, "pred");
        Assert.IsTrue(TensorAssert.Same(mask, fx["out.mask"]), "mask differs");

        var (latent, mask2, idsRestore) = model.ForwardEncoder(imgs, fx.MaskRatio, noise);
        TensorAssert.Close(latent, fx["out.latent"], Rtol, "latent");
        Assert.IsTrue(TensorAssert.Same(mask2, fx["out.mask"]), "encoder mask differs");
        Assert.IsTrue(TensorAssert.Same(idsRestore, fx["out.ids_restore"]), "ids_restore differs");

        Assert.IsTrue(TensorAssert.Same(model.Patchify(imgs), fx["out.target"]), "patchify differs from the reference's");
        TensorAssert.Close(model.Encoder.ExtractFeatures(imgs, MaePooling.Cls), fx["out.features_cls"], Rtol, "cls features");
        TensorAssert.Close(model.Encoder.ExtractFeatures(imgs, MaePooling.Mean), fx["out.features_mean"], Rtol, "mean features");
        Console.WriteLine($"{name}: loss {loss.item<float>():F7} vs {fx["out.loss"].item<float>():F7}; " +
                          $"pred rel err {TensorAssert.RelativeError(pred, fx["out.pred"]):E2}; latent {TensorAssert.RelativeError(latent, fx["out.latent"]):E2}");
    }

    [TestMethod]
    [DataRow("a")]
    [DataRow("b")]
    [DataRow("c")]
    public void PositionEmbeddingsEqualReferenceTable(string name)
    {
        using var fx = new ReferenceFixture(name);
        using var model = new MaskedAutoencoder(fx.Config);
        TensorAssert.Close(model.Encoder.pos_embed, fx["param.pos_embed"], 1e-6, "pos_embed");
        TensorAssert.Close(model.decoder_pos_embed, fx["param.decoder_pos_embed"], 1e-6, "decoder_pos_embed");
    }

    [TestMethod]
    public void GradientsMatchReference()
    {
        using var fx = new ReferenceFixture("c");
        Assert.IsTrue(fx.HasGrads, "fixture c must carry gradients");
        using var model = fx.BuildModel();
        using var scope = NewDisposeScope();
        var (loss, _, _) = model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        loss.backward();
        int compared = 0;
        foreach (var (key, p) in model.named_parameters())
        {
            if (!p.requires_grad) { Assert.IsFalse(fx.Tensors.ContainsKey("grad." + key), key); continue; }
            TensorAssert.Close(p.grad!, fx["grad." + key], Rtol, "grad " + key);
            compared++;
        }
        Assert.AreEqual(fx.Tensors.Keys.Count(k => k.StartsWith("grad.")), compared);
    }
}
