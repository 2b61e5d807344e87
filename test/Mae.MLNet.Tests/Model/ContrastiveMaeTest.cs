using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

[TestClass]
public class ContrastiveMaeTest
{
    static readonly MaeConfig Config = new()
    {
        ImageSize = 16, PatchSize = 4, InChannels = 3, EmbedDim = 32, Depth = 2, NumHeads = 4,
        DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2, NormPixLoss = true,
    };

    /// <summary>NT-Xent written out in double loops: for each of the 2N rows, −log(exp(s_ip/T) / Σ_{k≠i} exp(s_ik/T)).</summary>
    [TestMethod]
    public void InfoNceMatchesTheFormulaWrittenOut()
    {
        TorchRuntime.Seed(1);
        int n = 5, d = 7;
        double t = 0.3;
        var a = randn(n, d);
        var b = randn(n, d);
        double actual = ContrastiveMae.InfoNce(a, b, t).item<float>();

        var rows = a.data<float>().Chunk(d).Concat(b.data<float>().Chunk(d)).Select(r => r.Select(x => (double)x).ToArray()).ToArray();
        double Cos(double[] x, double[] y) => x.Zip(y, (p, q) => p * q).Sum() / Math.Sqrt(x.Sum(p => p * p) * y.Sum(q => q * q));
        double total = 0;
        for (int i = 0; i < 2 * n; i++)
        {
            int positive = i < n ? i + n : i - n;
            double denominator = 0;
            for (int k = 0; k < 2 * n; k++) if (k != i) denominator += Math.Exp(Cos(rows[i], rows[k]) / t);
            total += -Math.Log(Math.Exp(Cos(rows[i], rows[positive]) / t) / denominator);
        }
        Assert.AreEqual(total / (2 * n), actual, 1e-5);
        // identical views of well-separated rows: the loss is near its floor, far below that of shuffled pairs
        Assert.IsTrue(ContrastiveMae.InfoNce(a, a, 0.05).item<float>() < ContrastiveMae.InfoNce(a, b, 0.05).item<float>());
    }

    /// <summary>With weight 0 the loss is exactly the mean of the plain MAE's losses on the two views (same masks).</summary>
    [TestMethod]
    public void WeightZeroIsThePlainMaeOnEachView()
    {
        TorchRuntime.Seed(2);
        using var mae = new MaskedAutoencoder(Config);
        var model = new ContrastiveMae(mae, contrastiveWeight: 0);
        var v1 = randn(4, 3, 16, 16);
        var v2 = randn(4, 3, 16, 16);
        var n1 = rand(4, Config.NumPatches);
        var n2 = rand(4, Config.NumPatches);
        var (loss, rec, _) = model.Forward(v1, v2, 0.5, n1, n2);
        double plain = (mae.Forward(v1, 0.5, n1).loss.item<float>() + mae.Forward(v2, 0.5, n2).loss.item<float>()) / 2;
        Assert.AreEqual(plain, loss.item<float>(), 1e-6);
        Assert.AreEqual(plain, rec.item<float>(), 1e-6);
    }

    /// <summary>The combined loss is reconstruction + weight · InfoNCE, and the InfoNCE term trains the encoder and
    /// the projector but not the decoder.</summary>
    [TestMethod]
    public void TheContrastiveTermReachesTheEncoderNotTheDecoder()
    {
        TorchRuntime.Seed(3);
        using var mae = new MaskedAutoencoder(Config);
        var model = new ContrastiveMae(mae, contrastiveWeight: 0.5, temperature: 0.2);
        var v1 = randn(6, 3, 16, 16);
        var v2 = v1 + 0.1 * randn(6, 3, 16, 16);
        var (loss, rec, con) = model.Forward(v1, v2, 0.5);
        Assert.AreEqual(rec.item<float>() + 0.5 * con.item<float>(), loss.item<float>(), 1e-5);
        con.backward();
        var grads = mae.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad);
        Assert.IsTrue(model.Projector.fc1.weight!.grad!.abs().sum().item<float>() > 0);
        Assert.IsTrue(grads["blocks.0.attn.qkv.weight"]!.abs().sum().item<float>() > 0);
        Assert.IsTrue(grads.Where(kv => kv.Key.StartsWith("decoder_")).All(kv => kv.Value is null || kv.Value.abs().sum().item<float>() == 0));
        Assert.AreEqual(mae.parameters().Count() + 4, model.Parameters().Count());
    }

    [TestMethod]
    public void BadViewsAreRefused()
    {
        using var mae = new MaskedAutoencoder(Config);
        var model = new ContrastiveMae(mae);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => model.Forward(randn(4, 3, 16, 16), randn(3, 3, 16, 16), 0.5));
        StringAssert.Contains(ex.Message, "4 vs 3 rows");
        ex = Assert.ThrowsExactly<ArgumentException>(() => model.Forward(randn(1, 3, 16, 16), randn(1, 3, 16, 16), 0.5));
        StringAssert.Contains(ex.Message, "at least 2 images");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ContrastiveMae(mae, temperature: 0));
    }
}
