using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
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
    public static void Run(MaeConfig config, IReadOnlyList<ScalarType?> dtypes, int batch, int steps, TextWriter output, bool fusedAttention = true)
    {
        output.WriteLine($"## Profile: where a training step goes (batch {batch}, median of {steps} steps, host ms; new = the engine's step, old = per-parameter AdamW + casts per layer call + loss read per step; variants alternate step by step)");
        output.WriteLine();
        output.WriteLine("| variant | weight cast | forward + loss | backward | AdamW step + zero grad | loss read | total |");
        output.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        var variants = dtypes.SelectMany(d => new[] { new TrainVariant(d, false), new TrainVariant(d, true) }).ToList();
        var runs = new List<(TrainVariant V, MaskedAutoencoder Model, SyntheticImages Data, MaeTrainStep Step, List<double>[] T)>();
        try
        {
            foreach (var v in variants)
            {
                TorchRuntime.Seed(1);
                var model = new MaskedAutoencoder(config) { ComputeDType = v.DType, FusedAttentionOnCuda = fusedAttention };
                model.train();
                var split = MaeWeightDecay.Split(model, new[] { "pos_embed", "cls_token", "mask_token" });
                var groups = new[] { new MaeParamGroup("decay", 1, 0.05, split.Decay), new MaeParamGroup("no_decay", 1, 0, split.NoDecay) };
                var step = MaeTrainStep.Create(groups, new MaeEngineSettings
                {
                    BatchSize = batch, AccumIter = 1, Epochs = 1, PeakLearningRate = 1e-4, MinLearningRate = 0, WarmupEpochs = 0,
                    Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-8, Seed = 1, LogEvery = 20, CheckpointEvery = 1, ComputeDType = v.DType, LegacyStep = v.Old,
                });
                runs.Add((v, model, new SyntheticImages(config.ImageSize, config.InChannels, config.NumPatches, batch, 4, 1), step,
                    Enumerable.Range(0, 5).Select(_ => new List<double>()).ToArray()));
            }
            for (int i = 0; i < steps + 3; i++)
                foreach (var r in runs)
                {
                    using var scope = NewDisposeScope();
                    var images = r.Data.Batch(i);
                    var noise = r.Data.NextNoise(batch);
                    var sw = Stopwatch.StartNew();
                    var cast = r.Step.CastForStep();
                    double t0 = sw.Elapsed.TotalMilliseconds;
                    Tensor loss;
                    using (cast) (loss, _, _) = r.Model.Forward(images, 0.75, noise);
                    double t1 = sw.Elapsed.TotalMilliseconds;
                    r.Step.Backward(loss);
                    double t2 = sw.Elapsed.TotalMilliseconds;
                    r.Step.OptimizerStep(1e-4);
                    double t3 = sw.Elapsed.TotalMilliseconds;
                    // The old loop reads every step; the engine once per LogEvery = 20 steps.
                    if (r.V.Old || i % 20 == 19) _ = loss.item<float>();
                    double t4 = sw.Elapsed.TotalMilliseconds;
                    if (i < 3) continue;
                    r.T[0].Add(t0); r.T[1].Add(t1 - t0); r.T[2].Add(t2 - t1); r.T[3].Add(t3 - t2); r.T[4].Add(t4 - t3);
                }
            foreach (var r in runs)
            {
                var m = r.T.Select(Median).ToArray();
                output.WriteLine($"| {r.V.Label} | {m[0]:F1} | {m[1]:F1} | {m[2]:F1} | {m[3]:F1} | {m[4]:F2} | {m.Sum():F1} |");
            }
        }
        finally
        {
            foreach (var r in runs) { r.Step.Dispose(); r.Model.Dispose(); r.Data.Dispose(); }
        }
        output.WriteLine();
        if (Environment.GetEnvironmentVariable("MAE_PROFILE_ATTENTION") == "0") return;

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
