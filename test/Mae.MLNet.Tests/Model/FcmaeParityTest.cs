using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>Our dense FCMAE against the official models/fcmae.py around the official sparse encoder (re-stated on
/// feature lists by Fixtures/ConvNext/make_convnext_fixtures.py): the same noise gives the same mask, loss and
/// gradients.</summary>
[TestClass]
public class FcmaeParityTest
{
    const double Rtol = 1e-4;

    [TestMethod]
    public void LossMaskAndGradientsMatchTheOfficialCode()
    {
        using var fx = new ConvNextFixture("fcmae_f");
        var config = fx.Config with { DecoderDepth = int.Parse(fx.Metadata["decoder_depth"]), NormPixLoss = fx.Metadata["norm_pix_loss"] == "true" };
        using var model = new Fcmae(config);
        fx.LoadInto(model, "param.");
        model.eval();
        using var scope = NewDisposeScope();
        double ratio = double.Parse(fx.Metadata["mask_ratio"], System.Globalization.CultureInfo.InvariantCulture);
        var (loss, _, mask) = model.Forward(fx["input.images"], ratio, fx["input.noise"]);
        Assert.IsTrue(TensorAssert.Same(mask, fx["out.mask"]), "mask");
        TensorAssert.Close(loss, fx["out.loss"], Rtol, "loss");
        loss.backward();
        int n = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            TensorAssert.Close(p.grad!, fx["grad." + name], Rtol, "grad " + name);
            n++;
        }
        Assert.AreEqual(fx.Tensors.Keys.Count(k => k.StartsWith("grad.")), n, "every reference gradient compared");
        Console.WriteLine($"loss {loss.item<float>():F7} vs official {fx["out.loss"].item<float>():F7}");
    }

    [TestMethod]
    public void RemovedPixelsDoNotReachTheEncoding()
    {
        // As in the sparse encoder, pixels under the mask must not reach the encoding: other values there give the same
        // last map, which is zero at the removed cells.
        var config = ConvNextV2Config.Atto with { Dims = new[] { 8, 8, 8, 8 }, Depths = new[] { 1, 1, 1, 1 }, ImageSize = 64, DecoderEmbedDim = 8 };
        using var model = new Fcmae(config);
        model.eval();
        using var scope = NewDisposeScope();
        var x = randn(2, 3, 64, 64);
        var mask = tensor(new float[] { 1, 0, 0, 1, 0, 1, 1, 0 }).reshape(2, 4);
        var pixelMask = mask.reshape(2, 1, 2, 2).repeat_interleave(32, 2).repeat_interleave(32, 3);
        var y = x + 5 * randn(2, 3, 64, 64) * pixelMask;
        var a = model.Encoder.ForwardMasked(x, mask);
        var b = model.Encoder.ForwardMasked(y, mask);
        TensorAssert.Close(a, b, 1e-6, "latent with other pixels under the mask");
        Assert.AreEqual(0.0, (a * mask.reshape(2, 1, 2, 2)).abs().max().item<float>(), "removed cells are zero");
    }

    /// <summary>bf16 mixed precision: the loss stays within bf16's rounding of the fp32 one and every gradient reaches
    /// the fp32 parameters as fp32.</summary>
    [TestMethod]
    public void Bf16ComputeKeepsFp32MasterWeightsAndTheLossClose()
    {
        using var fx = new ConvNextFixture("fcmae_f");
        using var model = new Fcmae(fx.Config with { DecoderDepth = 1 });
        fx.LoadInto(model, "param.");
        model.eval();
        using var scope = NewDisposeScope();
        double ratio = double.Parse(fx.Metadata["mask_ratio"], System.Globalization.CultureInfo.InvariantCulture);
        model.ComputeDType = ScalarType.BFloat16;
        var (loss, _, _) = model.Forward(fx["input.images"], ratio, fx["input.noise"]);
        Assert.AreEqual(ScalarType.Float32, loss.dtype);
        double expected = fx["out.loss"].item<float>();
        Assert.AreEqual(expected, loss.item<float>(), 0.02 * expected, "bf16 loss");
        loss.backward();
        foreach (var (name, p) in model.named_parameters())
            Assert.AreEqual(ScalarType.Float32, p.grad!.dtype, name);
    }

    [TestMethod]
    public void BadInputsAreRefusedUpFront()
    {
        var config = ConvNextV2Config.Atto with { Dims = new[] { 8, 8, 8, 8 }, Depths = new[] { 1, 1, 1, 1 }, ImageSize = 64, DecoderEmbedDim = 8 };
        using var model = new Fcmae(config);
        Assert.ThrowsExactly<ArgumentException>(() => model.Forward(zeros(1, 3, 96, 96)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Forward(zeros(1, 3, 64, 64), maskRatio: 1.0));
        Assert.ThrowsExactly<ArgumentException>(() => model.Forward(zeros(2, 3, 64, 64), 0.5, zeros(2, 9)));
    }
}
