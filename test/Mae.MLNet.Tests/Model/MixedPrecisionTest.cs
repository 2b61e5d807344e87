using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>
/// bf16 mixed precision (<see cref="MaskedAutoencoder.ComputeDType"/>) against the official fp32 outputs of
/// models_mae.py. bfloat16 keeps 8 significant bits (unit round-off 2⁻⁹ ≈ 0.2 %); each matmul input is rounded
/// once, its fp32-accumulated result rounded once more, and the blocks compound that. Measured on the fixtures
/// (relative error = max|a − b| / max|b| against the official fp32 outputs): pred 7.5e-3 (a) and 6.0e-3 (c),
/// latent 5.7e-3 / 7.0e-3, mean features 2.9e-3, loss 4.4e-5 (a; the per-element errors average out), gradients
/// 3.3e-2 at worst (a LayerNorm weight, whose gradient sums many bf16 products). That is a few round-offs, as
/// expected for 8 significant bits; the tolerances below are ~2.5× the largest value seen, and far below what
/// a wrong computation gives (errors of order 1).
/// </summary>
[TestClass]
public class MixedPrecisionTest
{
    [TestMethod]
    [DataRow("a")]
    [DataRow("c")]
    public void Bf16ForwardLandsNearTheFp32Reference(string name)
    {
        using var fx = new ReferenceFixture(name);
        using var model = fx.BuildModel();
        model.eval();
        model.ComputeDType = ScalarType.BFloat16;
        using var scope = NewDisposeScope();
        var (loss, pred, mask) = model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        var (latent, _, _) = model.ForwardEncoder(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);

        Assert.AreEqual(ScalarType.Float32, loss.dtype, "loss dtype");
        Assert.AreEqual(ScalarType.Float32, pred.dtype, "pred dtype");
        Assert.AreEqual(ScalarType.Float32, latent.dtype, "latent dtype");
        Assert.IsTrue(TensorAssert.Same(mask, fx["out.mask"]), "mask differs");
        double lossErr = TensorAssert.RelativeError(loss, fx["out.loss"]);
        double predErr = TensorAssert.RelativeError(pred, fx["out.pred"]);
        double latentErr = TensorAssert.RelativeError(latent, fx["out.latent"]);
        Console.WriteLine($"{name}: bf16 relative error loss {lossErr:E2}, pred {predErr:E2}, latent {latentErr:E2}");

        Assert.IsTrue(lossErr <= 1e-3, $"loss: relative error {lossErr:E2} > 1e-3");
        Assert.IsTrue(predErr <= 2e-2, $"pred: relative error {predErr:E2} > 2e-2");
        Assert.IsTrue(latentErr <= 2e-2, $"latent: relative error {latentErr:E2} > 2e-2");
        // And the bf16 path really is bf16: fp32 agrees to ~1e-6, bf16 must be visibly coarser.
        Assert.IsTrue(predErr > 1e-4, $"pred error {predErr:E2} is fp32-small: the matrix work did not run in bf16");
    }

    [TestMethod]
    public void Bf16GradientsReachTheFp32MasterWeights()
    {
        using var fx = new ReferenceFixture("c");
        using var model = fx.BuildModel();
        model.ComputeDType = ScalarType.BFloat16;
        using var scope = NewDisposeScope();
        var (loss, _, _) = model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        loss.backward();
        double worst = 0;
        string worstName = "";
        int compared = 0;
        foreach (var (key, p) in model.named_parameters())
        {
            Assert.AreEqual(ScalarType.Float32, p.dtype, $"{key} is no longer an fp32 master weight");
            if (!p.requires_grad) { Assert.IsTrue(p.grad is null, $"{key} must get no gradient"); continue; }
            Assert.IsNotNull(p.grad, $"{key} got no gradient");
            Assert.AreEqual(ScalarType.Float32, p.grad.dtype, $"{key}.grad dtype");
            double err = TensorAssert.RelativeError(p.grad, fx["grad." + key]);
            if (err > worst) (worst, worstName) = (err, key);
            compared++;
        }
        Console.WriteLine($"bf16 gradients: worst relative error {worst:E2} ({worstName}) over {compared} parameters");
        Assert.AreEqual(fx.Tensors.Keys.Count(k => k.StartsWith("grad.")), compared);
        Assert.IsTrue(worst <= 8e-2, $"worst bf16 gradient error {worst:E2} ({worstName}) > 8e-2");
    }

    [TestMethod]
    public void SwitchingBackToFp32RestoresTheExactFp32Result()
    {
        using var fx = new ReferenceFixture("a");
        using var model = fx.BuildModel();
        model.eval();
        using var scope = NewDisposeScope();
        var (_, fp32Pred, _) = model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        model.ComputeDType = ScalarType.BFloat16;
        model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        model.ComputeDType = null;
        var (_, again, _) = model.Forward(fx["input.imgs"], fx.MaskRatio, fx["input.noise"]);
        Assert.IsTrue(TensorAssert.Same(again, fp32Pred), "fp32 after bf16 differs from fp32 before");
        TensorAssert.Close(again, fx["out.pred"], 1e-4, "pred");
    }

    [TestMethod]
    public void EncoderFeaturesInBf16StayNearFp32()
    {
        using var fx = new ReferenceFixture("a");
        using var model = fx.BuildModel();
        model.eval();
        model.Encoder.ComputeDType = ScalarType.BFloat16;
        Assert.AreEqual(ScalarType.BFloat16, model.Encoder.blocks[0].attn.ComputeDType);
        using var scope = NewDisposeScope();
        var features = model.Encoder.ExtractFeatures(fx["input.imgs"], MaePooling.Mean);
        Assert.AreEqual(ScalarType.Float32, features.dtype);
        double err = TensorAssert.RelativeError(features, fx["out.features_mean"]);
        Console.WriteLine($"bf16 mean features: relative error {err:E2}");
        Assert.IsTrue(err is > 1e-4 and <= 1e-2, $"mean features: relative error {err:E2} outside (1e-4, 1e-2]");
    }

    [TestMethod]
    public void NonFloatComputeDTypeIsRejected()
    {
        using var model = new MaskedAutoencoder(MaeConfig.Mnist28 with { Depth = 1, DecoderDepth = 1 });
        var e = Assert.ThrowsExactly<ArgumentException>(() => model.ComputeDType = ScalarType.Int64);
        StringAssert.Contains(e.Message, "BFloat16");
        StringAssert.Contains(e.Message, "Int64");
        model.ComputeDType = ScalarType.Float32;
        Assert.IsNull(model.ComputeDType, "Float32 means plain fp32 (null)");
    }
}
