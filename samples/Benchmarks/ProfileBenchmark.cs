using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// Where a training step's time goes: forward (with loss), backward, AdamW step, per compute dtype; and the
/// attention core (q·kᵀ → softmax → ·v, forward + backward) written out versus the fused
/// scaled_dot_product_attention at the model's own shapes. Prints median milliseconds.
/// </summary>
public static class ProfileBenchmark
{
    public static void Run(MaeConfig config, IReadOnlyList<ScalarType?> dtypes, int batch, int steps, TextWriter output)
    {
        output.WriteLine($"## Profile: where a training step goes (batch {batch}, median of {steps} steps, ms)");
        output.WriteLine();
        output.WriteLine("| compute | forward + loss | backward | AdamW step | total |");
        output.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var dtype in dtypes)
        {
            TorchRuntime.Seed(1);
            using var model = new MaskedAutoencoder(config) { ComputeDType = dtype };
            using var data = new SyntheticImages(config.ImageSize, config.InChannels, config.NumPatches, batch, 4, 1);
            var optimizer = optim.AdamW(model.parameters().Where(p => p.requires_grad), 1e-4, 0.9, 0.95, weight_decay: 0.05);
            var fwd = new List<double>(); var bwd = new List<double>(); var opt = new List<double>();
            for (int step = 0; step < steps + 3; step++)
            {
                using var scope = NewDisposeScope();
                var images = data.Batch(step);
                var noise = data.NextNoise(batch);
                optimizer.zero_grad();
                var sw = Stopwatch.StartNew();
                var (loss, _, _) = model.Forward(images, 0.75, noise);
                double t1 = sw.Elapsed.TotalMilliseconds;
                loss.backward();
                double t2 = sw.Elapsed.TotalMilliseconds;
                optimizer.step();
                double t3 = sw.Elapsed.TotalMilliseconds;
                if (step < 3) continue;
                fwd.Add(t1); bwd.Add(t2 - t1); opt.Add(t3 - t2);
            }
            double f = Median(fwd), b = Median(bwd), o = Median(opt);
            output.WriteLine($"| {TrainingBenchmark.Label(dtype)} | {f:F1} | {b:F1} | {o:F1} | {f + b + o:F1} |");
        }
        output.WriteLine();

        output.WriteLine("## Attention core, forward + backward (median ms over 30 runs)");
        output.WriteLine();
        output.WriteLine("| shape [B, heads, N, head dim] | dtype | explicit matmul-softmax-matmul | scaled_dot_product_attention |");
        output.WriteLine("|---|---|---:|---:|");
        long lenKeep = MaskedAutoencoder.LenKeep(config.NumPatches, 0.75);
        var shapes = new[]
        {
            (batch, config.NumHeads, lenKeep + 1, config.EmbedDim / config.NumHeads),
            (batch, config.DecoderNumHeads, config.NumPatches + 1, config.DecoderEmbedDim / config.DecoderNumHeads),
        };
        foreach (var (b, h, n, d) in shapes)
            foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            {
                var (explicitMs, fusedMs) = TimeAttention(b, h, n, d, dtype);
                output.WriteLine($"| [{b}, {h}, {n}, {d}] | {(dtype == ScalarType.Float32 ? "fp32" : "bf16")} | {explicitMs:F2} | {fusedMs:F2} |");
            }
        output.WriteLine();
    }

    /// <summary>Median ms of forward + backward, the two variants alternating run by run on the same inputs.</summary>
    static (double explicitMs, double fusedMs) TimeAttention(long b, long h, long n, long d, ScalarType dtype)
    {
        var times = new[] { new List<double>(), new List<double>() };
        double scale = Math.Pow(d, -0.5);
        for (int i = 0; i < 35; i++)
            foreach (bool fused in new[] { false, true })
            {
                using var scope = NewDisposeScope();
                var q = randn(b, h, n, d).to(dtype).requires_grad_();
                var k = randn(b, h, n, d).to(dtype).requires_grad_();
                var v = randn(b, h, n, d).to(dtype).requires_grad_();
                var grad = randn(b, h, n, d).to(dtype);
                var sw = Stopwatch.StartNew();
                var y = fused
                    ? nn.functional.scaled_dot_product_attention(q, k, v)
                    : MixedPrecision.Softmax((q * scale).matmul(k.transpose(-2, -1))).matmul(v);
                y.backward(new[] { grad });
                if (i >= 5) times[fused ? 1 : 0].Add(sw.Elapsed.TotalMilliseconds);
            }
        return (Median(times[0]), Median(times[1]));
    }

    static double Median(List<double> values)
    {
        var s = values.OrderBy(v => v).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}
