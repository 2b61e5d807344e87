using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

public sealed record Table5Options
{
    public int Batch { get; init; } = 4;
    public int Steps { get; init; } = 4;
    public int Warmup { get; init; } = 1;
    public double MaskRatio { get; init; } = 0.75;
    public long Seed { get; init; } = 1;
    /// <summary>bf16/fp16 attention on CUDA through the fused kernel (the model's FusedAttentionOnCuda).</summary>
    public bool FusedAttention { get; init; } = true;
}

/// <param name="OursSeconds">seconds of each timed training step, encoder on the visible tokens only.</param>
/// <param name="AllTokensSeconds">the same for the "w/ [M]" variant (encoder on all tokens).</param>
public sealed record Table5Result(double[] OursSeconds, double[] AllTokensSeconds, double OursLoss, double AllTokensLoss);

/// <summary>
/// Table 5 of the paper: ViT-B/16 at 224 px, 512×8 decoder, mask 0.75, training step (forward + backward +
/// AdamW) with the encoder on the visible tokens (ours) versus on all tokens with mask tokens ("w/ [M]").
/// The two variants share one model and one optimizer and alternate step by step, so a change in the machine's
/// load hits both alike.
/// </summary>
public static class Table5Benchmark
{
    public static MaeConfig Config => MaeConfig.VitBase16;

    public static Table5Result Run(ScalarType? computeDType, Table5Options o, TextWriter log, Device? device = null)
    {
        device ??= CPU;
        TorchRuntime.Seed(o.Seed);
        var config = Config;
        using var mae = new MaskedAutoencoder(config) { ComputeDType = computeDType, FusedAttentionOnCuda = o.FusedAttention };
        mae.to(device);
        using var allTokens = new MaskTokensInEncoder(mae);
        mae.train();
        using var data = new SyntheticImages(config.ImageSize, config.InChannels, config.NumPatches, o.Batch, 2, o.Seed, device);
        var parameters = mae.parameters().Concat(allTokens.parameters()).Where(p => p.requires_grad).ToList();
        var optimizer = optim.AdamW(parameters, 1.5e-4, 0.9, 0.95, weight_decay: 0.05);

        var ours = new List<double>();
        var all = new List<double>();
        double oursLoss = double.NaN, allLoss = double.NaN;
        for (int step = 0; step < o.Warmup + o.Steps; step++)
        {
            foreach (bool encoderSeesAll in new[] { false, true })
            {
                using var scope = NewDisposeScope();
                var images = data.Batch(step);
                var noise = data.NextNoise(o.Batch);
                var sw = Stopwatch.StartNew();
                optimizer.zero_grad();
                var (loss, _, _) = encoderSeesAll
                    ? allTokens.Forward(images, o.MaskRatio, noise)
                    : mae.Forward(images, o.MaskRatio, noise);
                loss.backward();
                optimizer.step();
                double value = loss.item<float>();
                double seconds = sw.Elapsed.TotalSeconds;
                string name = encoderSeesAll ? "w/ [M]" : "ours";
                log.WriteLine($"  [table5 {name}] step {step + 1}/{o.Warmup + o.Steps}{(step < o.Warmup ? " (warm-up)" : "")}: {seconds:F2} s, loss {value:F4}");
                if (step < o.Warmup) continue;
                (encoderSeesAll ? all : ours).Add(seconds);
                if (encoderSeesAll) allLoss = value; else oursLoss = value;
            }
        }
        return new Table5Result(ours.ToArray(), all.ToArray(), oursLoss, allLoss);
    }
}
