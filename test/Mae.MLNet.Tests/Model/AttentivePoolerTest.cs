using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Tests.Model;

/// <summary>The attentive pooler against attention written out by hand in double precision.</summary>
[TestClass]
public class AttentivePoolerTest
{
    static double[] Values(Tensor t) => t.detach().to(float64).cpu().contiguous().data<double>().ToArray();

    /// <summary>Randomises every parameter (LayerNorm gain/shift included) so none of them can be left out unseen.</summary>
    static AttentivePooler RandomPooler(int d, int heads, int seed, double mlpRatio = 0)
    {
        TorchRuntime.Seed(seed);
        var pooler = new AttentivePooler(d, heads, mlpRatio: mlpRatio);
        using var noGrad = no_grad();
        foreach (var (_, p) in pooler.named_parameters()) p.copy_(randn(p.shape) * 0.5);
        return pooler;
    }

    /// <summary>x·Wᵀ + b for one row, W row-major [out, in].</summary>
    static double[] Linear(double[] x, double[] w, double[] b)
    {
        var y = new double[b.Length];
        for (int o = 0; o < b.Length; o++)
        {
            double s = b[o];
            for (int i = 0; i < x.Length; i++) s += w[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    static double[] LayerNorm(double[] x, double[] gamma, double[] beta, double eps)
    {
        double mean = x.Average(), var = x.Select(v => (v - mean) * (v - mean)).Average();   // biased, as LayerNorm
        return x.Select((v, i) => (v - mean) / Math.Sqrt(var + eps) * gamma[i] + beta[i]).ToArray();
    }

    /// <summary>erf by Abramowitz and Stegun 7.1.26 (|error| ≤ 1.5e-7), for GELU(x) = x/2 · (1 + erf(x/√2)).</summary>
    static double Erf(double x)
    {
        double t = 1 / (1 + 0.3275911 * Math.Abs(x));
        double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        return Math.Sign(x) * (1 - poly * Math.Exp(-x * x));
    }

    /// <summary>p = query + proj(concat_h softmax(q_h·k_hᵀ/√d_h)·v_h), q = query·Wq + bq, [k v] = LN(x)·Wkv + bkv; with an
    /// MLP, p + fc2(GELU(fc1(LN2(p)))) (V-JEPA's CrossAttentionBlock).</summary>
    static double[] Reference(AttentivePooler p, double[][] tokens)
    {
        int d = p.EmbedDim, heads = p.NumHeads, hd = d / heads;
        var query = Values(p.query_token);
        var q = Linear(query, Values(p.q.weight!), Values(p.q.bias!));
        var kvW = Values(p.kv.weight!);
        var kvB = Values(p.kv.bias!);
        var kv = tokens.Select(t => Linear(LayerNorm(t, Values(p.norm.weight!), Values(p.norm.bias!), p.LayerNormEps), kvW, kvB)).ToArray();
        var context = new double[d];
        for (int h = 0; h < heads; h++)
        {
            var scores = kv.Select(r => Enumerable.Range(0, hd).Sum(j => q[h * hd + j] * r[h * hd + j]) / Math.Sqrt(hd)).ToArray();
            double max = scores.Max();
            var e = scores.Select(s => Math.Exp(s - max)).ToArray();
            double z = e.Sum();
            for (int t = 0; t < kv.Length; t++)
                for (int j = 0; j < hd; j++) context[h * hd + j] += e[t] / z * kv[t][d + h * hd + j];   // values are the second half
        }
        var y = Linear(context, Values(p.proj.weight!), Values(p.proj.bias!));
        var pooled = y.Select((v, i) => v + query[i]).ToArray();
        if (p.mlp is null) return pooled;
        var hidden = Linear(LayerNorm(pooled, Values(p.norm2!.weight!), Values(p.norm2.bias!), p.LayerNormEps), Values(p.mlp.fc1.weight!), Values(p.mlp.fc1.bias!));
        var g = hidden.Select(v => 0.5 * v * (1 + Erf(v / Math.Sqrt(2)))).ToArray();
        var m = Linear(g, Values(p.mlp.fc2.weight!), Values(p.mlp.fc2.bias!));
        return pooled.Select((v, i) => v + m[i]).ToArray();
    }

    static void Check(AttentivePooler pooler, double[][][] batch)
    {
        int n = batch.Length, t = batch[0].Length, d = pooler.EmbedDim;
        using var scope = NewDisposeScope();
        var x = tensor(batch.SelectMany(r => r.SelectMany(v => v)).Select(v => (float)v).ToArray(), new long[] { n, t, d });
        using var noGrad = no_grad();
        var got = Values(pooler.forward(x));
        Assert.AreEqual(n * d, got.Length);
        double worst = 0;
        for (int i = 0; i < n; i++)
        {
            // Use the same float32-rounded inputs as the module.
            var tokens = batch[i].Select(r => r.Select(v => (double)(float)v).ToArray()).ToArray();
            var expected = Reference(pooler, tokens);
            for (int j = 0; j < d; j++) worst = Math.Max(worst, Math.Abs(got[i * d + j] - expected[j]));
        }
        Assert.IsTrue(worst < 2e-5, $"max |pooler − hand-computed| = {worst:E2}");
    }

    static double[][][] RandomBatch(int n, int t, int d, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, t).Select(_ => Enumerable.Range(0, d).Select(_ => rng.NextDouble() * 4 - 2).ToArray()).ToArray()).ToArray();
    }

    /// <summary>One token, one head: the softmax over a single token is 1, so the pooled vector is in closed form
    /// query + proj(v(LN(x))) whatever the query; checked against the by-hand reference and against that closed form.</summary>
    [TestMethod]
    public void OneTokenOneHeadIsTheClosedForm()
    {
        var pooler = RandomPooler(6, 1, seed: 1);
        var batch = RandomBatch(3, 1, 6, seed: 2);
        Check(pooler, batch);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(batch.SelectMany(r => r.SelectMany(v => v)).Select(v => (float)v).ToArray(), new long[] { 3, 1, 6 });
        var v = pooler.kv.forward(pooler.norm.forward(x))[.., 0, 6..];                                  // values: second half
        var closed = pooler.proj.forward(v) + pooler.query_token.reshape(1, 6);
        double diff = (pooler.forward(x) - closed).abs().max().item<float>();
        Assert.IsTrue(diff < 1e-6, $"one token: {diff:E2}");
    }

    /// <summary>Several tokens and heads: each head's softmax weights and the merge of the heads.</summary>
    [TestMethod]
    public void SeveralTokensAndHeadsMatchTheHandComputedAttention()
    {
        Check(RandomPooler(8, 2, seed: 3), RandomBatch(4, 5, 8, seed: 4));
        Check(RandomPooler(12, 3, seed: 5), RandomBatch(2, 7, 12, seed: 6));
    }

    /// <summary>The complete block (V-JEPA's, MLP ratio 4; and a ratio whose hidden width rounds down): the MLP's
    /// LayerNorm, GELU and residual after the attention, every parameter randomised and so in play.</summary>
    [TestMethod]
    public void TheMlpBlockMatchesTheHandComputedBlock()
    {
        var pooler = RandomPooler(8, 2, seed: 7, mlpRatio: 4);
        Assert.AreEqual(32, pooler.mlp!.fc1.weight!.shape[0]);
        Assert.AreEqual(4, pooler.MlpRatio);
        Check(pooler, RandomBatch(4, 5, 8, seed: 8));
        var odd = RandomPooler(12, 3, seed: 9, mlpRatio: 1.3);   // 12 × 1.3 = 15.6 → 15 hidden units, as int(dim · ratio)
        Assert.AreEqual(15, odd.mlp!.fc1.weight!.shape[0]);
        Check(odd, RandomBatch(2, 7, 12, seed: 10));
        Assert.IsNull(new AttentivePooler(8, 2).mlp, "no MLP by default");
    }

    [TestMethod]
    public void BadShapesAndSettingsAreRejected()
    {
        foreach (double ratio in new[] { -1, double.NaN, double.PositiveInfinity, 0.01 })   // 8 × 0.01 → no hidden unit
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AttentivePooler(8, 2, mlpRatio: ratio)).Message, "MLP ratio");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AttentivePooler(10, 3));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AttentiveClassifier(8, 2, 1));
        var pooler = new AttentivePooler(8, 2);
        using var x = zeros(2, 3, 6);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => pooler.forward(x)).Message, "[N, T ≥ 1, 8]");
    }
}
