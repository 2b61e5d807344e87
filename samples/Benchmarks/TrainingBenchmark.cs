using System.Diagnostics;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using TorchSharp;
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
    /// <summary>bf16/fp16 attention on CUDA through the fused kernel (the model's FusedAttentionOnCuda).</summary>
    public bool FusedAttention { get; init; } = true;
}

/// <summary>A compute precision and which step implementation: the engine's (flat buffer, one weight cast per step,
/// loss read once per window) or the old one (TorchSharp's per-parameter AdamW, casts per layer call, loss read every
/// step). <paramref name="Config"/> (named <paramref name="Name"/>) replaces the run's model for this variant, so
/// several architectures can alternate in one run.</summary>
public sealed record TrainVariant(ScalarType? DType, bool Old, MaeConfig? Config = null, string? Name = null)
{
    public string Label => (Name is null ? "" : Name + " ") + TrainingBenchmark.Label(DType) + (Old ? " old" : "");
}

/// <param name="ImagesPerSecond">img/s over windows of <see cref="TrainOptions.Window"/> timed steps (warm-up excluded).</param>
/// <param name="FinalLoss">loss of the last step.</param>
/// <param name="TailLoss">mean loss over the last window of steps.</param>
public sealed record TrainResult(string Label, Stats ImagesPerSecond, double FinalLoss, double TailLoss, float[] Losses);

/// <summary>
/// MAE training steps for timing, through the engine's step (<see cref="MaeTrainStep"/>): forward (random mask) +
/// backward + AdamW (betas 0.9/0.95, weight decay 0.05 on weights, none on biases / norms / tokens, as the
/// pre-trainer's groups) at the scheduled lr. Several variants train side by side, each its own model from the same
/// seed on the same batches and masks, alternating window by window (a window ends with its losses read back, so a
/// device has finished it), so a change in the shared machine's load hits all of them alike.
/// </summary>
public static class TrainingBenchmark
{
    sealed class Run : IDisposable
    {
        public required TrainVariant Variant;
        public required MaskedAutoencoder Model;
        public required SyntheticImages Data;
        public required MaeTrainStep Step;
        public required Tensor LossBuffer;
        public required float[] Losses;
        public readonly List<double> WindowSeconds = new();
        public void Dispose() { Step.Dispose(); Model.Dispose(); Data.Dispose(); LossBuffer.Dispose(); }
    }

    public static IReadOnlyList<TrainResult> RunInterleaved(MaeConfig config, IReadOnlyList<TrainVariant> variants, TrainOptions o, TextWriter log,
        Device? device = null, Action<int>? betweenRounds = null)
    {
        device ??= CPU;
        var runs = new List<Run>();
        try
        {
            foreach (var v in variants)
            {
                TorchRuntime.Seed(o.Seed);
                var c = v.Config ?? config;
                var model = new MaskedAutoencoder(c) { ComputeDType = v.DType, FusedAttentionOnCuda = o.FusedAttention };
                model.to(device);
                model.train();
                var split = MaeWeightDecay.Split(model, model.NoWeightDecay());
                var groups = new[] { new MaeParamGroup("decay", 1, 0.05, split.Decay), new MaeParamGroup("no_decay", 1, 0, split.NoDecay) };
                var settings = new MaeEngineSettings
                {
                    BatchSize = o.Batch, AccumIter = 1, Epochs = 1, PeakLearningRate = o.Lr, MinLearningRate = 0, WarmupEpochs = 0,
                    Beta1 = 0.9, Beta2 = 0.95, Epsilon = 1e-8, Seed = o.Seed, LogEvery = o.Window, CheckpointEvery = 1,
                    ComputeDType = v.DType, LegacyStep = v.Old,
                };
                var buffer = zeros(Math.Max(o.Window, o.Warmup), device: device);
                buffer.DetachFromDisposeScope();
                runs.Add(new Run
                {
                    Variant = v, Model = model, Step = MaeTrainStep.Create(groups, settings), LossBuffer = buffer,
                    Data = new SyntheticImages(c.ImageSize, c.InChannels, c.NumPatches, o.Batch, o.DataBatches, o.Seed, device),
                    Losses = new float[o.Steps],
                });
            }
            int done = 0, round = 0;
            var chunks = new List<(int Start, int Count, bool Timed)>();
            if (o.Warmup > 0) chunks.Add((0, Math.Min(o.Warmup, o.Steps), false));
            for (int s = Math.Min(o.Warmup, o.Steps); s < o.Steps; s += o.Window) chunks.Add((s, Math.Min(o.Window, o.Steps - s), true));
            foreach (var (start, count, timed) in chunks)
            {
                foreach (var r in runs)
                {
                    double secs = RunSteps(r, start, count, o, device);
                    if (timed) r.WindowSeconds.Add(secs);
                }
                done += count;
                if (timed) betweenRounds?.Invoke(round++);
                if (done % 50 < count || done == o.Steps)
                    foreach (var r in runs)
                        log.WriteLine($"  [{r.Variant.Label}] step {done}/{o.Steps}: loss {r.Losses[done - 1]:F4}" +
                                      (r.WindowSeconds.Count > 0 ? $", last window {r.WindowSeconds[^1] * 1000 / count:F0} ms/step" : ""));
            }
            return runs.Select(r => Summarize(r, o)).ToList();
        }
        finally
        {
            foreach (var r in runs) r.Dispose();
        }
    }

    /// <summary>Steps [start, start + count) of one variant; returns the seconds they took, losses read at the end.</summary>
    static double RunSteps(Run r, int start, int count, TrainOptions o, Device device)
    {
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            int step = start + i;
            using var scope = NewDisposeScope();
            var images = r.Data.Batch(step);
            var noise = r.Data.NextNoise(o.Batch);
            Tensor loss;
            using (r.Step.CastForStep()) (loss, _, _) = r.Model.Forward(images, o.MaskRatio, noise);
            if (r.Variant.Old) r.Losses[step] = loss.item<float>(); // the old loop's read per step
            else using (no_grad()) r.LossBuffer[i].copy_(loss.detach());
            r.Step.Backward(loss);
            r.Step.OptimizerStep(o.Lr * LrFactor(step, o.Steps));
        }
        if (!r.Variant.Old)
        {
            using var host = r.LossBuffer.narrow(0, 0, count).cpu();
            host.data<float>().ToArray().CopyTo(r.Losses, start);
        }
        else if (device.type == DeviceType.CUDA) cuda.synchronize();
        return sw.Elapsed.TotalSeconds;
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
        int window = Math.Min(o.Window, Math.Max(1, o.Steps - o.Warmup));
        var rates = r.WindowSeconds.Select(s => window * o.Batch / s).ToList();
        if (rates.Count == 0) rates.Add(0);
        int tail = Math.Min(o.Window, o.Steps);
        return new TrainResult(r.Variant.Label, Stats.Of(rates), r.Losses[^1], r.Losses.Skip(o.Steps - tail).Average(f => (double)f), r.Losses);
    }
}
