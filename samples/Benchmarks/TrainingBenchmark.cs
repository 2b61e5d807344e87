using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

public sealed record TrainOptions
{
    public int Batch { get; init; } = 64;
    public int Steps { get; init; } = 300;
    public int Warmup { get; init; } = 20;
    public int Window { get; init; } = 20;
    public double MaskRatio { get; init; } = 0.75;
    /// <summary>Peak learning rate, reached after a linear warm-up over the first 10 % of the steps, then a
    /// half-cycle cosine to zero at the last step (the paper's schedule, compressed into the run).</summary>
    public double Lr { get; init; } = 1e-3;
    public long Seed { get; init; } = 1;
    public int DataBatches { get; init; } = 16;
}

/// <param name="ImagesPerSecond">img/s over windows of <see cref="TrainOptions.Window"/> timed steps (warm-up excluded).</param>
/// <param name="FinalLoss">loss of the last step.</param>
/// <param name="TailLoss">mean loss over the last window of steps.</param>
public sealed record TrainResult(string Label, Stats ImagesPerSecond, double FinalLoss, double TailLoss, float[] Losses);

/// <summary>
/// Minimal MAE training loop for timing: one step = forward + backward + AdamW step (betas 0.9/0.95,
/// weight decay 0.05, over the parameters that require grad) + schedule step, one dispose scope per step. Several compute
/// precisions train side by side, each its own model from the same seed on the same batches and masks, their
/// steps alternating, so that a change in the (shared) machine's load hits all of them alike.
/// </summary>
public static class TrainingBenchmark
{
    sealed class Run : IDisposable
    {
        public required string Label;
        public required MaskedAutoencoder Model;
        public required SyntheticImages Data;
        public required OptimizerHelper Optimizer;
        public required optim.lr_scheduler.LRScheduler Schedule;
        public required float[] Losses;
        public required double[] Seconds;
        public void Dispose() { Model.Dispose(); Data.Dispose(); }
    }

    public static IReadOnlyList<TrainResult> RunInterleaved(MaeConfig config, IReadOnlyList<ScalarType?> computeDTypes, TrainOptions o, TextWriter log,
        Device? device = null)
    {
        device ??= CPU;
        var runs = new List<Run>();
        try
        {
            foreach (var dtype in computeDTypes)
            {
                TorchRuntime.Seed(o.Seed);
                var model = new MaskedAutoencoder(config) { ComputeDType = dtype };
                model.to(device);
                model.train();
                var optimizer = optim.AdamW(model.parameters().Where(p => p.requires_grad), o.Lr, 0.9, 0.95, weight_decay: 0.05);
                runs.Add(new Run
                {
                    Label = Label(dtype),
                    Model = model,
                    Data = new SyntheticImages(config.ImageSize, config.InChannels, config.NumPatches, o.Batch, o.DataBatches, o.Seed, device),
                    Optimizer = optimizer,
                    Schedule = optim.lr_scheduler.LambdaLR(optimizer, step => LrFactor(step, o.Steps)),
                    Losses = new float[o.Steps],
                    Seconds = new double[o.Steps],
                });
            }
            for (int step = 0; step < o.Steps; step++)
                foreach (var r in runs)
                {
                    using var scope = NewDisposeScope();
                    var images = r.Data.Batch(step);
                    var noise = r.Data.NextNoise(o.Batch);
                    var sw = Stopwatch.StartNew();
                    r.Optimizer.zero_grad();
                    var (loss, _, _) = r.Model.Forward(images, o.MaskRatio, noise);
                    loss.backward();
                    r.Optimizer.step();
                    r.Schedule.step();
                    r.Losses[step] = loss.item<float>();
                    r.Seconds[step] = sw.Elapsed.TotalSeconds;
                    if ((step + 1) % 50 == 0)
                        log.WriteLine($"  [{r.Label}] step {step + 1}/{o.Steps}: loss {r.Losses[step]:F4}, last step {r.Seconds[step] * 1000:F0} ms");
                }
            return runs.Select(r => Summarize(r, o)).ToList();
        }
        finally
        {
            foreach (var r in runs) r.Dispose();
        }
    }

    /// <summary>Linear warm-up over the first 10 % of the steps, then half-cycle cosine to 0 at the last step.</summary>
    public static double LrFactor(int step, int steps)
    {
        int warmup = Math.Max(1, steps / 10);
        if (step < warmup) return (step + 1.0) / warmup;
        return 0.5 * (1 + Math.Cos(Math.PI * (step - warmup) / Math.Max(1, steps - warmup)));
    }

    public static string Label(ScalarType? dtype) => dtype switch
    {
        null => "fp32",
        ScalarType.BFloat16 => "bf16",
        ScalarType.Float16 => "fp16",
        _ => dtype.ToString()!,
    };

    static TrainResult Summarize(Run r, TrainOptions o)
    {
        var rates = new List<double>();
        for (int start = o.Warmup; start + o.Window <= o.Steps; start += o.Window)
            rates.Add(o.Window * o.Batch / r.Seconds.Skip(start).Take(o.Window).Sum());
        if (rates.Count == 0) // too few steps for a whole window: one rate over all timed steps
            rates.Add((o.Steps - o.Warmup) * o.Batch / r.Seconds.Skip(o.Warmup).Sum());
        int tail = Math.Min(o.Window, o.Steps);
        return new TrainResult(r.Label, Stats.Of(rates), r.Losses[^1], r.Losses.Skip(o.Steps - tail).Average(f => (double)f), r.Losses);
    }
}
